"""fastnn.ops activations (relu, leaky_relu, sigmoid, tanh, gelu, elu, softplus, step, softmax,
log_softmax) and activation_grad against the float64 oracle, by central finite differences, at
extreme and non-finite inputs, on every SIMD path and thread count, and on bad input.

Tolerances (relative, |got - ref| <= rtol |ref| + atol): float32 forward 8e-7, float32 gradients
2e-6; float64 1e-12. atol covers float32 denormals only (a few units of 2^-149). Measured max
relative errors of the AVX-512/AVX2 paths on 1.2M points: sigmoid 1.9e-7, tanh 1.6e-7, gelu 4.3e-7,
elu 8.4e-8, softplus 1.2e-7; gradients 3e-7 or less (gelu's 3.9e-7 away from its root at -0.75). The kernels go parallel from 2**16 elements in
chunks of 2**14, so 100003 elements span several chunks run in parallel and a ragged tail."""

import math

import numpy as np
import pytest

import fastnn
from fastnn import _C
from fastnn import ops

import oracle
from check import DENORMAL, EDGE_SIZES, assert_close, check_op, tol

DTYPES = [np.float32, np.float64]
RTOL = {d: tol("elementwise", d) for d in DTYPES}
GRAD_RTOL = {d: tol("elementwise_grad", d) for d in DTYPES}
ATOL = DENORMAL
SIZES = EDGE_SIZES
ELEMENTWISE = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step"]
# The hyper-parameter each activation takes, with a non-default value to catch a dropped one.
PARAMS = {"leaky_relu": {"negative_slope": 0.2}, "elu": {"alpha": 1.7}}
FROM_OUTPUT = ["relu", "leaky_relu", "sigmoid", "tanh", "elu", "softplus", "step"]


def forward(name, x, **kw):
    return getattr(ops, name)(x, **PARAMS.get(name, {}), **kw)


def oracle_params(name):
    p = PARAMS.get(name, {})
    return {"negative_slope": p.get("negative_slope", 0.01), "alpha": p.get("alpha", 1.0)}


def sample(rng, shape, dtype):
    """Normal data at mixed scales (0.01 to 30: the tails of every activation), some exact
    zeros (the kinks)."""
    n = int(np.prod(shape))
    scale = rng.choice([0.01, 1.0, 4.0, 30.0], size=n)
    x = rng.standard_normal(n) * scale
    x[rng.random(n) < 0.01] = 0.0
    return x.reshape(shape).astype(dtype)


# ------------------------------------------------------------------ against the oracle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_forward(simd, threads, name, dtype, rng):
    check_op(lambda x, out: forward(name, x, out=out),
             lambda x: oracle.activation(name, x, **oracle_params(name)),
             [(n,) for n in SIZES], dtype, inputs=lambda shape, dt: (sample(rng, shape, dt),),
             outputs=lambda shape: [shape], kind="elementwise", what=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_grad(simd, threads, name, dtype, rng):
    for n in SIZES:
        x = sample(rng, (n,), dtype)
        dy = rng.standard_normal(n).astype(dtype)
        dx = ops.activation_grad(name, dy, x, **PARAMS.get(name, {}))
        assert dx.dtype == dtype and dx.shape == x.shape
        ref = dy.astype(np.float64) * oracle.activation_derivative(name, x, **oracle_params(name))
        # gelu' = Phi(x) + x phi(x) has a root near x = -0.75 where both terms are ~0.23: the
        # error there is relative to those terms (that is, to |dy|), not to the tiny result.
        # dy * act'(x) rounds twice where act'(x) is a denormal: a few 2^-149 times (1 + |dy|).
        atol = ATOL[dtype] * (1 + np.abs(dy))
        if name == "gelu":
            atol = atol + GRAD_RTOL[dtype] * np.abs(dy)
        assert_close(dx, ref, GRAD_RTOL[dtype], atol, f"{name}' n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", FROM_OUTPUT)
def test_grad_from_output(simd, name, dtype, rng):
    """The C++ backward from y = act(x), for the training engine: same dy * act'(x)."""
    param = {"leaky_relu": 0.2, "elu": 1.7}.get(name, 0.0)
    assert _C.act_grad_from_output_ok(name, param)
    for n in SIZES[:-1]:
        # Away from where y loses x's information in the working precision (sigmoid(x) -> 1).
        x = sample(rng, (n,), dtype).clip(-8, 8)
        dy = rng.standard_normal(n).astype(dtype)
        y = forward(name, x)
        dx = np.full(n, np.nan, dtype)
        _C.act_backward(dy, y, dx, name, param, True)
        ref = dy.astype(np.float64) * oracle.activation_derivative(name, x, **oracle_params(name))
        # The derivative from a rounded y inherits y's rounding, amplified where it cancels
        # (1 - y for sigmoid near 1): an absolute error on the scale of |dy| eps.
        eps = np.finfo(dtype).eps
        assert_close(dx, ref, 0.0, 40 * eps * np.abs(dy) + ATOL[dtype], f"{name}' from y n={n}")


def test_grad_from_output_refused():
    assert not _C.act_grad_from_output_ok("gelu", 0.0)
    assert not _C.act_grad_from_output_ok("leaky_relu", -0.5)
    assert not _C.act_grad_from_output_ok("elu", -1.0)
    a = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="gelu"):
        _C.act_backward(a, a, a.copy(), "gelu", 0.0, True)


ROW_SHAPES = [(1,), (7,), (1, 1), (3, 8), (2, 9), (2, 15), (2, 16), (3, 17), (2, 31), (2, 32),
              (2, 33), (5, 100), (2, 3, 7), (300, 257), (1, 70001)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax(simd, threads, name, dtype, rng):
    for shape in ROW_SHAPES:
        x = (4 * rng.standard_normal(shape)).astype(dtype)
        y = getattr(ops, name)(x)
        assert y.dtype == dtype and y.shape == x.shape
        ref = getattr(oracle, name)(x)
        # Row sums of up to 70001 terms: a little more room than the element-wise functions.
        rtol = 4 * RTOL[dtype]
        atol = rtol * (np.abs(ref).max() if name == "log_softmax" else 0.0) + ATOL[dtype]
        assert_close(y, ref, rtol, atol, f"{name} {shape}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_grad(simd, threads, name, dtype, rng):
    for shape in ROW_SHAPES[:-1]:  # the oracle builds one cols x cols Jacobian per row
        x = (4 * rng.standard_normal(shape)).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        dx = ops.activation_grad(name, dy, x)
        ref = getattr(oracle, name + "_vjp")(dy, x)
        # A vector-Jacobian product subtracts a row sum: errors scale with |dy|, not with |dx|.
        scale = np.abs(dy).max(axis=-1, keepdims=True)
        assert_close(dx, ref, 0.0, 8 * GRAD_RTOL[dtype] * scale, f"{name}' {shape}")


# ------------------------------------------------------------------ finite differences
@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if n != "step"])
def test_grad_finite_differences(name, rng):
    x = sample(rng, (2000,), np.float64)
    x = x[np.abs(x) > 1e-3]  # away from the kinks of relu, leaky_relu, elu
    dy = rng.standard_normal(x.shape)
    h = 1e-6
    fd = dy * (forward(name, x + h) - forward(name, x - h)) / (2 * h)
    dx = ops.activation_grad(name, dy, x, **PARAMS.get(name, {}))
    assert_close(dx, fd, 1e-6, 1e-8 * np.abs(dy), f"{name}' vs finite differences")


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_grad_finite_differences(name, rng):
    x = rng.standard_normal((3, 6))
    w = rng.standard_normal((3, 6))  # loss = sum(w * f(x)), so d loss / d f = w
    fn = getattr(ops, name)
    h = 1e-6
    fd = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        fd[idx] = (np.sum(w * fn(xp)) - np.sum(w * fn(xm))) / (2 * h)
    assert_close(ops.activation_grad(name, w, x), fd, 1e-6, 1e-8, f"{name}' vs finite differences")


# ------------------------------------------------------------------ paths and threads
@pytest.mark.parametrize("name", ELEMENTWISE + ["softmax", "log_softmax"])
def test_thread_count_invariant(simd, name, rng):
    """Bit-identical results for 1 and 2 threads, forward and backward, over parallel chunks."""
    shape = (50, 4001)  # 200K elements, rows of a width no chunk size divides
    x = sample(rng, shape, np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    before = fastnn.get_num_threads()
    try:
        results = []
        for t in (1, 2):
            fastnn.set_num_threads(t)
            y = getattr(ops, name)(x, **PARAMS.get(name, {}))
            results.append((y, ops.activation_grad(name, dy, x, **PARAMS.get(name, {}))))
    finally:
        fastnn.set_num_threads(before)
    for a, b in zip(results[0], results[1]):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_simd_paths_agree(name, rng):
    """Each vector path within a few float32 ulp of the scalar one (which rounds the double
    result): |vector - scalar| <= 1.2e-6 |scalar| (RTOL each side of the oracle)."""
    x = sample(rng, (10007,), np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    got = {}
    try:
        for path in ("scalar", "avx2", "avx512"):
            if _C.simd_supported(path):
                fastnn.set_simd(path)
                got[path] = (forward(name, x), ops.activation_grad(name, dy, x, **PARAMS.get(name, {})))
    finally:
        fastnn.set_simd(None)
    ref_y, ref_dx = (a.astype(np.float64) for a in got.pop("scalar"))
    for path, (y, dx) in got.items():
        assert_close(y, ref_y, 2 * RTOL[np.float32], ATOL[np.float32], f"{name} {path}")
        atol = 2 * ATOL[np.float32] * (1 + 4 * np.abs(dy)) + (4e-6 * np.abs(dy) if name == "gelu" else 0.0)
        assert_close(dx, ref_dx, 2 * GRAD_RTOL[np.float32], atol, f"{name}' {path}")


# ------------------------------------------------------------------ extreme and special inputs
EXTREMES = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-38, -1e-38, 1e-30, -1e-30, 1e-8, -1e-8, 0.5,
                     -0.5, 9.0, -9.0, 20.0, -20.0, 40.0, -40.0, 87.0, -87.0, 88.7, -88.7, 89.0,
                     -89.0, 104.0, -104.0, 1000.0, -1000.0, 1e30, -1e30, 3.4e38, -3.4e38])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_extreme_finite_inputs(simd, name, dtype):
    x = EXTREMES.astype(dtype)
    y = forward(name, x)
    dx = ops.activation_grad(name, np.ones_like(x), x, **PARAMS.get(name, {}))
    assert not np.isnan(y).any() and not np.isnan(dx).any(), f"NaN from finite {name} input"
    bounded = name not in ("relu", "leaky_relu", "elu", "softplus", "gelu")
    assert not bounded or np.isfinite(y).all()
    assert_close(y, oracle.activation(name, x, **oracle_params(name)), RTOL[dtype], ATOL[dtype],
                 name)
    ref = oracle.activation_derivative(name, x, **oracle_params(name))
    assert_close(dx, ref, GRAD_RTOL[dtype], ATOL[dtype], f"{name}'")


@pytest.mark.parametrize("dtype", DTYPES)
def test_named_stability_cases(simd, dtype):
    a = lambda *v: np.array(v, dtype)  # noqa: E731
    assert 0 <= ops.sigmoid(a(-1000))[0] < 1e-30
    assert ops.sigmoid(a(1000))[0] == 1
    assert ops.softplus(a(1000))[0] == 1000
    assert ops.softplus(a(-1000))[0] == 0
    assert np.array_equal(ops.softmax(a(1e4, 0)), [1, 0])
    ls = ops.log_softmax(a(1e30, -1e30, 0))
    assert np.isfinite(ls).all() and ls[0] == 0
    g = ops.gelu(a(-40))[0]
    assert np.isfinite(g) and -1e-30 < g <= 0
    assert np.array_equal(ops.tanh(a(1e30, -1e30)), [1, -1])
    assert np.array_equal(ops.gelu(a(-np.inf, np.inf)), [0, np.inf])  # the limits
    assert ops.activation_grad("gelu", a(1), a(-np.inf))[0] == 0
    assert ops.tanh(a(-0.0))[0] == 0 and math.copysign(1, ops.tanh(a(-0.0))[0]) == -1
    assert math.copysign(1, ops.relu(a(-0.0))[0]) == 1  # +0 on every path
    # A row with masked (-inf) entries: zero probability there, the rest renormalised.
    s = ops.softmax(a(0, -np.inf, 0))
    assert np.array_equal(s, [0.5, 0, 0.5])
    assert ops.log_softmax(a(0, -np.inf, 0))[1] == -np.inf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE + ["softmax", "log_softmax"])
def test_nan_propagates(simd, name, dtype):
    x = np.linspace(-3, 3, 37).astype(dtype)
    x[[0, 5, 17, 36]] = np.nan
    y = getattr(ops, name)(x, **PARAMS.get(name, {}))
    dx = ops.activation_grad(name, np.ones_like(x), x, **PARAMS.get(name, {}))
    if name in ("softmax", "log_softmax"):  # one NaN poisons the whole row
        assert np.isnan(y).all() and np.isnan(dx).all()
    else:
        assert np.array_equal(np.isnan(y), np.isnan(x)), f"{name}: NaN not propagated"
        assert np.array_equal(np.isnan(dx), np.isnan(x)), f"{name}': NaN not propagated"


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softplus", "elu", "step"])
def test_infinities(simd, name):
    x = np.array([np.inf, -np.inf], np.float32)
    ref = oracle.activation(name, x, **oracle_params(name))
    assert np.array_equal(forward(name, x), ref.astype(np.float32))


# ------------------------------------------------------------------ shapes, out=, in place
@pytest.mark.parametrize("name", ["relu", "gelu", "leaky_relu", "softmax", "log_softmax"])
def test_shapes_and_strides(name, rng):
    rowwise = name in ("softmax", "log_softmax")
    ref_fn = ((lambda v: getattr(oracle, name)(v)) if rowwise
              else (lambda v: oracle.activation(name, v, **oracle_params(name))))
    base = sample(rng, (6, 10, 9), np.float64)
    for x in (base, base[:, ::3, :], base.transpose(2, 0, 1), base[0], base[0, 0], base[..., 1:8]):
        y = forward(name, x)
        assert y.shape == x.shape and y.flags.c_contiguous
        ref = ref_fn(x)
        # log_softmax of a row's maximum is a difference of two numbers of the row's scale.
        atol = 1e-12 * np.abs(ref).max() if name == "log_softmax" else 1e-300
        assert_close(y, ref, 1e-12, atol, f"{name} on {x.shape} strides {x.strides}")
    if not rowwise:
        assert forward(name, np.float64(-2.0)).shape == ()
        assert forward(name, np.empty((0, 3))).shape == (0, 3)
        assert forward(name, [1.0, -2.0]).dtype == np.float64  # lists convert


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "elu", "softmax", "log_softmax"])
def test_out_argument(name, dtype, rng):
    x = sample(rng, (33, 17), dtype)
    expected = forward(name, x)
    out = np.full_like(x, np.nan)  # poisoned: every element must be written
    assert forward(name, x, out=out) is out
    assert np.array_equal(out, expected)
    # Strided out: written through a temporary.
    big = np.full((33, 34), np.nan, dtype)
    assert forward(name, x, out=big[:, ::2]) is not None
    assert np.array_equal(big[:, ::2], expected) and np.isnan(big[:, 1::2]).all()
    # In place, on contiguous and on strided data.
    inplace = x.copy()
    assert forward(name, inplace, out=inplace) is inplace
    assert np.array_equal(inplace, expected)
    strided = np.repeat(x, 2, axis=1)
    view = strided[:, ::2]
    forward(name, view, out=view)
    assert np.array_equal(view, expected) and np.array_equal(strided[:, 1::2], x)
    # Partial overlap: out is x shifted by one element.
    buf = np.concatenate([x.ravel(), np.zeros(1, dtype)])
    src, dst = buf[:-1].reshape(x.shape), buf[1:].reshape(x.shape)
    forward(name, src, out=dst)
    assert np.array_equal(dst, expected)


# ------------------------------------------------------------------ bad input
def test_bad_arguments():
    x = np.ones((2, 3), np.float32)
    for bad in (np.ones(3, np.int64), np.ones(3, bool), "abc", {"a": 1}):
        with pytest.raises(TypeError, match="x"):
            ops.relu(bad)
    with pytest.raises(TypeError, match="x"):
        ops.softmax(np.ones((2, 2), np.int32))
    with pytest.raises(TypeError, match="out: expected dtype float32, got float64"):
        ops.sigmoid(x, out=np.empty((2, 3)))
    with pytest.raises(ValueError, match=r"out: expected shape \(2, 3\), got \(3, 2\)"):
        ops.sigmoid(x, out=np.empty((3, 2), np.float32))
    with pytest.raises(TypeError, match="out"):
        ops.tanh(x, out=[0.0] * 6)
    ro = np.empty((2, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.gelu(x, out=ro)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="negative_slope"):
            ops.leaky_relu(x, negative_slope=bad)
        with pytest.raises(ValueError, match="alpha"):
            ops.elu(x, alpha=bad)
    with pytest.raises(TypeError, match="alpha"):
        ops.elu(x, alpha="1")
    with pytest.raises(ValueError, match="0-D"):
        ops.softmax(np.float32(1.0))
    with pytest.raises(ValueError, match="name: expected one of"):
        ops.activation_grad("swish", x, x)
    with pytest.raises(TypeError, match="name"):
        ops.activation_grad(3, x, x)
    with pytest.raises(ValueError, match=r"dy: expected the shape of x \(2, 3\)"):
        ops.activation_grad("relu", np.ones(6, np.float32), x)
    with pytest.raises(TypeError, match="dtype"):
        ops.activation_grad("relu", x.astype(np.float64), x)
    with pytest.raises(ValueError, match="negative_slope"):
        ops.activation_grad("leaky_relu", x, x, negative_slope=np.nan)


def test_linear_grad_is_dy(rng):
    dy = rng.standard_normal(5)
    for name in (None, "linear"):
        assert np.array_equal(ops.activation_grad(name, dy, rng.standard_normal(5)), dy)
