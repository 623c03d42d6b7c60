"""Backward pass of the fused dense layer (`fastnn.ops.linear_grad`)."""

import numpy as np

from fastnn import _C
from fastnn import _gpu_ops as _gpu
from fastnn._checks import as_float_array, flag, linear_grad_dims, require_aligned, same_dtype

# Activations whose derivative follows from the output y = act(z): their backward pass needs only
# y, which is the next layer's input anyway, so the forward pass keeps nothing extra for them.
GRAD_FROM_OUTPUT = ("relu", "leaky_relu", "sigmoid", "tanh", "elu", "step")


def _rows(a, name, shape, dtype):
    """a as an array the kernel reads row by row (columns contiguous)."""
    a = as_float_array(a, name, ndim=2)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: dtype {a.dtype} does not match dy's {dtype}")
    if a.shape[1] > 1 and a.strides[1] != a.itemsize:
        a = np.ascontiguousarray(a)
    return a


def _out(a, name, shape, dtype):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{name}: expected a writable C-contiguous array")
    return require_aligned(a, name)


def linear_grad(dy, x, w, activation=None, z=None, y=None, negative_slope=0.01, need_dx=True,
                dx=None, dw=None, db=None, accumulate=False):
    """Gradients of ``y = act(x @ w + b)`` given ``dy = dL/dy``, in one fused call.

    Returns ``(dx, dw, db)`` with ``dz = dy * act'(z)``, ``dw = x.T @ dz``, ``db = dz.sum(0)``,
    ``dx = dz @ w.T`` (``None`` when ``need_dx`` is False: a first layer needs none). dz is
    formed while the two products pack their operands and db is summed in the same sweep, so
    neither costs a pass over memory of its own.

    activation: as in `linear`; it needs the pre-activation ``z`` or, for the activations in
    ``GRAD_FROM_OUTPUT``, the output ``y`` (as returned by `linear`).
    dx, dw, db: arrays to write the gradients into (dw and db are added into with
    ``accumulate=True``); new arrays otherwise. accumulate=True needs both (gradient accumulation over several batches).
    """
    need_dx, accumulate = flag(need_dx, "need_dx"), flag(accumulate, "accumulate")
    if _gpu.has_tensor(dy, x, w, z, y, dx, dw, db):
        return _gpu.linear_grad(dy, x, w, activation, z, y, negative_slope, need_dx, dx, dw, db,
                                accumulate)
    from fastnn.ops import _activation_arg

    dy = as_float_array(dy, "dy", ndim=2)
    x = as_float_array(x, "x", ndim=2)
    w = as_float_array(w, "w", ndim=2)
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
            gate = np.ascontiguousarray(gate)
            dy = np.ascontiguousarray(dy)
    if accumulate and (dw is None or db is None):
        raise ValueError("accumulate=True needs the dw and db arrays to add into")
    dw = np.empty((k, m), dtype) if dw is None else _out(dw, "dw", (k, m), dtype)
    db = np.empty((m,), dtype) if db is None else _out(db, "db", (m,), dtype)
    if not need_dx:
        dx = None
    elif dx is None:
        dx = np.empty((n, k), dtype)
    else:
        dx = _out(dx, "dx", (n, k), dtype)
    for name, arr in (("dx", dx), ("dw", dw), ("db", db)):
        if arr is None:
            continue
        for src in (dy, x, w, gate):
            if src is not None and np.may_share_memory(arr, src):
                raise ValueError(f"{name}: must not overlap the inputs")
    _C.dense_backward(dy, x, w, gate, act, param, from_output, dw, db, dx, accumulate)
    return dx, dw, db
