"""Activation functions and their gradients.

Element-wise functions take float32/float64 arrays of any shape; softmax and log_softmax work
over the last axis. Every function accepts ``out=`` (same shape and dtype; it may be ``x`` itself
for an in-place update). All are numerically stable: no overflow and no NaN from finite input,
and a NaN input gives a NaN output. Results do not depend on the number of threads; float32 runs
vectorized (AVX-512/AVX2) within a few ulp of the correctly rounded value."""

from __future__ import annotations

from typing import Any

from fastnn._checks import finite_real, same_dtype
from fastnn._typing import Array, ArrayIn, ElementwiseOp
from fastnn.ops._dispatch import (backend, check_out, contiguous, copy_into, empty, float_array,
                                  is_aligned, is_contiguous, may_share_memory, same_block)

# The element-wise activations, by their kernel names (the one list of them in Python).
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step")
ROWWISE = ("softmax", "log_softmax")


def _activation_arg(activation: str | None, negative_slope: float) -> tuple[str, float]:
    """(kernel name, parameter) for an activation given by name or None."""
    # The slope is checked even when unused: a bad value is a mistake whatever the activation.
    negative_slope = finite_real(negative_slope, "negative_slope")
    if activation is None or activation == "linear":
        return "none", 0.0
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected None or one of {', '.join(ACTIVATIONS)}, "
                         f"got {activation!r}")
    if activation == "leaky_relu":
        return activation, negative_slope
    if activation == "elu":
        return activation, 1.0
    return activation, 0.0


def _output(out: Array | None, like: Array) -> tuple[Array, Array | None]:
    """(array the kernel writes, user's out to copy into afterwards or None)."""
    if out is None:
        return empty(like.shape, like.dtype, like), None
    check_out(out, "out", like.shape, like.dtype, contiguous_only=False)
    # Written directly when it is contiguous and aligned, and either exactly the input (in place)
    # or apart from it; otherwise (strided, misaligned, or a partial overlap) through a temporary.
    if is_contiguous(out) and is_aligned(out) and (
            same_block(out, like) or not may_share_memory(out, like)):
        return out, None
    return empty(like.shape, like.dtype, like), out


def _finish(result: Array, copy_to: Array | None) -> Array:
    return result if copy_to is None else copy_into(copy_to, result)


def _elementwise(x: ArrayIn, name: str, param: float, out: Array | None) -> Array:
    be, x, out = backend(x=x, out=out)
    x = contiguous(float_array(x, "x"))
    dst, copy_to = _output(out, x)
    be.act_forward(x, dst, name, param)
    return _finish(dst, copy_to)


def _unary(name: str, doc: str) -> ElementwiseOp:
    """The public function of a parameterless element-wise activation."""
    def fn(x: ArrayIn, out: Array | None = None) -> Array:
        return _elementwise(x, name, 0.0, out)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


relu = _unary("relu", "max(x, 0).")
sigmoid = _unary("sigmoid", "1 / (1 + exp(-x)), from exp(-|x|) only: 0 (or a denormal) at "
                            "-1000, 1 at 1000.")
tanh = _unary("tanh", "Hyperbolic tangent.")
gelu = _unary("gelu", "Exact GELU, x * Phi(x) with Phi the standard normal CDF (the erf form, "
                      "not the tanh approximation); accurate in the negative tail (gelu(-10) = "
                      "-7.6e-23), 0 or -tiny below.")
softplus = _unary("softplus", "log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): softplus(1000) "
                              "= 1000.")
step = _unary("step", "The perceptron's step: 1 if x > 0 else 0 (NaN stays NaN); its gradient "
                      "is 0.")


def leaky_relu(x: ArrayIn, negative_slope: float = 0.01, out: Array | None = None) -> Array:
    """x if x > 0 else negative_slope * x."""
    return _elementwise(x, "leaky_relu", finite_real(negative_slope, "negative_slope"), out)


def elu(x: ArrayIn, alpha: float = 1.0, out: Array | None = None) -> Array:
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return _elementwise(x, "elu", finite_real(alpha, "alpha"), out)


def _rowwise(be: Any, x: ArrayIn, log: bool, out: Array | None) -> Array:
    x = contiguous(float_array(x, "x"))
    if x.ndim == 0:
        raise ValueError("x: expected a 1-D or 2-D array (softmax runs over the last axis), "
                         "got a 0-D array")
    dst, copy_to = _output(out, x)
    be.softmax_forward(x, dst, log)
    return _finish(dst, copy_to)


def softmax(x: ArrayIn, out: Array | None = None) -> Array:
    """exp(x - max) / sum(exp(x - max)) over the last axis: softmax([1e4, 0]) = [1, 0]."""
    be, x, out = backend(x=x, out=out)
    return _rowwise(be, x, False, out)


def log_softmax(x: ArrayIn, out: Array | None = None) -> Array:
    """(x - max) - log(sum(exp(x - max))) over the last axis: finite for any finite x."""
    be, x, out = backend(x=x, out=out)
    return _rowwise(be, x, True, out)


def activation_grad(name: str | None, dy: ArrayIn, x: ArrayIn, negative_slope: float = 0.01,
                    alpha: float = 1.0) -> Array:
    """dy * act'(x) for the element-wise activations (step's derivative is 0, relu's is 0 at 0),
    and for softmax / log_softmax the vector-Jacobian product over the last axis given the input
    x: softmax dx = y * (dy - sum(dy * y)), log_softmax dx = dy - softmax(x) * sum(dy).
    ``name`` is one of the activation names above, or None / "linear" (dx = dy)."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name: expected an activation name (str), got {type(name).__name__}")
    if name is None or name == "linear":
        name = "none"
    elif name not in ACTIVATIONS + ROWWISE:
        raise ValueError(f"name: expected one of {', '.join(ACTIVATIONS + ROWWISE)}, "
                         f"got {name!r}")
    be, dy, x = backend(dy=dy, x=x)
    dy = contiguous(float_array(dy, "dy"))
    x = contiguous(float_array(x, "x"))
    same_dtype(dy=dy, x=x)
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected the shape of x {x.shape}, got {dy.shape}")
    param = 0.0
    if name == "leaky_relu":
        param = finite_real(negative_slope, "negative_slope")
    elif name == "elu":
        param = finite_real(alpha, "alpha")
    dx = empty(x.shape, x.dtype, x)
    if name in ROWWISE:
        log = name == "log_softmax"
        be.softmax_backward(dy, _rowwise(be, x, log, None), dx, log)
    else:
        be.act_backward(dy, x, dx, name, param, False)
    return dx


__all__ = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step",
           "softmax", "log_softmax", "activation_grad", "ACTIVATIONS"]
