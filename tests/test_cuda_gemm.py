"""The CUDA SGEMM against a float64 NumPy reference. The GEMM tests need a GPU and are skipped
without one; the device-query tests always run, because "no GPU" must be a quiet answer."""

import math

import numpy as np
import pytest

from fastnn import cuda

needs_gpu = pytest.mark.skipif(
    not cuda.is_available(),
    reason="no usable CUDA device (fastnn built without CUDA, no GPU, or no/too-old driver)",
)

RTOL = 1e-5


def _act64(x, activation, param):
    if activation is None:
        return x
    if activation == "relu":
        return np.maximum(x, 0.0)
    if activation == "leaky_relu":
        return np.where(x > 0, x, x * param)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if activation == "tanh":
        return np.tanh(x)
    if activation == "gelu":
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    raise AssertionError(f"no reference for {activation}")


def _reference(a, b, c0, trans_a, trans_b, alpha, beta, bias, activation, param):
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    opa = a64.T if trans_a else a64
    opb = b64.T if trans_b else b64
    y = alpha * (opa @ opb)
    if beta != 0:
        y = y + beta * c0.astype(np.float64)
    if bias is not None:
        y = y + bias.astype(np.float64)
    return _act64(y, activation, param)


def _rel_err(got, want):
    denom = np.linalg.norm(want)
    diff = np.linalg.norm(got.astype(np.float64) - want)
    return diff if denom == 0 else diff / denom


def _check(M, N, K, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, with_bias=False,
           activation=None, param=0.0, seed=0, variant="auto", rtol=RTOL):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32) if with_bias else None
    if beta == 0:
        # beta == 0 promises C is never read: NaN left there would leak into every result.
        out = np.full((M, N), np.nan, dtype=np.float32)
    else:
        out = rng.standard_normal((M, N)).astype(np.float32)
    c0 = out.copy()
    cuda._gemm_host(a, b, out, trans_a, trans_b, alpha, beta, bias, activation, param,
                    variant=variant)
    want = _reference(a, b, c0, trans_a, trans_b, alpha, beta, bias, activation, param)
    assert np.all(np.isfinite(out)), "non-finite values in the GPU result"
    err = _rel_err(out, want)
    assert err < rtol, f"relative Frobenius error {err:.3g} for M={M} N={N} K={K} ({variant})"


def test_no_gpu_queries_do_not_raise():
    n = cuda.device_count()
    assert isinstance(n, int) and n >= 0
    info = cuda.describe()
    assert isinstance(info, dict)
    assert {"cuda_runtime", "cuda_driver", "gpus"} <= set(info)
    assert isinstance(info["gpus"], list)
    if not cuda.is_available():
        assert n == 0
        assert info["gpus"] == []


def test_describe_reports_the_runtime_when_compiled():
    info = cuda.describe()
    if cuda.is_compiled():
        major, minor = info["cuda_runtime"].split(".")
        assert major.isdigit() and minor.isdigit()
    else:
        assert info["cuda_runtime"].startswith(("not compiled", "not loaded"))


def test_missing_module_reports_not_compiled(monkeypatch):
    # A None entry in sys.modules makes `from fastnn import _cuda` raise ModuleNotFoundError for
    # exactly that name, as a CPU-only build does.
    import sys

    monkeypatch.setitem(sys.modules, "fastnn._cuda", None)
    monkeypatch.delattr("fastnn._cuda", raising=False)
    monkeypatch.setattr(cuda, "_module", None)
    monkeypatch.setattr(cuda, "_import_error", None)
    monkeypatch.setattr(cuda, "_probed", False)
    assert not cuda.is_compiled()
    assert cuda.device_count() == 0
    assert cuda.describe() == {"cuda_runtime": "not compiled", "cuda_driver": None, "gpus": []}


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
    cuda._gemm_host(a, b, out)
    assert out.shape == (0, 3)


@needs_gpu
@pytest.mark.cuda
def test_strided_inputs_and_output():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((70, 90)).astype(np.float32)[::2, ::-3]  # (35, 30)
    b = np.asfortranarray(rng.standard_normal((30, 66)).astype(np.float32))
    big = np.full((35, 132), np.nan, np.float32)
    out = big[:, ::2]
    cuda._gemm_host(a, b, out)
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert _rel_err(out, want) < RTOL
    assert np.all(np.isnan(big[:, 1::2])), "wrote outside the strided output view"


@needs_gpu
@pytest.mark.cuda
def test_bad_arguments_raise():
    a = np.ones((3, 4), np.float32)
    b = np.ones((5, 6), np.float32)
    out = np.empty((3, 6), np.float32)
    with pytest.raises(ValueError, match="shapes do not match"):
        cuda._gemm_host(a, b, out)
    with pytest.raises(TypeError, match="float32"):
        cuda._gemm_host(a.astype(np.float64), np.ones((4, 6), np.float32), out)
    with pytest.raises(ValueError, match="activation"):
        cuda._gemm_host(a, np.ones((4, 6), np.float32), out, activation="swish")


@needs_gpu
def test_gemm_on_device_memory_with_torch():
    """gemm_device on tensors already on the GPU (the bench's and device layer's entry point)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    from fastnn import _cuda

    rng = np.random.default_rng(7)
    for m, k, n in [(1, 1, 1), (65, 33, 129), (300, 17, 70)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        ta, tb, tbias = (torch.from_numpy(v).cuda() for v in (a, b, bias))
        tc = torch.full((m, n), float("nan"), device="cuda")
        _cuda.gemm_device(ta.data_ptr(), tb.data_ptr(), tc.data_ptr(), m, n, k, k, n, n,
                          bias=tbias.data_ptr(), activation="relu",
                          stream=torch.cuda.current_stream().cuda_stream)
        ref = np.maximum(a.astype(np.float64) @ b + bias, 0)
        got = tc.cpu().numpy()
        assert np.isfinite(got).all()
        assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


# ---------------------------------------------------------------- v2 (gemm_sgemm2.cu)
# gemm_host copies operands contiguously, so v2 applies when the copies' leading dimensions are
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
    _check(M, N, K, with_bias=True, activation="relu", variant="auto", rtol=2e-5)
    _check(M, N, K, with_bias=True, activation="relu", variant="v1", rtol=2e-5)


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
        cuda._gemm_host(a, b, out, trans_a, trans_b, variant="v2")
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
        cuda._gemm_host(a, a, np.empty((4, 4), np.float32), variant="v3")


@needs_gpu
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,N,K", [(130, 131, 67), (5, 3, 1), (257, 129, 9)])
def test_v2_padded_leading_dims_with_torch(M, N, K, trans_a, trans_b):
    """Sizes that are not multiples of 4 inside buffers whose leading dimensions are: the partial
    float4 loads at the K, M and N edges and the per-element stores at the N edge."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    from fastnn import _cuda

    def pad4(n):
        return (n + 3) // 4 * 4 + 4

    rng = np.random.default_rng(11)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    c0 = rng.standard_normal((M, N)).astype(np.float32)
    lda, ldb, ldc = pad4(a.shape[1]), pad4(b.shape[1]), pad4(N)
    # NaN padding: a kernel that read past the logical edge would poison the result.
    ta = torch.full((a.shape[0], lda), float("nan"), device="cuda")
    tb = torch.full((b.shape[0], ldb), float("nan"), device="cuda")
    tc = torch.full((M, ldc), float("nan"), device="cuda")
    ta[:, : a.shape[1]] = torch.from_numpy(a).cuda()
    tb[:, : b.shape[1]] = torch.from_numpy(b).cuda()
    tc[:, :N] = torch.from_numpy(c0).cuda()
    tbias = torch.from_numpy(bias).cuda()
    _cuda.gemm_device(ta.data_ptr(), tb.data_ptr(), tc.data_ptr(), M, N, K, lda, ldb, ldc,
                      trans_a=trans_a, trans_b=trans_b, alpha=0.75, beta=0.5,
                      bias=tbias.data_ptr(), activation="leaky_relu", act_param=0.2,
                      stream=torch.cuda.current_stream().cuda_stream, variant="v2")
    got = tc.cpu().numpy()
    want = _reference(a, b, c0, trans_a, trans_b, 0.75, 0.5, bias, "leaky_relu", 0.2)
    assert np.isfinite(got[:, :N]).all()
    assert _rel_err(got[:, :N], want) < RTOL
    assert np.isnan(got[:, N:]).all(), "wrote past N into the padding"


@needs_gpu
def test_v2_misaligned_pointer_falls_back_with_torch():
    """A pointer one float past a 16-byte boundary: auto runs v1, forcing v2 is a ValueError."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    from fastnn import _cuda

    M = N = K = 1024
    rng = np.random.default_rng(3)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    flat = torch.empty(M * K + 1, device="cuda")
    flat[1:] = torch.from_numpy(a).cuda().reshape(-1)
    tb = torch.from_numpy(b).cuda()
    tc = torch.full((M, N), float("nan"), device="cuda")
    ptr_a = flat.data_ptr() + 4
    stream = torch.cuda.current_stream().cuda_stream
    with pytest.raises(ValueError, match="v2"):
        _cuda.gemm_device(ptr_a, tb.data_ptr(), tc.data_ptr(), M, N, K, K, N, N, stream=stream,
                          variant="v2")
    _cuda.gemm_device(ptr_a, tb.data_ptr(), tc.data_ptr(), M, N, K, K, N, N, stream=stream)
    got = tc.cpu().numpy()
    assert _rel_err(got, a.astype(np.float64) @ b) < 2e-5


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
    cuda._gemm_host(a, b, out, variant="tf32")
    err = _rel_err(out, a.astype(np.float64) @ b.astype(np.float64))
    assert 1e-5 < err < TF32_RTOL, f"TF32 error {err:.3g} (below 1e-5: not on tensor cores?)"
    with pytest.raises(ValueError, match="tf32"):
        cuda._gemm_host(a[:, :511].copy(), b[:511].copy(), out, variant="tf32")


@needs_gpu
def test_gemm_device_tf32_with_torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    from fastnn import _cuda

    rng = np.random.default_rng(9)
    m, k, n = 300, 68, 132
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    ta, tb, tbias = (torch.from_numpy(v).cuda() for v in (a, b, bias))
    tc = torch.full((m, n), float("nan"), device="cuda")
    _cuda.gemm_device_tf32(ta.data_ptr(), tb.data_ptr(), tc.data_ptr(), m, n, k, k, n, n,
                           bias=tbias.data_ptr(), activation="relu",
                           stream=torch.cuda.current_stream().cuda_stream)
    want = np.maximum(a.astype(np.float64) @ b + bias, 0)
    got = tc.cpu().numpy()
    assert np.isfinite(got).all()
    assert _rel_err(got, want) < TF32_RTOL
