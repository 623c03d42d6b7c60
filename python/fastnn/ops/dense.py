"""Matrix products and the fused dense layer, forward (`matmul`, `linear`) and backward
(`linear_grad`). On the GPU these are float32 only (the CUDA GEMM has no float64 kernel)."""

from __future__ import annotations

from typing import Any, Literal, overload

from fastnn._checks import (finite_real, flag, linear_dims, linear_grad_dims, matmul_dims,
                            same_dtype)
from fastnn._typing import Array, ArrayIn
from fastnn.ops._dispatch import (backend, check_out, contiguous, copy, copy_into, empty,
                                  float32_only, float_array, is_aligned, may_share_memory)
from fastnn.ops.activations import _activation_arg

# Activations whose derivative follows from the output y = act(z): their backward pass needs only
# y, which is the next layer's input anyway, so the forward pass keeps nothing extra for them.
GRAD_FROM_OUTPUT = ("relu", "leaky_relu", "sigmoid", "tanh", "elu", "step")


def _gemm(be: Any, a: Array, b: Array, out: Array, trans_a: bool, trans_b: bool, alpha: float,
          beta: float, bias: Array | None, act: str, act_param: float) -> Array:
    # The kernel writes out while it reads a and b: when they overlap, compute into a fresh
    # array and copy, as NumPy does; the same for an out the kernel may not address directly.
    if not is_aligned(out) or may_share_memory(out, a) or may_share_memory(out, b):
        tmp = copy(out) if beta != 0.0 else empty(out.shape, out.dtype, out)
        be.gemm(a, b, tmp, trans_a, trans_b, alpha, beta, bias, act, act_param)
        return copy_into(out, tmp)
    be.gemm(a, b, out, trans_a, trans_b, alpha, beta, bias, act, act_param)
    return out


def matmul(a: ArrayIn, b: ArrayIn, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0,
           beta: float = 0.0, out: Array | None = None) -> Array:
    """``alpha * op(a) @ op(b) + beta * out``, where op transposes when asked.

    a, b: 2-D float32 or float64 arrays of one dtype, any strides; sizes may be 0.
    out: written in place when given (its old contents are ignored when beta == 0);
    a new array otherwise (then beta must be 0).
    """
    be, a, b, out = backend(a=a, b=b, out=out)
    a = float_array(a, "a", ndim=2)
    b = float_array(b, "b", ndim=2)
    same_dtype(a=a, b=b)
    alpha = finite_real(alpha, "alpha")
    beta = finite_real(beta, "beta")
    trans_a, trans_b = flag(trans_a, "trans_a"), flag(trans_b, "trans_b")
    m, _, n = matmul_dims(a.shape, b.shape, trans_a, trans_b)
    if out is None:
        if beta != 0.0:
            raise ValueError("beta: a non-zero beta needs an `out` array to scale and add to")
        float32_only(be, a.dtype, "matmul")
        out = empty((m, n), a.dtype, a)
    else:
        check_out(out, "out", (m, n), a.dtype, contiguous_only=False)
        if any(s % out.itemsize for s in out.strides):
            raise ValueError("out: strides must be whole multiples of the item size")
        float32_only(be, a.dtype, "matmul")
    return _gemm(be, a, b, out, trans_a, trans_b, alpha, beta, None, "none", 0.0)


@overload
def linear(x: ArrayIn, w: ArrayIn, b: ArrayIn | None = None, activation: str | None = None,
           negative_slope: float = 0.01, return_preactivation: Literal[False] = False) -> Array: ...
@overload
def linear(x: ArrayIn, w: ArrayIn, b: ArrayIn | None = None, activation: str | None = None,
           negative_slope: float = 0.01, *,
           return_preactivation: Literal[True]) -> tuple[Array, Array]: ...
def linear(x: ArrayIn, w: ArrayIn, b: ArrayIn | None = None, activation: str | None = None,
           negative_slope: float = 0.01,
           return_preactivation: bool = False) -> Array | tuple[Array, Array]:
    """Fused dense layer ``act(x @ w + b)``: the bias and activation are applied to each output
    tile while it is still in registers, with no extra pass over memory.

    x: (N, in_features); w: (in_features, out_features); b: (out_features,) or None;
    activation: None or one of relu, leaky_relu (with negative_slope), sigmoid, tanh, gelu,
    elu, softplus, step.
    return_preactivation: also return ``z = x @ w + b``, stored by the same pass, as ``(y, z)``.
    Only gelu and softplus need z for the backward pass (``linear_grad``); the others can
    work from y, so a training step keeps z only for those.
    """
    be, x, w, b = backend(x=x, w=w, b=b)
    x = float_array(x, "x", ndim=2)
    w = float_array(w, "w", ndim=2)
    if b is not None:
        b = float_array(b, "b", ndim=1)
    same_dtype(x=x, w=w, b=b)
    linear_dims(x.shape, w.shape, None if b is None else b.shape)
    act, param = _activation_arg(activation, negative_slope)
    preactivation = flag(return_preactivation, "return_preactivation")
    float32_only(be, x.dtype, "linear")
    out = empty((x.shape[0], w.shape[1]), x.dtype, x)
    if preactivation:
        z = empty(out.shape, out.dtype, out)
        be.gemm(x, w, out, False, False, 1.0, 0.0, b, act, param, z=z)
        return out, z
    return _gemm(be, x, w, out, False, False, 1.0, 0.0, b, act, param)


def _rows(a: ArrayIn, name: str, shape: tuple[int, ...], dtype: Any) -> Array:
    """a as an array the kernel reads row by row (columns contiguous)."""
    a = float_array(a, name, ndim=2)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: dtype {a.dtype} does not match dy's {dtype}")
    if a.shape[1] > 1 and a.strides[1] != a.itemsize:
        a = copy(a)
    return a


def linear_grad(dy: ArrayIn, x: ArrayIn, w: ArrayIn, activation: str | None = None,
                z: ArrayIn | None = None, y: ArrayIn | None = None, negative_slope: float = 0.01,
                need_dx: bool = True, dx: Array | None = None, dw: Array | None = None,
                db: Array | None = None,
                accumulate: bool = False) -> tuple[Array | None, Array, Array]:
    """Gradients of ``y = act(x @ w + b)`` given ``dy = dL/dy``, in one fused call.

    Returns ``(dx, dw, db)`` with ``dz = dy * act'(z)``, ``dw = x.T @ dz``, ``db = dz.sum(0)``,
    ``dx = dz @ w.T`` (``None`` when ``need_dx`` is False: a first layer needs none). dz is
    formed while the two products pack their operands and db is summed in the same sweep, so
    neither costs a pass over memory of its own.

    activation: as in `linear`; it needs the pre-activation ``z`` or, for the activations in
    ``GRAD_FROM_OUTPUT``, the output ``y`` (as returned by `linear`).
    dx, dw, db: arrays to write the gradients into (dw and db are added into with
    ``accumulate=True``); new arrays otherwise. accumulate=True needs both (gradient
    accumulation over several batches).
    """
    need_dx, accumulate = flag(need_dx, "need_dx"), flag(accumulate, "accumulate")
    be, dy, x, w, z, y, dx, dw, db = backend(dy=dy, x=x, w=w, z=z, y=y, dx=dx, dw=dw, db=db)
    dy = float_array(dy, "dy", ndim=2)
    x = float_array(x, "x", ndim=2)
    w = float_array(w, "w", ndim=2)
    same_dtype(dy=dy, x=x, w=w)
    n, k, m = linear_grad_dims(dy.shape, x.shape, w.shape)
    dtype = dy.dtype
    dy = _rows(dy, "dy", (n, m), dtype)
    x = _rows(x, "x", (n, k), dtype)
    w = _rows(w, "w", (k, m), dtype)
    act, param = _activation_arg(activation, negative_slope)
    gate, from_output = None, False
    if act != "none":
        if z is not None:
            gate = z
        elif y is not None:
            if act not in GRAD_FROM_OUTPUT:
                raise ValueError(f"linear_grad: the derivative of {act} needs z (the "
                                 f"pre-activation), not y; pass z=")
            if act == "leaky_relu" and param <= 0:
                raise ValueError("linear_grad: leaky_relu with a non-positive slope needs z, "
                                 "not y")
            gate, from_output = y, True
        else:
            raise ValueError(f"linear_grad: activation {act!r} needs z= (or y= for "
                             f"{', '.join(GRAD_FROM_OUTPUT)})")
        gate = _rows(gate, "y" if from_output else "z", (n, m), dtype)
        if gate.strides[0] != dy.strides[0]:
            gate, dy = contiguous(gate), contiguous(dy)
    if accumulate and (dw is None or db is None):
        raise ValueError("accumulate=True needs the dw and db arrays to add into")
    float32_only(be, dtype, "linear_grad")
    dw = empty((k, m), dtype, x) if dw is None else check_out(dw, "dw", (k, m), dtype)
    db = empty((m,), dtype, x) if db is None else check_out(db, "db", (m,), dtype)
    if not need_dx:
        dx = None
    elif dx is None:
        dx = empty((n, k), dtype, x)
    else:
        dx = check_out(dx, "dx", (n, k), dtype)
    for name, arr in (("dx", dx), ("dw", dw), ("db", db)):
        for src in (dy, x, w, gate):
            if arr is not None and may_share_memory(arr, src):
                raise ValueError(f"{name}: must not overlap the inputs")
    be.dense_backward(dy, x, w, gate, act, param, from_output, dw, db, dx, accumulate)
    return dx, dw, db


__all__ = ["matmul", "linear", "linear_grad", "GRAD_FROM_OUTPUT"]
