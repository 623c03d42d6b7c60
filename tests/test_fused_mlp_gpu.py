"""The fused MLP kernel (csrc/cuda/fused_mlp.cu) against the float64 oracle (tests/oracle.py).

Each layer is checked against the oracle applied to the kernel's own input for that layer (its
previous output, or its dZ one layer up), with the operands rounded as the kernel rounds them
(tf32: cvt.rna; bf16: nearest even), so the tolerance is the FP32 accumulation error alone:
|got - want| <= TOL * (|x| @ |W| + |b|) per element. The whole stack is also compared end to end
with the oracle's own chain (Frobenius norm, more loosely). Device buffers start as NaN, so an element the
kernel fails to write fails the finiteness checks.

The kernels are reached through their raw-address entry points in fastnn._cuda
(fused_mlp_forward_device / fused_mlp_backward_device) on fastnn.Tensor memory and fastnn's
stream: see _forward and _backward below. The kernel tests need a GPU; the rounding helpers run on the CPU, and fused_mlp_applies needs
only the CUDA module."""

import numpy as np
import pytest

import oracle
from fastnn import cuda
from gpu import backend, dev, host, needs_gpu, needs_module, poisoned_dev

PRECISIONS = ["fp32", "tf32", "bf16"]
# Accumulation error per element, relative to |x| @ |W| + |b|; tensor-core products of rounded
# operands are exact, their sums are FP32 (possibly truncated inside the MMA).
TOL = {"fp32": 3e-5, "tf32": 1e-4, "bf16": 1e-4}
# End to end against the oracle's own chain: rounding boundaries crossed differently add an
# operand ulp here and there (2^-11 tf32, 2^-8 bf16).
E2E = {"fp32": 1e-4, "tf32": 2e-3, "bf16": 2e-2}
FROM_OUTPUT = [(None, 0.0), ("relu", 0.0), ("leaky_relu", 0.1), ("sigmoid", 0.0), ("tanh", 0.0),
               ("elu", 1.0), ("softplus", 0.0), ("step", 0.0)]
WIDTHS = [1, 3, 16, 17, 64, 100, 128]


def _addr(t):
    return 0 if t is None else t.data_ptr()


def _forward(x, weights, biases, activations, act_params, outs, precision):
    """The fused MLP forward kernel on device tensors (through its raw-address entry point)."""
    widths = [x.shape[1]] + [w.shape[1] for w in weights]
    backend().fused_mlp_forward_device(
        x.data_ptr(), x.shape[0], widths, [w.data_ptr() for w in weights],
        [_addr(b) for b in biases], list(activations), list(act_params),
        [_addr(o) for o in outs], precision, cuda.current_stream(0))


def _backward(weights, activations, act_params, outs, dy, dzs, dx, precision):
    """The fused MLP backward kernel on device tensors (through its raw-address entry point)."""
    widths = [weights[0].shape[0]] + [w.shape[1] for w in weights]
    backend().fused_mlp_backward_device(
        dy.shape[0], widths, [w.data_ptr() for w in weights], list(activations),
        list(act_params), [_addr(o) for o in outs], dy.data_ptr(), [_addr(d) for d in dzs],
        _addr(dx), precision, cuda.current_stream(0))


def _stack(widths, seed, bias=True):
    rng = np.random.default_rng(seed)
    ws = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
          for a, b in zip(widths[:-1], widths[1:])]
    bs = [(0.1 * rng.standard_normal(b)).astype(np.float32) if bias else None for b in widths[1:]]
    return ws, bs


def fused_mlp(X, ws, bs, names, params, precision, dY, want_dx=True):
    """Forward then backward through the kernels on device copies, every output NaN-poisoned
    first: (outs, dzs, dx) on the host (dx None without want_dx)."""
    M = X.shape[0]
    widths = [X.shape[1]] + [w.shape[1] for w in ws]
    tW, tb = [dev(w) for w in ws], [dev(b) for b in bs]
    outs = [poisoned_dev((M, w), np.float32) for w in widths[1:]]
    _forward(dev(X), tW, tb, names, params, outs, precision)
    dzs = [poisoned_dev((M, w), np.float32) for w in widths[1:]]
    dx = poisoned_dev((M, widths[0]), np.float32) if want_dx else None
    _backward(tW, names, params, outs, dev(dY), dzs, dx, precision)
    return [host(o) for o in outs], [host(d) for d in dzs], None if dx is None else host(dx)


def _lipschitz(name, param):
    return max(1.0, abs(param)) if name in ("leaky_relu", "elu") else 1.0


def _check(M, widths, acts, precision, seed=0, bias=True, want_dx=True, e2e=True):
    """Runs forward and backward on random data and checks every output, dZ and dX."""
    names = [a for a, _ in acts]
    params = [p for _, p in acts]
    rng = np.random.default_rng(seed + 1000)
    X = rng.standard_normal((M, widths[0])).astype(np.float32)
    dY = rng.standard_normal((M, widths[-1])).astype(np.float32)
    ws, bs = _stack(widths, seed, bias)
    outs, dzs, dx = fused_mlp(X, ws, bs, names, params, precision, dY, want_dx=want_dx)
    tol = TOL[precision]
    n = len(ws)
    assert len(outs) == n and len(dzs) == n
    assert (dx is None) == (not want_dx)

    # Forward, layer by layer from the kernel's own inputs.
    h = X
    for l in range(n):
        assert outs[l].shape == (M, widths[l + 1]) and outs[l].dtype == np.float32
        assert np.all(np.isfinite(outs[l])), f"layer {l}: unwritten or non-finite outputs"
        z, want = oracle.mlp_layer_forward(h, ws[l], bs[l], names[l], params[l], precision)
        bound = (np.abs(oracle.round_operand(h, precision))
                 @ np.abs(oracle.round_operand(ws[l], precision)))
        if bs[l] is not None:
            bound = bound + np.abs(bs[l].astype(np.float64))
        allowed = _lipschitz(names[l], params[l]) * tol * bound + 1e-6 * np.abs(want) + 1e-30
        err = np.abs(outs[l] - want)
        if names[l] == "step":  # a jump at 0: pre-activations within the error are either side
            err = np.where(np.abs(z) <= 4 * tol * bound, 0.0, err)
        worst = np.unravel_index(np.argmax(err / allowed), err.shape)
        assert np.all(err <= allowed), (
            f"forward layer {l} ({names[l]}, {precision}): error {err[worst]:.3g} > allowed "
            f"{allowed[worst]:.3g} at {worst}")
        h = outs[l]

    # Backward: dZ[last] from dY, then each dZ[l - 1] (and dX) from the kernel's dZ[l].
    d = oracle.mlp_act_deriv_from_output(names[-1], outs[-1], params[-1])
    want = dY.astype(np.float64) * d
    assert np.all(np.isfinite(dzs[-1])), "unwritten or non-finite dZ[last]"
    np.testing.assert_allclose(dzs[-1], want, rtol=1e-6, atol=1e-30)
    for l in range(n - 1, -1, -1):
        if l == 0 and not want_dx:
            break
        got = dzs[l - 1] if l > 0 else dx
        assert np.all(np.isfinite(got)), f"layer {l}: unwritten or non-finite gradient"
        dz = oracle.round_operand(dzs[l], precision)
        w = oracle.round_operand(ws[l], precision)
        din = dz @ w.T
        bound = np.abs(dz) @ np.abs(w).T
        if l > 0:
            deriv = oracle.mlp_act_deriv_from_output(names[l - 1], outs[l - 1], params[l - 1])
            want = din * deriv
            allowed = tol * bound * np.abs(deriv) + 1e-6 * np.abs(want) + 1e-30
        else:
            want, allowed = din, tol * bound + 1e-30
        err = np.abs(got - want)
        worst = np.unravel_index(np.argmax(err / allowed), err.shape)
        assert np.all(err <= allowed), (
            f"backward into layer {l} ({precision}): error {err[worst]:.3g} > allowed "
            f"{allowed[worst]:.3g} at {worst}")

    if e2e and "step" not in names:
        # The oracle's own chain for the forward (continuous without step); the backward chain
        # takes act' from the kernel's outputs, since a pre-activation within rounding of 0 may
        # fall on either side of relu's (leaky_relu's, elu's) kink and switch a whole gradient.
        ref = oracle.mlp_forward(X, ws, bs, names, params, precision)
        ref_dz, ref_dx = oracle.mlp_backward(outs, ws, names, dY, params, precision)
        pairs = list(zip(outs, ref)) + list(zip(dzs, ref_dz)) + ([(dx, ref_dx)] if want_dx else [])
        for got, want in pairs:
            denom = np.linalg.norm(want)
            rel = np.linalg.norm(got - want) / denom if denom else np.linalg.norm(got)
            assert rel < E2E[precision] * n, f"end to end ({precision}): relative error {rel:.3g}"
    return outs, dzs, dx


# ------------------------------------------------------------------ CPU: the rounding helpers
def test_round_bf16_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = np.concatenate([
        rng.standard_normal(20000).astype(np.float32) * np.float32(100),
        np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-40, -1e-40,
                  1.00390625, 1.01171875], np.float32),  # two exact ties: to even, both ways
        rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32),
    ])
    finite = ~np.isnan(x)
    ours = oracle.round_bf16(x)
    ref = torch.from_numpy(x.copy()).to(torch.bfloat16).to(torch.float32).numpy()
    assert np.array_equal(ours[finite].view(np.uint32), ref[finite].view(np.uint32))
    assert np.all(np.isnan(ours[~finite]))


def test_round_tf32_ties_away_and_error_bound():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(50000).astype(np.float32) * np.float32(1e3)
    r = oracle.round_tf32(x)
    assert np.all((r.view(np.uint32) & 0x1FFF) == 0), "low 13 mantissa bits must be clear"
    assert np.max(np.abs(r.astype(np.float64) / x - 1)) <= 2.0 ** -11
    # Nearest: no other 10-bit-mantissa neighbour is closer.
    ulp = np.ldexp(1.0, np.frexp(np.abs(r).astype(np.float64))[1] - 11)
    assert np.all(np.abs(r.astype(np.float64) - x) <= ulp / 2 * (1 + 1e-12))
    # Ties (low bits exactly 0x1000) go away from zero, unlike round-to-even.
    base = np.array([1.0, 1.0 + 2.0 ** -10, -1.0, -(1.0 + 2.0 ** -10)], np.float32).view(np.uint32)
    tie = (base | 0x1000).view(np.float32)
    got = oracle.round_tf32(tie).view(np.uint32)
    assert np.array_equal(got, base + 0x2000)
    special = np.array([np.inf, -np.inf, 0.0, -0.0], np.float32)
    assert np.array_equal(oracle.round_tf32(special).view(np.uint32), special.view(np.uint32))
    assert np.isnan(oracle.round_tf32(np.array([np.nan], np.float32)))[0]


def test_round_operand_is_identity_for_fp32():
    x = np.random.default_rng(2).standard_normal(100).astype(np.float32)
    assert np.array_equal(oracle.round_operand(x, "fp32"), x.astype(np.float64))


# ------------------------------------------------------------------ host side of the CUDA module
@needs_module
@pytest.mark.parametrize("precision", PRECISIONS)
def test_applies(precision):
    ok = cuda._fused_mlp_applies
    assert ok([64, 64, 64, 64, 1], ["relu", "relu", "tanh", None], precision)
    assert ok([128, 128], ["sigmoid"], precision)
    assert ok([1, 1], None, precision)
    assert not ok([129, 64], ["relu"], precision)
    assert not ok([64, 129, 10], ["relu", None], precision)
    assert not ok([64, 64, 10], ["gelu", None], precision)
    assert not ok([64, 0], [None], precision)
    assert not ok([64, 64, 64], ["leaky_relu", "relu"], precision, act_params=[-0.1, 0.0])
    assert not ok([64, 64], ["elu"], precision, act_params=[-1.0])
    assert ok([8] * 17, ["relu"] * 16, precision)
    assert not ok([8] * 18, ["relu"] * 17, precision)


@needs_module
def test_applies_rejects_bad_arguments():
    with pytest.raises(ValueError):
        cuda._fused_mlp_applies([64, 64], ["relu"], "fp16")
    with pytest.raises(ValueError):
        cuda._fused_mlp_applies([64, 64], ["swish"], "fp32")
    with pytest.raises(ValueError):
        cuda._fused_mlp_applies([64, 64, 64], ["relu"], "fp32")


@needs_gpu
def test_refuses_stacks_it_does_not_take():
    X = np.zeros((4, 129), np.float32)
    ws, bs = _stack([129, 8], 0)
    with pytest.raises(ValueError, match="does not take"):
        fused_mlp(X, ws, bs, ["relu"], [0.0], "fp32", np.zeros((4, 8), np.float32))
    X = np.zeros((4, 8), np.float32)
    ws, bs = _stack([8, 8], 0)
    with pytest.raises(ValueError, match="does not take"):
        fused_mlp(X, ws, bs, ["gelu"], [0.0], "bf16", np.zeros((4, 8), np.float32))
    with pytest.raises(ValueError, match="rows"):
        fused_mlp(X, [ws[0], ws[0].T[:3]], [None, None], [None, None], [0.0, 0.0], "fp32",
                  np.zeros((4, 3), np.float32))
    with pytest.raises(TypeError):
        fused_mlp(X.astype(np.float64), [w.astype(np.float64) for w in ws], [None], ["relu"],
                  [0.0], "fp32", np.zeros((4, 8)))


# ------------------------------------------------------------------ GPU: the kernels
@needs_gpu
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("width", WIDTHS)
def test_widths(precision, width):
    _check(1000, [width] * 4, [("relu", 0.0)] * 3, precision, seed=width)


@needs_gpu
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6])
def test_depths_mixed_widths(precision, depth):
    widths = [WIDTHS[(3 * i + depth) % len(WIDTHS)] for i in range(depth + 1)]
    acts = [FROM_OUTPUT[(i + depth) % len(FROM_OUTPUT)] for i in range(depth)]
    acts = [a if a[0] != "step" else ("tanh", 0.0) for a in acts]
    _check(517, widths, acts, precision, seed=depth)


@needs_gpu
@pytest.mark.parametrize("precision", PRECISIONS)
# On a 132-SM H100 the slab is 16 rows up to M = 2112, then 32 (M = 5000), 64 (2^14), 128 (20000).
@pytest.mark.parametrize("M", [1, 15, 16, 17, 127, 128, 129, 1000, 5000, 2 ** 14, 20000])
def test_batch_sizes(precision, M):
    _check(M, [64] * 5, [("relu", 0.0)] * 3 + [(None, 0.0)], precision, seed=M)


@needs_gpu
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("act", FROM_OUTPUT, ids=[str(a[0]) for a in FROM_OUTPUT])
def test_activations(precision, act):
    _check(300, [17, 33, 64, 9], [act, act, act], precision, seed=7)


@needs_gpu
@pytest.mark.parametrize("precision", PRECISIONS)
def test_no_bias_and_no_dx(precision):
    _check(200, [20, 100, 128, 5], [("tanh", 0.0), ("sigmoid", 0.0), (None, 0.0)], precision,
           bias=False)
    _check(200, [20, 100, 5], [("elu", 0.5), (None, 0.0)], precision, want_dx=False)


@needs_gpu
@pytest.mark.parametrize("precision", PRECISIONS)
def test_sixteen_layers(precision):
    widths = [WIDTHS[i % len(WIDTHS)] for i in range(17)]
    _check(300, widths, [("tanh", 0.0)] * 16, precision, seed=16)


@needs_gpu
@pytest.mark.parametrize("precision", PRECISIONS)
def test_deterministic(precision):
    a = _check(2000, [64] * 5, [("relu", 0.0)] * 4, precision, e2e=False)
    b = _check(2000, [64] * 5, [("relu", 0.0)] * 4, precision, e2e=False)
    for x, y in zip(a[0] + a[1] + [a[2]], b[0] + b[1] + [b[2]]):
        assert np.array_equal(x.view(np.uint32), y.view(np.uint32))


@needs_gpu
def test_dz_aliasing_dy_and_inference_without_hidden_outputs():
    """dZ[last] given dY's own buffer (the header allows it), and an inference forward that
    stores no hidden output (None), agree bit for bit with separate buffers."""
    widths, M = [33, 64, 64, 10], 1000
    acts = ["relu", "tanh", "sigmoid"]  # a last activation, so that dZ[last] != dY
    ws, bs = _stack(widths, 3)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((M, widths[0])).astype(np.float32)
    dY = rng.standard_normal((M, widths[-1])).astype(np.float32)
    params = [0.0] * 3
    ref_outs, ref_dzs, ref_dx = fused_mlp(X, ws, bs, acts, params, "tf32", dY)

    tX, tW, tb, tdY = dev(X), [dev(w) for w in ws], [dev(b) for b in bs], dev(dY)
    outs = [poisoned_dev((M, w), np.float32) for w in widths[1:]]
    dzs = [poisoned_dev((M, w), np.float32) for w in widths[1:-1]] + [tdY]  # aliasing
    dx = poisoned_dev((M, widths[0]), np.float32)
    _forward(tX, tW, tb, acts, params, outs, "tf32")
    _backward(tW, acts, params, outs, tdY, dzs, dx, "tf32")
    # Inference: hidden outputs not stored, the last one the same bits.
    last = poisoned_dev((M, widths[-1]), np.float32)
    _forward(tX, tW, tb, acts, params, [None, None, last], "tf32")
    for got, want in zip(outs + dzs + [dx, last], ref_outs + ref_dzs + [ref_dx, ref_outs[-1]]):
        assert np.array_equal(host(got).view(np.uint32), want.view(np.uint32))
