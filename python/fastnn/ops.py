"""fastnn.ops: one function per kernel. Each validates its arguments, picks the backend from
where the inputs live, and calls the compiled kernel. Arrays in, arrays out.

NumPy arrays (and CPU fastnn.Tensors, read as their arrays) run on the CPU and give NumPy
results. fastnn.Tensors on "cuda:N" run on that GPU, on fastnn's stream for it, and give Tensors
on the same device (see fastnn._gpu_ops); all array arguments of one call must then be CUDA
tensors on one device. Losses return (float, gradient) either way; the float waits for the GPU.
On the GPU, matmul, linear and linear_grad are float32 only; top_k_correct, binary_correct and
init_weights are CPU only so far (the sampled softmax runs on both, drawing the same sample)."""

import numpy as np

from fastnn import _C
from fastnn import _gpu_ops as _gpu
from fastnn._checks import (as_float_array, finite_real, flag, linear_dims, matmul_dims,
                            same_dtype)

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step")


def _activation_arg(activation, negative_slope):
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


def _gemm(a, b, out, trans_a, trans_b, alpha, beta, bias, act, act_param):
    # The kernel writes out while it reads a and b: when they overlap, compute into a fresh
    # array and copy, as NumPy does; the same for an out the kernel may not address directly.
    if (not out.flags.aligned or np.may_share_memory(out, a)
            or np.may_share_memory(out, b)):
        tmp = np.array(out) if beta != 0.0 else np.empty(out.shape, out.dtype)
        _C.gemm(a, b, tmp, trans_a, trans_b, alpha, beta, bias, act, act_param)
        out[...] = tmp
    else:
        _C.gemm(a, b, out, trans_a, trans_b, alpha, beta, bias, act, act_param)
    return out


def matmul(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
    """``alpha * op(a) @ op(b) + beta * out``, where op transposes when asked.

    a, b: 2-D float32 or float64 arrays of one dtype, any strides; sizes may be 0.
    out: written in place when given (its old contents are ignored when beta == 0);
    a new array otherwise (then beta must be 0).
    """
    if _gpu.has_tensor(a, b, out):
        return _gpu.matmul(a, b, trans_a, trans_b, alpha, beta, out)
    a = as_float_array(a, "a", ndim=2)
    b = as_float_array(b, "b", ndim=2)
    same_dtype(a=a, b=b)
    alpha = finite_real(alpha, "alpha")
    beta = finite_real(beta, "beta")
    m, _, n = matmul_dims(a.shape, b.shape, trans_a, trans_b)
    if out is None:
        if beta != 0.0:
            raise ValueError("beta: a non-zero beta needs an `out` array to scale and add to")
        out = np.empty((m, n), dtype=a.dtype)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out: expected a NumPy array, got {type(out).__name__}")
        if out.dtype != a.dtype:
            raise TypeError(f"out: expected dtype {a.dtype}, got {out.dtype}")
        if out.shape != (m, n):
            raise ValueError(f"out: expected shape {(m, n)}, got {out.shape}")
        if not out.flags.writeable:
            raise ValueError("out: array is read-only")
        if any(s % out.itemsize for s in out.strides):
            raise ValueError("out: strides must be whole multiples of the item size")
    return _gemm(a, b, out, flag(trans_a, "trans_a"), flag(trans_b, "trans_b"), alpha, beta,
                 None, "none", 0.0)


def linear(x, w, b=None, activation=None, negative_slope=0.01, return_preactivation=False):
    """Fused dense layer ``act(x @ w + b)``: the bias and activation are applied to each output
    tile while it is still in registers, with no extra pass over memory.

    x: (N, in_features); w: (in_features, out_features); b: (out_features,) or None;
    activation: None or one of relu, leaky_relu (with negative_slope), sigmoid, tanh, gelu,
    elu, softplus, step.
    return_preactivation: also return ``z = x @ w + b``, stored by the same pass, as ``(y, z)``.
    Only gelu and softplus need z for the backward pass (``linear_grad``); the others can
    work from y, so a training step keeps z only for those.
    """
    if _gpu.has_tensor(x, w, b):
        act, param = _activation_arg(activation, negative_slope)
        return _gpu.linear(x, w, b, act, param, return_preactivation)
    x = as_float_array(x, "x", ndim=2)
    w = as_float_array(w, "w", ndim=2)
    if b is not None:
        b = as_float_array(b, "b", ndim=1)
    same_dtype(x=x, w=w, b=b)
    linear_dims(x.shape, w.shape, None if b is None else b.shape)
    act, param = _activation_arg(activation, negative_slope)
    out = np.empty((x.shape[0], w.shape[1]), dtype=x.dtype)
    if flag(return_preactivation, "return_preactivation"):
        z = np.empty_like(out)
        if np.may_share_memory(out, x) or np.may_share_memory(out, w):  # pragma: no cover
            raise AssertionError("fresh outputs cannot overlap the inputs")
        _C.gemm(x, w, out, False, False, 1.0, 0.0, b, act, param, z=z)
        return out, z
    return _gemm(x, w, out, False, False, 1.0, 0.0, b, act, param)


from fastnn._dense import GRAD_FROM_OUTPUT, linear_grad  # noqa: E402,F401

# One module per kernel family, re-exported here so that `fastnn.ops` stays the one place to look.
from fastnn._dropout import dropout, dropout_grad  # noqa: E402
from fastnn._losses import (  # noqa: E402
    binary_cross_entropy_with_logits,
    mae,
    mse,
    softmax_cross_entropy,
)
from fastnn._init import init_weights  # noqa: E402
from fastnn._norm import batch_norm, batch_norm_grad  # noqa: E402
from fastnn._reduce import (  # noqa: E402
    argmax_rows,
    binary_correct,
    count_correct,
    mean_rows,
    sum_rows,
    top_k_correct,
)
from fastnn._optim_ops import (  # noqa: E402
    adagrad_step,
    adam_step,
    adamw_step,
    clip_grad_norm,
    global_norm,
    rmsprop_step,
    sgd_step,
)
from fastnn._sampled import sample_candidates, sampled_softmax_cross_entropy  # noqa: E402
from fastnn._activations import (  # noqa: E402
    activation_grad,
    elu,
    gelu,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    softmax,
    softplus,
    step,
    tanh,
)
