"""The CUDA GEMM (fastnn._cuda.gemm: FP32 v1 and v2, TF32 and BF16 tensor cores, with the
alpha / beta / bias / activation epilogue) against the float64 oracle, on CUDA tensors.

The kernel variants are reached through fastnn._cuda.gemm, which takes the arguments of
fastnn._C.gemm with CUDA tensors in place of NumPy arrays, plus variant= ("auto", "v1", "v2",
"tf32", "bf16"); operands with a leading dimension wider than their rows are row-strided views
(tests/gpu.py). Tolerances: tests/check.py ("gemm", "gemm_large", "gemm_tf32" and the BF16
k-dependent bound gemm_bf16_bound)."""

import numpy as np
import pytest

import oracle
from check import gemm_bf16_bound, rel_err, tol
from fastnn import cuda
from gpu import backend, dev, host, misaligned, needs_gpu, padded, poisoned_dev

RTOL = tol("gemm", np.float32)
TF32_RTOL = tol("gemm_tf32", np.float32)


def _reference(a, b, c0, trans_a, trans_b, alpha, beta, bias, activation, param):
    y = oracle.matmul(a, b, trans_a, trans_b, alpha, beta, c0)
    if bias is not None:
        y = y + bias.astype(np.float64)
    if activation is None:
        return y
    return oracle.activation(activation, y, negative_slope=param, alpha=param)


def _rel_err(got, want):
    return rel_err(got, want)


def gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None,
         activation=None, param=0.0, variant="auto"):
    """out (a host array, any strides) = the CUDA GEMM of host arrays a and b, run on device
    copies: fastnn._cuda.gemm with fastnn._C.gemm's arguments and variant=."""
    tout = dev(out)
    backend().gemm(dev(a), dev(b), tout, trans_a, trans_b, alpha, beta, dev(bias),
                   activation or "none", param, variant=variant)
    out[...] = host(tout)


def _operands(M, N, K, trans_a, trans_b, beta, with_bias, seed):
    """(a, b, bias, out, c0): random operands stored transposed where asked; out NaN when
    beta == 0 (a promise that C is never read: NaN left there would leak into every result)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32) if with_bias else None
    if beta == 0:
        out = np.full((M, N), np.nan, dtype=np.float32)
    else:
        out = rng.standard_normal((M, N)).astype(np.float32)
    return a, b, bias, out, out.copy()


def _check(M, N, K, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, with_bias=False,
           activation=None, param=0.0, seed=0, variant="auto", rtol=RTOL):
    a, b, bias, out, c0 = _operands(M, N, K, trans_a, trans_b, beta, with_bias, seed)
    gemm(a, b, out, trans_a, trans_b, alpha, beta, bias, activation, param, variant=variant)
    want = _reference(a, b, c0, trans_a, trans_b, alpha, beta, bias, activation, param)
    assert np.all(np.isfinite(out)), "non-finite values in the GPU result"
    err = _rel_err(out, want)
    assert err < rtol, f"relative Frobenius error {err:.3g} for M={M} N={N} K={K} ({variant})"


SHAPES = [
    (1, 1, 1),
    (3, 5, 7),
    (17, 13, 29),
    (63, 64, 65),
    (64, 64, 64),
    (65, 63, 64),
    (127, 129, 65),
    (129, 127, 128),
    (1, 200, 33),
    (200, 1, 33),
]


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_shapes(M, N, K):
    _check(M, N, K)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,N,K", [(63, 65, 17), (129, 127, 64)])
def test_transposes(M, N, K, trans_a, trans_b):
    _check(M, N, K, trans_a=trans_a, trans_b=trans_b)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "gelu"])
def test_bias_and_activation(activation):
    _check(65, 127, 33, with_bias=True, activation=activation)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (2.0, 0.25)])
def test_alpha_beta(alpha, beta):
    _check(64, 65, 63, alpha=alpha, beta=beta, with_bias=True, activation="relu")


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_k_zero(beta):
    # K == 0: out = act(beta * out + bias), and with beta == 0 the NaN in out must not survive.
    _check(5, 7, 0, beta=beta, with_bias=True, activation="sigmoid")


@needs_gpu
@pytest.mark.cuda
def test_empty_output_is_a_no_op():
    a = np.ones((0, 4), np.float32)
    b = np.ones((4, 3), np.float32)
    out = np.empty((0, 3), np.float32)
    gemm(a, b, out)
    assert out.shape == (0, 3)


@needs_gpu
@pytest.mark.cuda
def test_strided_inputs_and_output():
    """Operands from strided host data, the output a view whose rows are wider than N: the
    padding is never written."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((70, 90)).astype(np.float32)[::2, ::-3]  # (35, 30)
    b = np.asfortranarray(rng.standard_normal((30, 66)).astype(np.float32))
    tc, cbuf = padded(np.full((35, 66), np.nan, np.float32))
    backend().gemm(dev(a), dev(b), tc, False, False, 1.0, 0.0, None, "none", 0.0)
    got = host(cbuf)
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert _rel_err(got[:, :66], want) < RTOL
    assert np.all(np.isnan(got[:, 66:])), "wrote outside the strided output view"


@needs_gpu
@pytest.mark.cuda
def test_bad_arguments_raise():
    a = np.ones((3, 4), np.float32)
    b = np.ones((5, 6), np.float32)
    out = np.empty((3, 6), np.float32)
    with pytest.raises(ValueError, match="shapes do not match"):
        gemm(a, b, out)
    with pytest.raises(TypeError, match="float32"):
        gemm(a.astype(np.float64), np.ones((4, 6), np.float32), out)
    with pytest.raises(ValueError, match="activation"):
        gemm(a, np.ones((4, 6), np.float32), out, activation="swish")


@needs_gpu
def test_gemm_on_device_tensors():
    """fastnn._cuda.gemm on tensors already on the GPU (the device layer's entry point)."""
    rng = np.random.default_rng(7)
    for m, k, n in [(1, 1, 1), (65, 33, 129), (300, 17, 70)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        tc = poisoned_dev((m, n), np.float32)
        backend().gemm(dev(a), dev(b), tc, False, False, 1.0, 0.0, dev(bias), "relu", 0.0)
        ref = np.maximum(a.astype(np.float64) @ b + bias, 0)
        got = host(tc)
        assert np.isfinite(got).all()
        assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


# ---------------------------------------------------------------- v2 (gemm_sgemm2.cu)
# Contiguous operands: v2 applies when their leading dimensions are
# multiples of 4: K and N always, M as well when trans_a, K when trans_b.

V2_SHAPES = [
    (1, 4, 4),
    (3, 8, 12),
    (127, 128, 8),
    (128, 128, 8),
    (129, 128, 16),
    (128, 132, 12),
    (131, 124, 20),
    (255, 256, 36),
    (257, 260, 132),
    (64, 516, 260),
]


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K", V2_SHAPES)
def test_v2_shapes(M, N, K):
    _check(M, N, K, variant="v2")


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,N,K", [(132, 124, 20), (128, 256, 8), (4, 4, 4), (260, 136, 140)])
def test_v2_transposes(M, N, K, trans_a, trans_b):
    _check(M, N, K, trans_a=trans_a, trans_b=trans_b, variant="v2")


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("activation,param", [(None, 0.0), ("relu", 0.0), ("leaky_relu", 0.1),
                                              ("sigmoid", 0.0), ("tanh", 0.0), ("gelu", 0.0)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, -2.0)])
def test_v2_epilogues(activation, param, alpha, beta):
    _check(131, 132, 36, alpha=alpha, beta=beta, with_bias=True, activation=activation,
           param=param, variant="v2")


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K", [(1100, 1100, 64), (1024, 1028, 100)])
def test_auto_dispatch_large_aligned(M, N, K):
    # Enough 128x128 tiles for the auto path to pick v2; v1 forced on the same problem agrees.
    _check(M, N, K, with_bias=True, activation="relu", variant="auto", rtol=tol("gemm_large", np.float32))
    _check(M, N, K, with_bias=True, activation="relu", variant="v1", rtol=tol("gemm_large", np.float32))


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K,trans_a,trans_b", [(130, 131, 64, False, False),
                                                   (130, 128, 65, False, False),
                                                   (130, 128, 64, True, False),
                                                   (130, 128, 66, False, True)])
def test_v2_refuses_unaligned_leading_dims(M, N, K, trans_a, trans_b):
    a = np.ones((K, M) if trans_a else (M, K), np.float32)
    b = np.ones((N, K) if trans_b else (K, N), np.float32)
    out = np.empty((M, N), np.float32)
    with pytest.raises(ValueError, match="v2"):
        gemm(a, b, out, trans_a, trans_b, variant="v2")
    # ...and the automatic choice falls back to v1 on the same arrays.
    _check(M, N, K, trans_a=trans_a, trans_b=trans_b, variant="auto")


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K", [(63, 65, 17), (129, 132, 64)])
def test_v1_forced(M, N, K):
    _check(M, N, K, with_bias=True, activation="tanh", variant="v1")


@needs_gpu
def test_bad_variant_name_raises():
    a = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="variant"):
        gemm(a, a, np.empty((4, 4), np.float32), variant="v3")





@needs_gpu
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,N,K", [(130, 131, 67), (5, 3, 1), (257, 129, 9)])
def test_v2_padded_leading_dims(M, N, K, trans_a, trans_b):
    """Sizes that are not multiples of 4 inside buffers whose leading dimensions are: the partial
    float4 loads at the K, M and N edges and the per-element stores at the N edge."""
    rng = np.random.default_rng(11)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    c0 = rng.standard_normal((M, N)).astype(np.float32)
    (ta, _), (tb, _), (tc, cbuf) = (padded(v) for v in (a, b, c0))
    backend().gemm(ta, tb, tc, trans_a, trans_b, 0.75, 0.5, dev(bias), "leaky_relu", 0.2,
                   variant="v2")
    got = host(cbuf)
    want = _reference(a, b, c0, trans_a, trans_b, 0.75, 0.5, bias, "leaky_relu", 0.2)
    assert np.isfinite(got[:, :N]).all()
    assert _rel_err(got[:, :N], want) < RTOL
    assert np.isnan(got[:, N:]).all(), "wrote past N into the padding"


@needs_gpu
def test_v2_misaligned_pointer_falls_back():
    """A pointer one float past a 16-byte boundary: auto runs v1, forcing v2 is a ValueError."""
    M = N = K = 1024
    rng = np.random.default_rng(3)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    (ta,) = misaligned([a])
    tb, tc = dev(b), poisoned_dev((M, N), np.float32)
    with pytest.raises(ValueError, match="v2"):
        backend().gemm(ta, tb, tc, False, False, 1.0, 0.0, None, "none", 0.0, variant="v2")
    backend().gemm(ta, tb, tc, False, False, 1.0, 0.0, None, "none", 0.0)
    assert _rel_err(host(tc), a.astype(np.float64) @ b) < tol("gemm_large", np.float32)


# ---------------------------------------------------------------- TF32 tensor cores
# A and B are rounded to TF32 (10-bit mantissa, round-to-nearest): per-product relative error
# ~3e-4 rms, so a Frobenius error near 4e-4 on Gaussian data; 2e-3 leaves room, and a value
# below 1e-5 would mean the FP32 path ran instead.
TF32_RTOL = 2e-3


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,N,K", [(128, 128, 16), (132, 124, 20), (260, 136, 140),
                                   (64, 516, 264), (17, 8, 4)])
def test_tf32_shapes_and_transposes(M, N, K, trans_a, trans_b):
    _check(M, N, K, trans_a=trans_a, trans_b=trans_b, variant="tf32", rtol=TF32_RTOL)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("activation,param", [(None, 0.0), ("relu", 0.0), ("sigmoid", 0.0),
                                              ("gelu", 0.0)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, -2.0)])
def test_tf32_epilogues(activation, param, alpha, beta):
    _check(131, 132, 36, alpha=alpha, beta=beta, with_bias=True, activation=activation,
           param=param, variant="tf32", rtol=TF32_RTOL)


@needs_gpu
@pytest.mark.cuda
def test_tf32_really_rounds_and_refuses_unaligned():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((256, 512)).astype(np.float32)
    b = rng.standard_normal((512, 256)).astype(np.float32)
    out = np.full((256, 256), np.nan, np.float32)
    gemm(a, b, out, variant="tf32")
    err = _rel_err(out, a.astype(np.float64) @ b.astype(np.float64))
    assert 1e-5 < err < TF32_RTOL, f"TF32 error {err:.3g} (below 1e-5: not on tensor cores?)"
    with pytest.raises(ValueError, match="tf32"):
        gemm(a[:, :511].copy(), b[:511].copy(), out, variant="tf32")


@needs_gpu
def test_gemm_tf32_on_device_tensors():
    rng = np.random.default_rng(9)
    m, k, n = 300, 68, 132
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    tc = poisoned_dev((m, n), np.float32)
    backend().gemm(dev(a), dev(b), tc, False, False, 1.0, 0.0, dev(bias), "relu", 0.0,
                   variant="tf32")
    want = np.maximum(a.astype(np.float64) @ b + bias, 0)
    got = host(tc)
    assert np.isfinite(got).all()
    assert _rel_err(got, want) < TF32_RTOL


# ---------------------------------------------------------------- BF16 tensor cores
# A and B are rounded to bfloat16 (nearest even) as the kernel stages them, so the oracle rounds
# them the same way (oracle.round_bf16) and what is left is accumulation error only. It is
# measured element by element against S = |alpha| |op(A)| @ |op(B)| + |beta C| + |bias| (the
# sum the rounding errors scale with): each m16n8k16 step may lose a few FP32 ulps of S on the
# tensor cores, so the bound is (K / 16 + 4) * 2^-20 * S, plus float32 rounding of the epilogue.
# A kernel that did not round, or a fragment in the wrong place, is off by ~1e-3 S or by O(S).


def _assert_bf16_close(got, want, pre, S, K, activation, what):
    bound = gemm_bf16_bound(S, want, K)
    ok = np.abs(got.astype(np.float64) - want) <= bound
    if activation == "step":
        ok |= np.abs(pre) <= bound  # the step may flip within the accumulation error of 0
    assert np.isfinite(got).all(), f"non-finite values in the GPU result ({what})"
    if not ok.all():
        i = np.unravel_index(np.argmax(np.abs(got - want) - bound), got.shape)
        raise AssertionError(f"{(~ok).sum()} elements outside the bf16 accumulation bound ({what}); "
                             f"worst at {i}: got {got[i]!r}, want {want[i]!r}, bound {bound[i]:.3g}")


def _check_bf16(M, N, K, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, with_bias=False,
                activation=None, param=0.0, seed=0):
    a, b, bias, out, c0 = _operands(M, N, K, trans_a, trans_b, beta, with_bias, seed)
    gemm(a, b, out, trans_a, trans_b, alpha, beta, bias, activation, param, variant="bf16")
    want, pre, S = oracle.gemm_bf16(a, b, c0, trans_a, trans_b, alpha, beta,
                                    bias, activation, param)
    _assert_bf16_close(out, want, pre, S, K, activation,
                       f"M={M} N={N} K={K} trans_a={trans_a} trans_b={trans_b}")


def test_round_bf16_matches_torch():
    """The oracle's NumPy rounding against torch.bfloat16 (runs on the CPU)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    bits = [rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)]
    # Exact ties (low half 0x8000) with an even and an odd kept bit, one ulp either side of a tie,
    # the largest finite float32s (they round to Inf), subnormals, zeros, infinities.
    hi = rng.integers(0, 2**16, 5_000, dtype=np.uint64).astype(np.uint32) << 16
    for low in (0x8000, 0x7FFF, 0x8001, 0x0000, 0xFFFF):
        bits.append(hi | np.uint32(low))
    bits.append(np.array([0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000, 0x7F7F7FFF, 0x00000001, 0x80008000,
                          0x00018000, 0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000,
                          0x7F800001, 0xFFFFFFFF], np.uint32))
    x = np.concatenate(bits).view(np.float32)
    got = oracle.round_bf16(x)
    want = torch.from_numpy(x.copy()).to(torch.bfloat16).to(torch.float32).numpy()
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))
    assert (got[~nan].view(np.uint32) & 0xFFFF == 0).all()


# Contiguous operands: the bf16 kernel applies when K and N are multiples of 4, and
# M too with trans_a (the padded test below covers odd sizes through wider leading dimensions).
BF16_SHAPES = [
    (1, 4, 4),
    (3, 8, 12),
    (1, 132, 36),
    (127, 128, 32),
    (128, 128, 32),
    (129, 124, 28),
    (131, 132, 36),
    (255, 256, 64),
    (257, 260, 132),
    (64, 516, 260),
]


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K", BF16_SHAPES)
def test_bf16_shapes(M, N, K):
    _check_bf16(M, N, K)


@needs_gpu
@pytest.mark.cuda
def test_bf16_large():
    # Edge tiles in M and N and a K tail (4104 = 128 * 32 + 8) at the benchmark's scale.
    _check_bf16(4100, 4092, 4104, with_bias=True, activation="relu", seed=4)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,N,K", [(4, 4, 4), (20, 8, 36), (132, 124, 20), (128, 256, 32),
                                   (260, 136, 140), (64, 516, 264)])
def test_bf16_transposes(M, N, K, trans_a, trans_b):
    _check_bf16(M, N, K, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=0.25, with_bias=True)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("activation,param", [(None, 0.0), ("relu", 0.0), ("leaky_relu", 0.1),
                                              ("sigmoid", 0.0), ("tanh", 0.0), ("gelu", 0.0),
                                              ("elu", 1.0), ("softplus", 0.0), ("step", 0.0)])
@pytest.mark.parametrize("alpha,beta,with_bias", [(1.0, 0.0, True), (0.5, -2.0, True),
                                                  (2.0, 0.25, False), (-1.0, 0.0, False)])
def test_bf16_epilogues(activation, param, alpha, beta, with_bias):
    _check_bf16(131, 132, 36, alpha=alpha, beta=beta, with_bias=with_bias, activation=activation,
                param=param)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_bf16_k_zero(beta):
    # Nothing to round or multiply: the general kernel gives act(beta * out + bias).
    _check(5, 8, 0, beta=beta, with_bias=True, activation="sigmoid", variant="bf16")


@needs_gpu
@pytest.mark.cuda
def test_bf16_really_rounds():
    """Against the unrounded operands the error is bfloat16's (~2e-3), against the rounded ones
    it is accumulation error only: both, or the kernel is not doing what it says."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((256, 512)).astype(np.float32)
    b = rng.standard_normal((512, 256)).astype(np.float32)
    out = np.full((256, 256), np.nan, np.float32)
    gemm(a, b, out, variant="bf16")
    exact = a.astype(np.float64) @ b.astype(np.float64)
    rounded = oracle.round_bf16(a).astype(np.float64) @ oracle.round_bf16(b).astype(np.float64)
    err_exact, err_rounded = _rel_err(out, exact), _rel_err(out, rounded)
    assert 5e-4 < err_exact < 2e-2, f"bf16 error {err_exact:.3g} (tiny: operands not rounded?)"
    assert err_rounded < 1e-5, f"error {err_rounded:.3g} against the bf16-rounded oracle"


@needs_gpu
@pytest.mark.cuda
def test_bf16_nan_and_inf_propagate():
    rng = np.random.default_rng(6)
    M, N, K = 132, 136, 72
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    a[7, 40] = np.nan
    b[3, 100] = np.inf
    out = np.full((M, N), np.nan, np.float32)
    gemm(a, b, out, variant="bf16")
    assert np.isnan(out[7]).all(), "a NaN in row 7 of A must poison row 7 of C"
    rest = np.delete(np.arange(M), 7)
    assert np.isinf(out[rest, 100]).all(), "an Inf in column 100 of B must reach column 100"
    others = np.delete(np.arange(N), 100)
    assert np.isfinite(out[np.ix_(rest, others)]).all()


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K,trans_a,trans_b", [(130, 128, 65, False, False),
                                                   (130, 131, 64, False, False),
                                                   (130, 128, 64, True, False),
                                                   (130, 128, 66, False, True)])
def test_bf16_refuses_unaligned_leading_dims(M, N, K, trans_a, trans_b):
    a = np.ones((K, M) if trans_a else (M, K), np.float32)
    b = np.ones((N, K) if trans_b else (K, N), np.float32)
    out = np.empty((M, N), np.float32)
    with pytest.raises(ValueError, match="bf16"):
        gemm(a, b, out, trans_a, trans_b, variant="bf16")


@needs_gpu
@pytest.mark.cuda
def test_gemm_reuses_cached_blocks():
    """Whatever workspace the bf16 GEMM needs comes from the caching allocator: the same call
    twice mallocs nothing new and leaves nothing more in use."""
    rng = np.random.default_rng(8)
    ta = dev(rng.standard_normal((96, 64)).astype(np.float32))
    tb = dev(rng.standard_normal((64, 80)).astype(np.float32))
    tc = dev(np.empty((96, 80), np.float32))
    backend().gemm(ta, tb, tc, False, False, 1.0, 0.0, None, "none", 0.0, variant="bf16")
    before = cuda.memory_stats()
    backend().gemm(ta, tb, tc, False, False, 1.0, 0.0, None, "none", 0.0, variant="bf16")
    after = cuda.memory_stats()
    assert after["num_cuda_malloc"] == before["num_cuda_malloc"]
    assert after["bytes_in_use"] == before["bytes_in_use"]


@needs_gpu
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (5, 3, 17), (130, 131, 67), (257, 129, 33)])
def test_bf16_odd_sizes_padded_leading_dims(M, N, K, trans_a, trans_b):
    """Odd M, N, K inside buffers whose leading dimensions are multiples of 4 (NaN padding): the
    partial float4 loads at every edge, the K tail inside a 32-deep stage, per-element stores at
    the N edge; the epilogue with alpha, beta, bias and an activation."""
    rng = np.random.default_rng(12)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    c0 = rng.standard_normal((M, N)).astype(np.float32)
    (ta, _), (tb, _), (tc, cbuf) = (padded(v) for v in (a, b, c0))
    backend().gemm(ta, tb, tc, trans_a, trans_b, 0.75, 0.5, dev(bias), "gelu", 0.0,
                   variant="bf16")
    got = host(cbuf)
    want, pre, S = oracle.gemm_bf16(a, b, c0, trans_a, trans_b, 0.75, 0.5, bias, "gelu", 0.0)
    _assert_bf16_close(got[:, :N], want, pre, S, K, "gelu", f"M={M} N={N} K={K} padded")
    assert np.isnan(got[:, N:]).all(), "wrote past N into the padding"


@needs_gpu
def test_bf16_gemm_on_device_tensors_equals_the_rounded_product():
    """variant='bf16' on device tensors against the float64 product of the bf16-rounded
    operands: equal to accumulation error."""
    rng = np.random.default_rng(13)
    m, k, n = 300, 68, 132
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    tc = poisoned_dev((m, n), np.float32)
    backend().gemm(dev(a), dev(b), tc, False, False, 1.0, 0.0, None, "none", 0.0, variant="bf16")
    ref = oracle.round_bf16(a).astype(np.float64) @ oracle.round_bf16(b).astype(np.float64)
    assert np.abs(host(tc) - ref).max() <= 1e-4 * np.abs(ref).max()


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("variant", ["v1", "v2", "tf32", "bf16"])
def test_gelu_epilogue_keeps_its_digits_in_the_negative_tail(variant):
    # gelu(z) = z Phi(z). Through 1 + erf(z / sqrt 2) the epilogue lost the tail to cancellation
    # (gelu(-5.5) = -1.05e-7 came out 22% off); every kernel now shares core/act_math.h's erfc form.
    # K = 4 with B = I and A = [z, 0, 0, 0] per row makes C[:, 0] the epilogue of z exactly (the
    # tensor-core variants round A, so z is chosen representable in bfloat16).
    z = -np.arange(0.5, 12.5, 0.5, dtype=np.float32)
    a = np.zeros((z.size, 4), np.float32)
    a[:, 0] = z
    tc = poisoned_dev((z.size, 4), np.float32)
    backend().gemm(dev(a), dev(np.eye(4, dtype=np.float32)), tc, False, False, 1.0, 0.0, None,
                   "gelu", 0.0, variant=variant)
    out = host(tc)
    want = oracle._act(z.astype(np.float64), "gelu")
    rel = np.abs(out[:, 0].astype(np.float64) - want) / np.abs(want)
    assert rel.max() < 1e-5, f"worst relative error {rel.max():.3g} at z = {z[rel.argmax()]}"
