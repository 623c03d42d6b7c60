"""The CUDA activations, softmax rows, dropout and losses (fastnn._cuda's low-level entry points,
device pointers as ints) against the float64 oracle, and dropout against the CPU mask bit for bit.

GPU only: device memory is held by torch.cuda tensors (`data_ptr()`, and the current stream's
handle), so these tests skip without a usable GPU, without fastnn's CUDA build, or without a
CUDA-enabled torch.

Tolerances (relative, |got - ref| <= rtol |ref| + atol): float32 forward 2e-6 and gradients 4e-6
(CUDA's single-precision libm is within 1-4 ulp: expf 2, erfcf 4, tanhf 2); float64 1e-12. Losses
and their gradients relative 1e-5 (float32), 1e-11 (float64: sums of up to 3M terms).

The harness itself was checked by running it with the CPU kernels standing in for the GPU (only
the tests of argument errors, which the stand-in does not emulate, then fail)."""

import numpy as np
import pytest

import oracle
from fastnn import cuda

try:
    import torch

    _TORCH_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover - depends on the machine
    torch = None
    _TORCH_CUDA = False

pytestmark = pytest.mark.skipif(
    not (cuda.is_available() and _TORCH_CUDA),
    reason="needs a usable CUDA device, fastnn built with CUDA, and torch with CUDA "
           f"(fastnn.cuda.is_available()={cuda.is_available()}, torch.cuda={_TORCH_CUDA})",
)

DTYPES = [np.float32, np.float64]
NAME = {np.float32: "float32", np.float64: "float64"}
RTOL = {np.float32: 2e-6, np.float64: 1e-12}
GRAD_RTOL = {np.float32: 4e-6, np.float64: 1e-12}
ATOL = {np.float32: 6e-45, np.float64: 1e-300}
# float64: a sum over 70001 rows (the loss, and the weighted normaliser every gradient element is
# divided by) can drift N eps from the oracle's order of summation.
LOSS_TOL = {np.float32: 1e-5, np.float64: 1e-11}
# 1 to 5 elements (no float4 group / ragged group), around the float4 and warp widths, and large
# enough for a grid-stride loop to wrap.
SIZES = [1, 3, 4, 5, 31, 32, 33, 1000, 100003, 3_000_001]
ELEMENTWISE = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step"]
PARAMS = {"leaky_relu": 0.2, "elu": 1.7}
FROM_OUTPUT = ["relu", "leaky_relu", "sigmoid", "tanh", "elu", "softplus", "step"]


def _mod():
    return cuda._require()


def dev(a):
    return torch.from_numpy(np.ascontiguousarray(a)).cuda()


def host(t):
    torch.cuda.synchronize()
    return t.cpu().numpy()


def stream():
    return torch.cuda.current_stream().cuda_stream


def oracle_kw(name):
    return {"negative_slope": PARAMS.get(name, 0.01), "alpha": PARAMS.get(name, 1.0)}


def assert_close(got, ref, rtol, atol, what):
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape, what
    ok = (np.isnan(ref) & np.isnan(got)) | (got == ref) | (np.abs(got - ref) <= rtol * np.abs(ref) + atol)
    if not ok.all():
        i = np.flatnonzero(~ok.reshape(-1))[0]
        raise AssertionError(f"{what}: {(~ok).sum()} mismatches, first at {i}: got "
                             f"{got.reshape(-1)[i]!r}, want {ref.reshape(-1)[i]!r}")


def inputs(rng, n, dtype):
    """Normal values, wide values, and the special ones, shuffled."""
    x = np.where(rng.random(n) < 0.5, rng.standard_normal(n) * 3, rng.uniform(-60, 60, n))
    special = np.array([0.0, -0.0, 1e4, -1e4, np.nan, 1e-30, -1e-30, -41, -39, -13.5])
    k = min(n, len(special))
    x[rng.choice(n, k, replace=False)] = special[:k]
    return x.astype(dtype)


# ------------------------------------------------------------------ activations
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_act_forward_backward(name, dtype, rng):
    m = _mod()
    for n in SIZES:
        x = inputs(rng, n, dtype)
        xd = dev(x)
        yd = torch.empty_like(xd)
        m.act_forward(name, PARAMS.get(name, 0.0), xd.data_ptr(), yd.data_ptr(), n, NAME[dtype],
                      stream())
        ref = oracle.activation(name, x, **oracle_kw(name))
        assert_close(host(yd), ref, RTOL[dtype], ATOL[dtype], f"{name} n={n}")

        dy = rng.standard_normal(n).astype(dtype)
        dyd = dev(dy)
        dxd = torch.empty_like(xd)
        m.act_backward(name, PARAMS.get(name, 0.0), dyd.data_ptr(), xd.data_ptr(), dxd.data_ptr(),
                       n, NAME[dtype], stream())
        ref = dy * oracle.activation_derivative(name, x, **oracle_kw(name))
        atol = ATOL[dtype] * (1 + np.abs(dy))
        if name == "gelu":
            atol = atol + GRAD_RTOL[dtype] * np.abs(dy)  # its root at x = -0.75
        assert_close(host(dxd), ref, GRAD_RTOL[dtype], atol, f"{name}' n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", FROM_OUTPUT)
def test_act_backward_from_output(name, dtype, rng):
    m = _mod()
    n = 100003
    x = inputs(rng, n, dtype)
    x[np.isnan(x)] = 0.0  # the oracle's relu' / step' of a NaN output is 0, the kernels' NaN
    y = oracle.activation(name, x, **oracle_kw(name)).astype(dtype)
    dy = rng.standard_normal(n).astype(dtype)
    yd, dyd = dev(y), dev(dy)
    dxd = torch.empty_like(yd)
    m.act_backward(name, PARAMS.get(name, 0.0), dyd.data_ptr(), yd.data_ptr(), dxd.data_ptr(), n,
                   NAME[dtype], stream(), from_output=True)
    y64 = y.astype(np.float64)
    if name == "softplus":
        deriv = -np.expm1(-y64)
    else:
        deriv = oracle.act_deriv_from_output(y64, name, **oracle_kw(name))
    eps = np.finfo(dtype).eps
    assert_close(host(dxd), dy * deriv, 0.0, 40 * eps * np.abs(dy) + ATOL[dtype], f"{name}' from y")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_act_special_values_match_cpu(name, dtype):
    """Infinities, NaN, signed zeros, gelu's cut at -40: the CUDA kernels give what the CPU
    kernels give (NaN exactly where they have NaN), forward and backward."""
    from fastnn import _C

    m = _mod()
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e4, -1e4, -40.0, -40.5, -39.5, 1e-30,
                  -1e-30, 88.0, -88.0, -13.5, 0.5], dtype)
    n = x.size
    param = PARAMS.get(name, 0.0)
    xd = dev(x)
    yd = torch.empty_like(xd)
    m.act_forward(name, param, xd.data_ptr(), yd.data_ptr(), n, NAME[dtype], stream())
    cpu_y = np.empty_like(x)
    _C.act_forward(x, cpu_y, name, param)
    got = host(yd)
    assert np.array_equal(np.isnan(got), np.isnan(cpu_y)), f"{name}: NaN pattern {got} vs {cpu_y}"
    assert_close(got, cpu_y, 2 * RTOL[dtype], ATOL[dtype], f"{name} special values vs CPU")

    dy = np.linspace(-2, 2, n).astype(dtype)
    dyd = dev(dy)
    dxd = torch.empty_like(xd)
    m.act_backward(name, param, dyd.data_ptr(), xd.data_ptr(), dxd.data_ptr(), n, NAME[dtype],
                   stream())
    cpu_dx = np.empty_like(x)
    _C.act_backward(dy, x, cpu_dx, name, param, False)
    got = host(dxd)
    assert np.array_equal(np.isnan(got), np.isnan(cpu_dx)), f"{name}': NaN pattern {got} vs {cpu_dx}"
    # Subnormal results (gelu' near -13.5) round differently on each side: a few 2^-149.
    assert_close(got, cpu_dx, 2 * GRAD_RTOL[dtype], 8 * ATOL[dtype] * (1 + np.abs(dy)),
                 f"{name}' special values vs CPU")


def test_act_backward_from_output_refuses_gelu():
    m = _mod()
    t = torch.zeros(4, device="cuda")
    with pytest.raises(ValueError, match="gelu"):
        m.act_backward("gelu", 0.0, t.data_ptr(), t.data_ptr(), t.data_ptr(), 4, "float32",
                       stream(), from_output=True)
    with pytest.raises(ValueError, match="elu"):
        m.act_backward("elu", -1.0, t.data_ptr(), t.data_ptr(), t.data_ptr(), 4, "float32",
                       stream(), from_output=True)


def test_act_in_place_and_unaligned(rng):
    """y == x, and pointers off the 16-byte grid (the scalar path) give the same values."""
    m = _mod()
    n = 10001
    x = inputs(rng, n + 1, np.float32)
    ref = oracle.activation("gelu", x[1:])
    buf = dev(x)
    view = buf[1:]  # 4 bytes past a 256-byte aligned start
    assert view.data_ptr() % 16 != 0
    m.act_forward("gelu", 0.0, view.data_ptr(), view.data_ptr(), n, "float32", stream())
    assert_close(host(view), ref, RTOL[np.float32], ATOL[np.float32], "gelu in place, unaligned")


def test_bad_arguments():
    m = _mod()
    t = torch.zeros(4, device="cuda")
    with pytest.raises(TypeError, match="dtype"):
        m.act_forward("relu", 0.0, t.data_ptr(), t.data_ptr(), 4, "float16", stream())
    with pytest.raises(ValueError, match="activation"):
        m.act_forward("swish", 0.0, t.data_ptr(), t.data_ptr(), 4, "float32", stream())
    with pytest.raises(ValueError, match="null"):
        m.act_forward("relu", 0.0, 0, 0, 4, "float32", stream())
    with pytest.raises(ValueError, match="rate"):
        m.dropout_forward(t.data_ptr(), t.data_ptr(), t.data_ptr(), 4, 1.5, 0, "float32", stream())
    m.act_forward("relu", 0.0, 0, 0, 0, "float32", stream())  # n == 0: nothing to do


# ------------------------------------------------------------------ softmax rows
# Rows go to 4 lanes (cols <= 4), 16 (<= 16), a warp (<= 1024) or a block: each size, with row
# counts that leave the last block's groups partly empty, and enough rows to wrap the grid.
SOFTMAX_SHAPES = [(1, 1), (3, 4), (1001, 2), (3, 7), (1003, 10), (5, 32), (33, 33), (4096, 10),
                  (70001, 3), (7, 1024), (9, 1025), (3, 50000)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True])
def test_softmax_rows(log, dtype, rng):
    m = _mod()
    for rows, cols in SOFTMAX_SHAPES:
        x = (4 * rng.standard_normal((rows, cols))).astype(dtype)
        x[0, 0] = 1e4  # one dominant class: no overflow, log_softmax ~ 0 there
        if rows > 2:
            x[1, :] = -np.inf
            x[1, cols // 2] = 2.0  # -inf elements (including the first) add nothing
            x[2, cols - 1] = np.nan
        xd = dev(x)
        yd = torch.empty_like(xd)
        m.softmax_forward(xd.data_ptr(), yd.data_ptr(), rows, cols, NAME[dtype], stream(), log=log)
        with np.errstate(invalid="ignore"):
            ref = (oracle.log_softmax if log else oracle.softmax)(x)
        if rows > 2:
            ref[2, :] = np.nan  # NaN in a row makes the whole row NaN
        rtol = 2 * RTOL[dtype]
        atol = rtol * (np.nanmax(np.abs(ref[np.isfinite(ref)])) if log else 0.0) + ATOL[dtype]
        assert_close(host(yd), ref, rtol, atol, f"{'log_' if log else ''}softmax {rows}x{cols}")

        # Backward from the forward output, against the oracle's explicit Jacobians (small rows).
        if cols <= 1025 and rows <= 64:
            xf = x[np.isfinite(x).all(axis=1)]
            if len(xf) == 0:
                continue
            xd2 = dev(xf)
            yd2 = torch.empty_like(xd2)
            m.softmax_forward(xd2.data_ptr(), yd2.data_ptr(), len(xf), cols, NAME[dtype], stream(),
                              log=log)
            dy = rng.standard_normal(xf.shape).astype(dtype)
            dyd = dev(dy)
            dxd = torch.empty_like(dyd)
            m.softmax_backward(dyd.data_ptr(), yd2.data_ptr(), dxd.data_ptr(), len(xf), cols,
                               NAME[dtype], stream(), log=log)
            ref = (oracle.log_softmax_vjp if log else oracle.softmax_vjp)(dy, xf)
            scale = np.abs(dy).max()
            assert_close(host(dxd), ref, 0.0, 8 * GRAD_RTOL[dtype] * scale,
                         f"{'log_' if log else ''}softmax' {rows}x{cols}")


# ------------------------------------------------------------------ dropout
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 4, 5, 17, 1000, 300_001])
@pytest.mark.parametrize("aligned", [True, False])
def test_dropout_matches_cpu_bit_for_bit(dtype, n, aligned, rng):
    from fastnn import _C

    m = _mod()
    x = rng.standard_normal(n + 1).astype(dtype)
    x[0] = np.inf  # a dropped inf gives 0, not NaN
    for seed, rate in [(0, 0.5), (int(rng.integers(0, 2**63)) * 2 + 1, float(rng.uniform(0.05, 0.9))),
                       (2**40 + 7, 0.0), (123, 1.0), (5, 1e-9)]:
        xs = x[1:] if not aligned else x[:n]
        buf = dev(x)
        xd = buf[1:] if not aligned else buf[:n]
        yb = torch.empty(n + 1, dtype=buf.dtype, device="cuda")
        mb = torch.empty(n + 1, dtype=torch.uint8, device="cuda")
        yd, md = (yb[1:], mb[1:]) if not aligned else (yb[:n], mb[:n])
        m.dropout_forward(xd.data_ptr(), yd.data_ptr(), md.data_ptr(), n, rate, seed, NAME[dtype],
                          stream())
        cpu_y, cpu_mask = _C.dropout_forward(np.ascontiguousarray(xs), rate, seed)
        got_mask = host(md)
        assert np.array_equal(got_mask, cpu_mask), f"mask differs (n={n}, seed={seed}, rate={rate})"
        assert np.array_equal(got_mask, oracle.dropout(xs, rate, seed)[1])
        got_y = host(yd)
        assert np.array_equal(got_y.view(np.uint8), cpu_y.view(np.uint8)), "y differs from the CPU"

        dy = rng.standard_normal(n).astype(dtype)
        dyd = dev(dy)
        dxd = torch.empty_like(dyd)
        m.dropout_backward(dyd.data_ptr(), md.data_ptr(), dxd.data_ptr(), n, rate, NAME[dtype],
                           stream())
        cpu_dx = _C.dropout_backward(dy, cpu_mask, rate)
        assert np.array_equal(host(dxd), cpu_dx), "dropout backward differs from the CPU"


# ------------------------------------------------------------------ losses
def _workspace():
    return torch.empty(_mod().loss_workspace_bytes(), dtype=torch.uint8, device="cuda")


def check_loss(loss, grad, ref, dtype, what):
    ref_loss, ref_grad = ref
    assert isinstance(loss, float)
    loss_err = abs(loss - ref_loss) / max(abs(ref_loss), 1e-300)
    assert loss_err < LOSS_TOL[dtype], f"{what}: loss {loss!r} vs {ref_loss!r} ({loss_err:.3g})"
    denom = np.linalg.norm(ref_grad)
    grad_err = np.linalg.norm(grad.astype(np.float64) - ref_grad) / (denom if denom > 0 else 1.0)
    assert grad_err < LOSS_TOL[dtype], f"{what}: gradient relative error {grad_err:.3g}"


XENT_SHAPES = [(1, 1), (1, 5), (7, 3), (1001, 2), (5, 16), (1003, 10), (33, 17), (3, 33),
               (128, 1000), (4096, 10), (20000, 10), (70001, 3), (5, 1025), (4, 20000)]


def run_xent(logits, labels=None, probs=None, weight=None, smoothing=0.0, ws=None):
    m = _mod()
    dtype = logits.dtype
    n, c = logits.shape
    ld = dev(logits)
    gd = torch.full_like(ld, 7.0)
    keep = []

    def ptr(a, as_dtype=None):
        if a is None:
            return 0
        t = dev(np.asarray(a, as_dtype) if as_dtype else a)
        keep.append(t)
        return t.data_ptr()

    ws = _workspace() if ws is None else ws
    loss = m.softmax_cross_entropy(ld.data_ptr(), ptr(labels, np.int64), ptr(probs), ptr(weight),
                                   gd.data_ptr(), n, c, smoothing, ws.data_ptr(), NAME[dtype.type],
                                   stream())
    return loss, host(gd)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_index_labels(dtype, weighted, smoothing, rng):
    for n, c in XENT_SHAPES:
        logits = (3 * rng.standard_normal((n, c))).astype(dtype)
        labels = rng.integers(0, c, n)
        w = rng.uniform(0.1, 2.0, c).astype(dtype) if weighted else None
        loss, grad = run_xent(logits, labels=labels, weight=w, smoothing=smoothing)
        ref = oracle.softmax_cross_entropy(logits, labels, class_weight=w, label_smoothing=smoothing)
        check_loss(loss, grad, ref, dtype, f"xent {n}x{c}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_probabilities(dtype, weighted, smoothing, rng):
    for n, c in XENT_SHAPES:
        logits = (3 * rng.standard_normal((n, c))).astype(dtype)
        p = rng.random((n, c)) + 1e-3
        p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
        w = rng.uniform(0.1, 2.0, c).astype(dtype) if weighted else None
        loss, grad = run_xent(logits, probs=p, weight=w, smoothing=smoothing)
        ref = oracle.softmax_cross_entropy(logits, p, class_weight=w, label_smoothing=smoothing)
        check_loss(loss, grad, ref, dtype, f"xent probs {n}x{c}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_extreme_logits(dtype, rng):
    """Logits of 1e4 (no overflow) and a confident correct class (1 - p_y kept to its
    precision)."""
    n, c = 64, 100
    logits = rng.standard_normal((n, c)).astype(dtype)
    labels = rng.integers(0, c, n)
    logits[np.arange(n), labels] += 12
    logits[0] += 1e4
    loss, grad = run_xent(logits, labels=labels)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    ref = oracle.softmax_cross_entropy(logits, labels)
    check_loss(loss, grad, ref, dtype, "xent extreme")
    # The labelled class's gradient (p_y - 1) / N, small here, to its own relative precision.
    gy = grad[np.arange(n), labels].astype(np.float64)
    ry = ref[1][np.arange(n), labels]
    assert np.all(np.abs(gy - ry) <= 1e-4 * np.abs(ry) + 1e-30)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [3, 2000])
def test_cross_entropy_untargeted_minus_infinity(dtype, c):
    # A class that can never be chosen: its mass is 0, so it must not make the loss 0 * inf;
    # placed first, it is also the first element the online max sees.
    z = np.zeros((2, c), dtype)
    z[:, 0] = -np.inf
    z[:, 2] = 1.0
    loss, grad = run_xent(z, labels=np.array([2, 2]))
    assert loss == pytest.approx(np.log1p((c - 2) * np.exp(-1.0)), rel=1e-6)
    assert np.all(np.isfinite(grad)) and np.all(grad[:, 0] == 0.0)


def test_cross_entropy_bad_label_raises_and_leaves_grad(rng):
    m = _mod()
    logits = rng.standard_normal((50, 10)).astype(np.float32)
    for bad in (10, -1, 2**40):
        labels = rng.integers(0, 10, 50)
        labels[17] = bad
        labels[33] = 11
        ld, yd = dev(logits), dev(labels.astype(np.int64))
        gd = torch.full_like(ld, 7.0)
        ws = _workspace()
        with pytest.raises(ValueError, match=f"got {bad} at position 17"):
            m.softmax_cross_entropy(ld.data_ptr(), yd.data_ptr(), 0, 0, gd.data_ptr(), 50, 10, 0.0,
                                    ws.data_ptr(), "float32", stream())
        assert np.all(host(gd) == 7.0), "the gradient was written despite a bad label"
    # The workspace is fine for the next call.
    labels = rng.integers(0, 10, 50)
    loss, grad = run_xent(logits, labels=labels, ws=ws)
    check_loss(loss, grad, oracle.softmax_cross_entropy(logits, labels), np.float32, "after error")


def test_cross_entropy_zero_weights_raise(rng):
    logits = rng.standard_normal((4, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="class_weight"):
        run_xent(logits, labels=np.array([0, 0, 1, 1]), weight=np.array([0, 0, 1], np.float32))


def test_cross_entropy_argument_errors():
    m = _mod()
    t = torch.zeros(8, device="cuda")
    ws = _workspace()
    with pytest.raises(ValueError, match="not both"):
        m.softmax_cross_entropy(t.data_ptr(), t.data_ptr(), t.data_ptr(), 0, t.data_ptr(), 2, 4,
                                0.0, ws.data_ptr(), "float32", stream())
    with pytest.raises(ValueError, match="at least one row"):
        m.softmax_cross_entropy(t.data_ptr(), t.data_ptr(), 0, 0, t.data_ptr(), 0, 4, 0.0,
                                ws.data_ptr(), "float32", stream())
    with pytest.raises(ValueError, match="label_smoothing"):
        m.softmax_cross_entropy(t.data_ptr(), t.data_ptr(), 0, 0, t.data_ptr(), 2, 4, 1.5,
                                ws.data_ptr(), "float32", stream())


def test_cross_entropy_deterministic(rng):
    logits = (3 * rng.standard_normal((30000, 37))).astype(np.float32)
    labels = rng.integers(0, 37, 30000)
    a = run_xent(logits, labels=labels)
    b = run_xent(logits, labels=labels)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])


def run_elem(fn, a, b):
    m = _mod()
    ad, bd = dev(a), dev(b)
    gd = torch.empty_like(ad)
    ws = _workspace()
    loss = getattr(m, fn)(ad.data_ptr(), bd.data_ptr(), gd.data_ptr(), a.size, ws.data_ptr(),
                          NAME[a.dtype.type], stream())
    return loss, host(gd)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", ["binary_cross_entropy_with_logits", "mse", "mae"])
def test_elementwise_losses(fn, dtype, rng):
    for n in [1, 3, 4, 5, 33, 1000, 100003, 3_000_001]:
        a = (4 * rng.standard_normal(n)).astype(dtype)
        if fn == "binary_cross_entropy_with_logits":
            a[0] = 1e4 if n > 1 else a[0]
            b = rng.random(n).astype(dtype)
        else:
            b = (4 * rng.standard_normal(n)).astype(dtype)
            b[0] = a[0]  # a zero difference: MAE's slope 0
        loss, grad = run_elem(fn, a, b)
        ref = getattr(oracle, fn)(a, b)
        check_loss(loss, grad, ref, dtype, f"{fn} n={n}")
        again = run_elem(fn, a, b)
        assert again[0] == loss and np.array_equal(again[1], grad), "not deterministic"


def test_elementwise_loss_empty_raises():
    m = _mod()
    ws = _workspace()
    with pytest.raises(ValueError, match="at least one element"):
        m.mse(0, 0, 0, 0, ws.data_ptr(), "float32", stream())
