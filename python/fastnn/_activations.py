"""Activation functions and their gradients (re-exported by fastnn.ops).

Element-wise functions take float32/float64 arrays of any shape; softmax and log_softmax work
over the last axis. Every function accepts ``out=`` (same shape and dtype; it may be ``x`` itself
for an in-place update). All are numerically stable: no overflow and no NaN from finite input,
and a NaN input gives a NaN output. Results do not depend on the number of threads; float32 runs
vectorized (AVX-512/AVX2) within a few ulp of the correctly rounded value."""

import numpy as np

from fastnn import _C
from fastnn import _gpu_ops as _gpu
from fastnn._checks import as_float_array, finite_real, same_dtype

ELEMENTWISE = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step")
ROWWISE = ("softmax", "log_softmax")


def _contiguous(x):
    # The kernels walk flat memory; as_float_array only guarantees whole-element strides.
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def _same_memory(a, b):
    """a and b are the same C-contiguous block: safe for the kernels' in-place mode."""
    return (a.flags.c_contiguous and b.flags.c_contiguous and a.shape == b.shape
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _output(out, inputs, like):
    """(array the kernel writes, user's out to copy into afterwards or None)."""
    if out is None:
        return np.empty(like.shape, like.dtype), None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a NumPy array, got {type(out).__name__}")
    if out.dtype != like.dtype:
        raise TypeError(f"out: expected dtype {like.dtype}, got {out.dtype}")
    if out.shape != like.shape:
        raise ValueError(f"out: expected shape {like.shape}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError("out: array is read-only")
    # Written directly when it is contiguous and aligned, and either exactly an input (in place)
    # or apart from all of them; otherwise (strided, misaligned, or a partial overlap) through a
    # temporary.
    if out.flags.c_contiguous and out.flags.aligned and all(
            _same_memory(out, a) or not np.may_share_memory(out, a) for a in inputs):
        return out, None
    return np.empty(like.shape, like.dtype), out


def _finish(result, copy_to):
    if copy_to is None:
        return result
    copy_to[...] = result
    return copy_to


def _elementwise(x, name, param, out):
    x = _contiguous(as_float_array(x, "x"))
    dst, copy_to = _output(out, (x,), x)
    _C.act_forward(x, dst, name, param)
    return _finish(dst, copy_to)


def relu(x, out=None):
    """max(x, 0)."""
    if _gpu.has_tensor(x, out):
        return _gpu.elementwise(relu, x, "relu", 0.0, out)
    return _elementwise(x, "relu", 0.0, out)


def leaky_relu(x, negative_slope=0.01, out=None):
    """x if x > 0 else negative_slope * x."""
    if _gpu.has_tensor(x, out):
        slope = finite_real(negative_slope, "negative_slope")
        return _gpu.elementwise(leaky_relu, x, "leaky_relu", slope, out, slope)
    return _elementwise(x, "leaky_relu", finite_real(negative_slope, "negative_slope"), out)


def sigmoid(x, out=None):
    """1 / (1 + exp(-x)), from exp(-|x|) only: 0 (or a denormal) at -1000, 1 at 1000."""
    if _gpu.has_tensor(x, out):
        return _gpu.elementwise(sigmoid, x, "sigmoid", 0.0, out)
    return _elementwise(x, "sigmoid", 0.0, out)


def tanh(x, out=None):
    """Hyperbolic tangent."""
    if _gpu.has_tensor(x, out):
        return _gpu.elementwise(tanh, x, "tanh", 0.0, out)
    return _elementwise(x, "tanh", 0.0, out)


def gelu(x, out=None):
    """Exact GELU, x * Phi(x) with Phi the standard normal CDF (the erf form, not the tanh
    approximation); accurate in the negative tail (gelu(-10) = -7.6e-23), 0 or -tiny below."""
    if _gpu.has_tensor(x, out):
        return _gpu.elementwise(gelu, x, "gelu", 0.0, out)
    return _elementwise(x, "gelu", 0.0, out)


def elu(x, alpha=1.0, out=None):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    if _gpu.has_tensor(x, out):
        a = finite_real(alpha, "alpha")
        return _gpu.elementwise(elu, x, "elu", a, out, a)
    return _elementwise(x, "elu", finite_real(alpha, "alpha"), out)


def softplus(x, out=None):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): softplus(1000) = 1000."""
    if _gpu.has_tensor(x, out):
        return _gpu.elementwise(softplus, x, "softplus", 0.0, out)
    return _elementwise(x, "softplus", 0.0, out)


def step(x, out=None):
    """The perceptron's step: 1 if x > 0 else 0 (NaN stays NaN); its gradient is 0."""
    if _gpu.has_tensor(x, out):
        return _gpu.elementwise(step, x, "step", 0.0, out)
    return _elementwise(x, "step", 0.0, out)


def _rowwise(x, log, out):
    x = _contiguous(as_float_array(x, "x"))
    if x.ndim == 0:
        raise ValueError(f"x: expected a 1-D or 2-D array (softmax runs over the last axis), "
                         f"got a 0-D array")
    dst, copy_to = _output(out, (x,), x)
    _C.softmax_forward(x, dst, log)
    return _finish(dst, copy_to)


def softmax(x, out=None):
    """exp(x - max) / sum(exp(x - max)) over the last axis: softmax([1e4, 0]) = [1, 0]."""
    if _gpu.has_tensor(x, out):
        return _gpu.rowwise(softmax, x, False, out)
    return _rowwise(x, False, out)


def log_softmax(x, out=None):
    """(x - max) - log(sum(exp(x - max))) over the last axis: finite for any finite x."""
    if _gpu.has_tensor(x, out):
        return _gpu.rowwise(log_softmax, x, True, out)
    return _rowwise(x, True, out)


def activation_grad(name, dy, x, negative_slope=0.01, alpha=1.0):
    """dy * act'(x) for the element-wise activations (step's derivative is 0, relu's is 0 at 0),
    and for softmax / log_softmax the vector-Jacobian product over the last axis given the input
    x: softmax dx = y * (dy - sum(dy * y)), log_softmax dx = dy - softmax(x) * sum(dy).
    ``name`` is one of the activation names above, or None / "linear" (dx = dy)."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name: expected an activation name (str), got {type(name).__name__}")
    if name is None or name == "linear":
        name = "none"
    elif name not in ELEMENTWISE + ROWWISE:
        raise ValueError(f"name: expected one of {', '.join(ELEMENTWISE + ROWWISE)}, "
                         f"got {name!r}")
    if _gpu.has_tensor(dy, x):
        param = 0.0
        if name == "leaky_relu":
            param = finite_real(negative_slope, "negative_slope")
        elif name == "elu":
            param = finite_real(alpha, "alpha")
        return _gpu.activation_grad(name, dy, x, param)
    dy = _contiguous(as_float_array(dy, "dy"))
    x = _contiguous(as_float_array(x, "x"))
    same_dtype(dy=dy, x=x)
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected the shape of x {x.shape}, got {dy.shape}")
    dx = np.empty(x.shape, x.dtype)
    if name in ROWWISE:
        log = name == "log_softmax"
        y = _rowwise(x, log, None)
        _C.softmax_backward(dy, y, dx, log)
        return dx
    param = 0.0
    if name == "leaky_relu":
        param = finite_real(negative_slope, "negative_slope")
    elif name == "elu":
        param = finite_real(alpha, "alpha")
    _C.act_backward(dy, x, dx, name, param, False)
    return dx


__all__ = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step",
           "softmax", "log_softmax", "activation_grad"]
