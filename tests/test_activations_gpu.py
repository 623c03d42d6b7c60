"""The CUDA activations and softmax rows against the float64 oracle and the CPU kernels, through
fastnn.ops on CUDA tensors (and fastnn._cuda for the from-output backward the engine uses).

Tolerances: tests/check.py ("elementwise_gpu", "elementwise_grad_gpu": CUDA's single-precision
libm is within 1-4 ulp). Sizes: 1 to 5 elements (no float4 group / ragged group), around the
float4 and warp widths, and large enough for a grid-stride loop to wrap."""

import numpy as np
import pytest

import oracle
from check import DENORMAL, assert_close, check_op, tol
from fastnn import _C, ops
from gpu import backend, dev, host, misaligned, needs_gpu, poisoned_dev

pytestmark = needs_gpu

DTYPES = [np.float32, np.float64]
SIZES = [1, 3, 4, 5, 31, 32, 33, 1000, 100003, 3_000_001]
ELEMENTWISE = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step"]
PARAMS = {"leaky_relu": 0.2, "elu": 1.7}
FROM_OUTPUT = ["relu", "leaky_relu", "sigmoid", "tanh", "elu", "softplus", "step"]


def op_kw(name):
    return {"leaky_relu": {"negative_slope": 0.2}, "elu": {"alpha": 1.7}}.get(name, {})


def oracle_kw(name):
    return {"negative_slope": PARAMS.get(name, 0.01), "alpha": PARAMS.get(name, 1.0)}


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
    check_op(lambda x, out: getattr(ops, name)(x, out=out, **op_kw(name)),
             lambda x: oracle.activation(name, x, **oracle_kw(name)), [(n,) for n in SIZES],
             dtype, inputs=lambda shape, dt: (inputs(rng, shape[0], dt),),
             outputs=lambda shape: [shape], kind="elementwise_gpu", what=name, device="cuda")
    grad_rtol, atol0 = tol("elementwise_grad_gpu", dtype), DENORMAL[dtype]
    for n in SIZES:
        x = inputs(rng, n, dtype)
        dy = rng.standard_normal(n).astype(dtype)
        dx = ops.activation_grad(name, dev(dy), dev(x), **op_kw(name))
        ref = dy * oracle.activation_derivative(name, x, **oracle_kw(name))
        atol = atol0 * (1 + np.abs(dy))
        if name == "gelu":
            atol = atol + grad_rtol * np.abs(dy)  # its root at x = -0.75
        assert_close(host(dx), ref, grad_rtol, atol, f"{name}' n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", FROM_OUTPUT)
def test_act_backward_from_output(name, dtype, rng):
    """The engine's backward from y = act(x): fastnn._cuda.act_backward(dy, y, out, name, param,
    from_output=True), the signature of fastnn._C.act_backward."""
    n = 100003
    x = inputs(rng, n, dtype)
    x[np.isnan(x)] = 0.0  # the oracle's relu' / step' of a NaN output is 0, the kernels' NaN
    y = oracle.activation(name, x, **oracle_kw(name)).astype(dtype)
    dy = rng.standard_normal(n).astype(dtype)
    dxd = poisoned_dev(n, dtype)
    backend().act_backward(dev(dy), dev(y), dxd, name, PARAMS.get(name, 0.0), True)
    y64 = y.astype(np.float64)
    if name == "softplus":
        deriv = -np.expm1(-y64)
    else:
        deriv = oracle.act_deriv_from_output(y64, name, **oracle_kw(name))
    eps = np.finfo(dtype).eps
    assert_close(host(dxd), dy * deriv, 0.0, 40 * eps * np.abs(dy) + DENORMAL[dtype],
                 f"{name}' from y")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_act_special_values_match_cpu(name, dtype):
    """Infinities, NaN, signed zeros, gelu's cut at -40: the CUDA kernels give what the CPU
    kernels give (NaN exactly where they have NaN), forward and backward."""
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e4, -1e4, -40.0, -40.5, -39.5, 1e-30,
                  -1e-30, 88.0, -88.0, -13.5, 0.5], dtype)
    n = x.size
    param = PARAMS.get(name, 0.0)
    got = host(getattr(ops, name)(dev(x), **op_kw(name)))
    cpu_y = np.empty_like(x)
    _C.act_forward(x, cpu_y, name, param)
    assert np.array_equal(np.isnan(got), np.isnan(cpu_y)), f"{name}: NaN pattern {got} vs {cpu_y}"
    assert_close(got, cpu_y, 2 * tol("elementwise_gpu", dtype), DENORMAL[dtype],
                 f"{name} special values vs CPU")

    dy = np.linspace(-2, 2, n).astype(dtype)
    got = host(ops.activation_grad(name, dev(dy), dev(x), **op_kw(name)))
    cpu_dx = np.empty_like(x)
    _C.act_backward(dy, x, cpu_dx, name, param, False)
    assert np.array_equal(np.isnan(got), np.isnan(cpu_dx)), f"{name}': NaN pattern {got} vs {cpu_dx}"
    # Subnormal results (gelu' near -13.5) round differently on each side: a few 2^-149.
    assert_close(got, cpu_dx, 2 * tol("elementwise_grad_gpu", dtype),
                 8 * DENORMAL[dtype] * (1 + np.abs(dy)), f"{name}' special values vs CPU")


def test_act_backward_from_output_refuses_gelu():
    t = dev(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="gelu"):
        backend().act_backward(t, t, t, "gelu", 0.0, True)
    with pytest.raises(ValueError, match="elu"):
        backend().act_backward(t, t, t, "elu", -1.0, True)


def test_act_in_place_and_unaligned(rng):
    """out is x, and data off the 16-byte grid (the scalar path) gives the same values."""
    n = 10001
    x = inputs(rng, n, np.float32)
    ref = oracle.activation("gelu", x)
    (xd,) = misaligned([x])
    assert ops.gelu(xd, out=xd) is xd
    assert_close(host(xd), ref, tol("elementwise_gpu", np.float32), DENORMAL[np.float32],
                 "gelu in place, unaligned")


def test_bad_arguments():
    t = dev(np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        backend().act_forward(t, dev(np.zeros(4)), "relu", 0.0)
    with pytest.raises(ValueError, match="activation"):
        backend().act_forward(t, t, "swish", 0.0)
    with pytest.raises(ValueError, match="rate"):
        backend().dropout_forward_into(t, t, dev(np.zeros(4, np.uint8)), 1.5, 0)
    empty = dev(np.zeros(0, np.float32))  # no elements (and no memory): nothing to do
    backend().act_forward(empty, empty, "relu", 0.0)
    assert ops.relu(empty).shape == (0,)


# ------------------------------------------------------------------ softmax rows
# Rows go to 4 lanes (cols <= 4), 16 (<= 16), a warp (<= 1024) or a block: each size, with row
# counts that leave the last block's groups partly empty, and enough rows to wrap the grid.
SOFTMAX_SHAPES = [(1, 1), (3, 4), (1001, 2), (3, 7), (1003, 10), (5, 32), (33, 33), (4096, 10),
                  (70001, 3), (7, 1024), (9, 1025), (3, 50000)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True])
def test_softmax_rows(log, dtype, rng):
    name = "log_softmax" if log else "softmax"
    rtol = 2 * tol("elementwise_gpu", dtype)
    for rows, cols in SOFTMAX_SHAPES:
        x = (4 * rng.standard_normal((rows, cols))).astype(dtype)
        x[0, 0] = 1e4  # one dominant class: no overflow, log_softmax ~ 0 there
        if rows > 2:
            x[1, :] = -np.inf
            x[1, cols // 2] = 2.0  # -inf elements (including the first) add nothing
            x[2, cols - 1] = np.nan
        yd = poisoned_dev((rows, cols), dtype)
        assert getattr(ops, name)(dev(x), out=yd) is yd
        with np.errstate(invalid="ignore"):
            ref = getattr(oracle, name)(x)
        if rows > 2:
            ref[2, :] = np.nan  # NaN in a row makes the whole row NaN
        atol = rtol * (np.nanmax(np.abs(ref[np.isfinite(ref)])) if log else 0.0) + DENORMAL[dtype]
        assert_close(host(yd), ref, rtol, atol, f"{name} {rows}x{cols}")

        # Backward (from the forward output), against the oracle's explicit Jacobians.
        if cols <= 1025 and rows <= 64:
            xf = x[np.isfinite(x).all(axis=1)]
            if len(xf) == 0:
                continue
            dy = rng.standard_normal(xf.shape).astype(dtype)
            dx = ops.activation_grad(name, dev(dy), dev(xf))
            ref = getattr(oracle, name + "_vjp")(dy, xf)
            scale = np.abs(dy).max()
            assert_close(host(dx), ref, 0.0, 8 * tol("elementwise_grad_gpu", dtype) * scale,
                         f"{name}' {rows}x{cols}")
