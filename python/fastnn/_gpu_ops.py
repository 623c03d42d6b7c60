"""fastnn.ops on CUDA tensors: the GPU half of each op's dispatch.

Every public op in fastnn.ops starts with ``if _gpu.has_tensor(...)``: a type test per argument,
nothing else, so the NumPy path costs what it did. When any argument is a fastnn.Tensor the op
lands here. With no CUDA tensor among the arguments, CPU tensors are unwrapped to their NumPy
arrays and the CPU op runs as before. Otherwise every array argument must be a CUDA tensor on
one device (a NumPy array or a CPU tensor mixed in is a TypeError); inputs are made contiguous
(a copy when needed), outputs come from the Tensor layer's caching allocator on that device, the
kernels run on fastnn's stream for the device, and the results are Tensors there. Argument
errors use the CPU path's messages. Losses return (float, Tensor); the float waits for the stream.
"""

import math

import numpy as np

from fastnn import cuda as _cuda_api
from fastnn._checks import (FLOAT_DTYPES, class_weight_shape, finite_real, label_smoothing_arg,
                            linear_dims, linear_grad_dims, matmul_dims, sampled_softmax_dims,
                            softmax_xent_dims, softmax_xent_label_kind)
from fastnn.tensor import Tensor

_INT64 = np.dtype(np.int64)
_UINT8 = np.dtype(np.uint8)
_F64 = np.dtype(np.float64)
_streams = {}


# ---------------------------------------------------------------------------- dispatch tests
def has_tensor(*args):
    """True when any argument is a fastnn.Tensor (the only test on the CPU path)."""
    for a in args:
        if type(a) is Tensor:
            return True
    return False


def has_tensor_list(*lists):
    """has_tensor for list arguments (optimizer steps): a Tensor, or a list holding one."""
    for xs in lists:
        t = type(xs)
        if t is list or t is tuple:
            for a in xs:
                if type(a) is Tensor:
                    return True
        elif t is Tensor:
            return True
    return False


def _is_cuda(a):
    return type(a) is Tensor and a._storage is not None


def _host(a):
    """A CPU tensor's NumPy array; anything else unchanged."""
    if type(a) is Tensor and a._storage is None:
        return a._array
    return a


def _host_list(xs):
    if type(xs) in (list, tuple):
        return [_host(a) for a in xs]
    return _host(xs)


def _any_cuda(*args):
    for a in args:
        if _is_cuda(a):
            return True
        if type(a) in (list, tuple) and any(_is_cuda(t) for t in a):
            return True
    return False


def _what(a):
    if type(a) is Tensor:
        return f"a Tensor on {a.device}"
    if isinstance(a, np.ndarray):
        return "a NumPy array"
    return type(a).__name__


def _device(**named):
    """The CUDA device index shared by the given tensors (None values are skipped): every one
    must be a CUDA tensor (TypeError) on the first one's device (ValueError)."""
    index = first = None
    for name, a in named.items():
        if _is_cuda(a):
            index, first = a._index, name
            break
    for name, a in named.items():
        if a is None:
            continue
        if not _is_cuda(a):
            raise TypeError(f"{name}: expected a fastnn.Tensor on cuda:{index} (as {first} is), "
                            f"got {_what(a)}; CPU arrays and GPU tensors do not mix in one call "
                            f"(move it with fastnn.asarray(..., device='cuda:{index}'))")
        if a._index != index:
            raise ValueError(f"{name}: expected a tensor on cuda:{index} (as {first} is), got one "
                             f"on {a.device}")
    return index


def _mod():
    return _cuda_api._require()


def _stream(index):
    s = _streams.get(index)
    if s is None:
        s = _streams[index] = int(_mod().stream(index))
    return s


# ---------------------------------------------------------------------------- tensor helpers
def _float(t, name, ndim=None):
    """A float CUDA tensor as a contiguous one (a copy only when it is strided)."""
    if t._dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {t._dtype} "
                        f"(convert with .astype(np.float32))")
    if ndim is not None and len(t._shape) != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {t._shape}")
    return t if t.is_contiguous() else t.copy()


def _same_dtype(**named):
    items = [(n, t) for n, t in named.items() if t is not None]
    first_name, first = items[0]
    for n, t in items[1:]:
        if t._dtype != first._dtype:
            raise TypeError(f"{n}: dtype {t._dtype} does not match {first_name}'s "
                            f"{first._dtype}; all arrays must share one dtype")


def _writable(t, name, shape, dtype):
    """An output / in-place tensor: exactly this dtype and shape, contiguous, writable."""
    if t._dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {t._dtype}")
    if t._shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {t._shape}")
    if not t.is_contiguous() or t._storage.readonly:
        raise ValueError(f"{name}: expected a writable C-contiguous tensor (it is written in "
                         f"place)")
    return t


def _empty(shape, dtype, index):
    return Tensor._empty_cuda(tuple(shape), np.dtype(dtype), index)


def _zeros(shape, dtype, index):
    return Tensor._upload(np.zeros(shape, dtype), index)


def _ptr(t):
    return 0 if t is None else t.data_ptr()


def _span(t):
    p = t.data_ptr()
    return p, p + t.nbytes


def _overlap(a, b):
    if a is None or b is None or a.nbytes == 0 or b.nbytes == 0:
        return False
    a0, a1 = _span(a)
    b0, b1 = _span(b)
    return a0 < b1 and b0 < a1


def _same_block(a, b):
    return a.data_ptr() == b.data_ptr() and a._shape == b._shape


def _copy_into(dst, src):
    if src.nbytes:
        _mod().copy_device(dst._storage, dst._offset, src._storage, src._offset, src.nbytes)
    return dst


def _dt(t):
    return "float32" if t._dtype == np.float32 else "float64"


def _out(out, inputs, like, index):
    """(tensor the kernel writes, user's out to copy into afterwards or None): out is written
    directly when it is an input exactly (in place) or apart from all of them."""
    if out is None:
        return _empty(like._shape, like._dtype, index), None
    _writable(out, "out", like._shape, like._dtype)
    if all(_same_block(out, a) or not _overlap(out, a) for a in inputs):
        return out, None
    return _empty(like._shape, like._dtype, index), out


def _finish(result, copy_to):
    return result if copy_to is None else _copy_into(copy_to, result)


def _labels_int64(labels):
    if labels._dtype.kind not in "iu":
        raise TypeError(f"labels: expected integer class indices, got {labels._dtype}")
    if labels._dtype != _INT64:
        labels = labels.astype(_INT64)  # through the host; int64 labels are used as they are
    return labels if labels.is_contiguous() else labels.copy()


# ---------------------------------------------------------------------------- dense
def _gemm32(a, b, c, m, n, k, trans_a, trans_b, alpha, beta, bias, act, param, index):
    if a._dtype != np.float32:
        raise TypeError(f"matmul/linear on the GPU: float32 only (the CUDA GEMM has no float64 "
                        f"kernel), got {a._dtype}")
    _mod().gemm_device(a.data_ptr(), b.data_ptr(), c.data_ptr(), m, n, k, a._shape[1],
                       b._shape[1], n, trans_a, trans_b, alpha, beta, _ptr(bias), act, param,
                       _stream(index))


def matmul(a, b, trans_a, trans_b, alpha, beta, out):
    from fastnn import ops
    if not _any_cuda(a, b, out):
        return ops.matmul(_host(a), _host(b), trans_a, trans_b, alpha, beta, _host(out))
    index = _device(a=a, b=b, out=out)
    a = _float(a, "a", ndim=2)
    b = _float(b, "b", ndim=2)
    _same_dtype(a=a, b=b)
    alpha = finite_real(alpha, "alpha")
    beta = finite_real(beta, "beta")
    m, k, n = matmul_dims(a._shape, b._shape, trans_a, trans_b)
    if out is None:
        if beta != 0.0:
            raise ValueError("beta: a non-zero beta needs an `out` array to scale and add to")
        out = _empty((m, n), a._dtype, index)
    else:
        _writable(out, "out", (m, n), a._dtype)
    if m == 0 or n == 0:
        return out
    if a._dtype != np.float32:
        raise TypeError(f"matmul on the GPU: float32 only (the CUDA GEMM has no float64 kernel), "
                        f"got {a._dtype}")
    if k == 0:  # alpha * (empty sum) + beta * out
        if beta == 0.0:
            return _copy_into(out, _zeros((m, n), a._dtype, index))
        _mod().scale_tensors("float32", [out.data_ptr()], [m * n], beta, 0, _stream(index))
        return out
    dst = out
    if _overlap(out, a) or _overlap(out, b):
        dst = out.copy() if beta != 0.0 else _empty((m, n), a._dtype, index)
    _gemm32(a, b, dst, m, n, k, bool(trans_a), bool(trans_b), alpha, beta, None, "none", 0.0,
            index)
    return out if dst is out else _copy_into(out, dst)


def linear(x, w, b, act, param, return_preactivation):
    from fastnn import ops
    if not _any_cuda(x, w, b):
        return ops.linear(_host(x), _host(w), _host(b), None if act == "none" else act, param,
                          return_preactivation)
    index = _device(x=x, w=w, b=b)
    x = _float(x, "x", ndim=2)
    w = _float(w, "w", ndim=2)
    if b is not None:
        b = _float(b, "b", ndim=1)
    _same_dtype(x=x, w=w, b=b)
    linear_dims(x._shape, w._shape, None if b is None else b._shape)
    if x._dtype != np.float32:
        raise TypeError(f"linear on the GPU: float32 only (the CUDA GEMM has no float64 kernel), "
                        f"got {x._dtype}")
    m, k = x._shape
    n = w._shape[1]
    y = _empty((m, n), x._dtype, index)
    z = _empty((m, n), x._dtype, index) if return_preactivation else None
    if m and n:
        s = _stream(index)
        if k == 0:  # z = b broadcast over the rows (or zeros), then y = act(z)
            host = np.zeros((m, n), np.float32)
            if b is not None:
                host += b.numpy()
            zz = Tensor._upload(host, index)
            _mod().act_forward(act, param, zz.data_ptr(), y.data_ptr(), m * n, "float32", s)
            if z is not None:
                _copy_into(z, zz)
        elif z is not None:  # z by the GEMM (bias fused), y = act(z) in one more pass
            _gemm32(x, w, z, m, n, k, False, False, 1.0, 0.0, b, "none", 0.0, index)
            _mod().act_forward(act, param, z.data_ptr(), y.data_ptr(), m * n, "float32", s)
        else:
            _gemm32(x, w, y, m, n, k, False, False, 1.0, 0.0, b, act, param, index)
    return (y, z) if return_preactivation else y


def linear_grad(dy, x, w, activation, z, y, negative_slope, need_dx, dx, dw, db, accumulate):
    """GPU linear_grad (float32): one call to the CUDA dense backward (csrc/cuda/dense.h), which
    forms dz = dy * act'(z or y) while its two GEMMs (dw = x.T @ dz, dx = dz @ w.T) stage their
    tiles and sums db = dz.sum(0) in double, in a fixed order; the workspace (dz in memory when
    it takes the composed path, for the costly activations on large layers; split-K partials
    when the fused path splits long sums) comes from the caching allocator."""
    from fastnn import _dense
    from fastnn.ops import _activation_arg
    if not _any_cuda(dy, x, w, z, y, dx, dw, db):
        return _dense.linear_grad(_host(dy), _host(x), _host(w), activation, _host(z), _host(y),
                                  negative_slope, need_dx, _host(dx), _host(dw), _host(db),
                                  accumulate)
    index = _device(dy=dy, x=x, w=w, z=z, y=y, dx=dx, dw=dw, db=db)
    dy = _float(dy, "dy", ndim=2)
    x = _float(x, "x", ndim=2)
    w = _float(w, "w", ndim=2)
    _same_dtype(dy=dy, x=x, w=w)
    n, k, m = linear_grad_dims(dy._shape, x._shape, w._shape)
    dtype = dy._dtype
    act, param = _activation_arg(activation, negative_slope)
    gate, from_output = None, False
    if act != "none":
        if z is not None:
            gate = z
        elif y is not None:
            if act not in _dense.GRAD_FROM_OUTPUT:
                raise ValueError(f"linear_grad: the derivative of {act} needs z (the "
                                 f"pre-activation), not y; pass z=")
            if act == "leaky_relu" and param <= 0:
                raise ValueError("linear_grad: leaky_relu with a non-positive slope needs z, "
                                 "not y")
            gate, from_output = y, True
        else:
            raise ValueError(f"linear_grad: activation {act!r} needs z= (or y= for "
                             f"{', '.join(_dense.GRAD_FROM_OUTPUT)})")
        name = "y" if from_output else "z"
        gate = _float(gate, name, ndim=2)
        if gate._shape != (n, m):
            raise ValueError(f"{name}: expected shape {(n, m)}, got {gate._shape}")
        if gate._dtype != dtype:
            raise TypeError(f"{name}: dtype {gate._dtype} does not match dy's {dtype}")
    if accumulate and (dw is None or db is None):
        raise ValueError("accumulate=True needs the dw and db arrays to add into")
    if dtype != np.float32:
        raise TypeError(f"linear_grad on the GPU: float32 only (the CUDA GEMM has no float64 "
                        f"kernel), got {dtype}")
    dw = _empty((k, m), dtype, index) if dw is None else _writable(dw, "dw", (k, m), dtype)
    db = _empty((m,), dtype, index) if db is None else _writable(db, "db", (m,), dtype)
    if not need_dx:
        dx = None
    elif dx is None:
        dx = _empty((n, k), dtype, index)
    else:
        dx = _writable(dx, "dx", (n, k), dtype)
    for name, arr in (("dx", dx), ("dw", dw), ("db", db)):
        for src in (dy, x, w, gate):
            if arr is not None and src is not None and _overlap(arr, src):
                raise ValueError(f"{name}: must not overlap the inputs")
    s = _stream(index)
    ws_bytes = int(_mod().dense_backward_workspace_bytes(n, m, k))
    ws = _empty((ws_bytes,), _UINT8, index)
    # x (n, k), w (k, m), dy and the gate (n, m), all contiguous: row strides k, m, m.
    _mod().dense_backward(dy.data_ptr(), x.data_ptr(), w.data_ptr(), _ptr(gate), act, param,
                          from_output, dw.data_ptr(), db.data_ptr(), _ptr(dx), n, k, m, m, k, m,
                          m, k, bool(accumulate), ws.data_ptr(), ws_bytes, s)
    return dx, dw, db


# ---------------------------------------------------------------------------- activations
def elementwise(cpu_fn, x, name, param, out, *cpu_args):
    """relu & co.: cpu_fn(x, *cpu_args, out=out) is the CPU op for the no-CUDA case."""
    if not _any_cuda(x, out):
        return cpu_fn(_host(x), *cpu_args, out=_host(out))
    index = _device(x=x, out=out)
    x = _float(x, "x")
    dst, copy_to = _out(out, (x,), x, index)
    if x.size:
        _mod().act_forward(name, param, x.data_ptr(), dst.data_ptr(), x.size, _dt(x),
                           _stream(index))
    return _finish(dst, copy_to)


def _rows_cols(t):
    cols = t._shape[-1]
    return (0 if cols == 0 else t.size // cols), cols


def rowwise(cpu_fn, x, log, out):
    if not _any_cuda(x, out):
        return cpu_fn(_host(x), out=_host(out))
    index = _device(x=x, out=out)
    x = _float(x, "x")
    if len(x._shape) == 0:
        raise ValueError("x: expected a 1-D or 2-D array (softmax runs over the last axis), "
                         "got a 0-D array")
    dst, copy_to = _out(out, (x,), x, index)
    rows, cols = _rows_cols(x)
    if rows and cols:
        _mod().softmax_forward(x.data_ptr(), dst.data_ptr(), rows, cols, _dt(x), _stream(index),
                               log)
    return _finish(dst, copy_to)


def activation_grad(name, dy, x, param):
    """name: already checked and normalised by the CPU op ("none" for linear); param: the
    activation's parameter."""
    from fastnn import _activations
    if not _any_cuda(dy, x):
        return _activations.activation_grad(None if name == "none" else name, _host(dy), _host(x),
                                            negative_slope=param, alpha=param)
    index = _device(dy=dy, x=x)
    dy = _float(dy, "dy")
    x = _float(x, "x")
    _same_dtype(dy=dy, x=x)
    if dy._shape != x._shape:
        raise ValueError(f"dy: expected the shape of x {x._shape}, got {dy._shape}")
    dx = _empty(x._shape, x._dtype, index)
    s = _stream(index)
    if name in ("softmax", "log_softmax"):
        log = name == "log_softmax"
        y = rowwise(None, x, log, None)
        rows, cols = _rows_cols(x)
        if rows and cols:
            _mod().softmax_backward(dy.data_ptr(), y.data_ptr(), dx.data_ptr(), rows, cols,
                                    _dt(x), s, log)
        return dx
    if x.size:
        _mod().act_backward(name, param, dy.data_ptr(), x.data_ptr(), dx.data_ptr(), x.size,
                            _dt(x), s, False)
    return dx


# ---------------------------------------------------------------------------- dropout
def dropout(x, rate, seed, out, mask):
    """rate and seed already validated by the CPU op."""
    from fastnn import _dropout
    if not _any_cuda(x, out, mask):
        return _dropout.dropout(_host(x), rate, seed, out=_host(out), mask=_host(mask))
    index = _device(x=x, out=out, mask=mask)
    x = _float(x, "x")
    if (out is None) != (mask is None):
        raise ValueError("out, mask: give both arrays to write into, or neither")
    if out is None:
        out = _empty(x._shape, x._dtype, index)
        mask = _empty(x._shape, _UINT8, index)
    else:
        _writable(out, "out", x._shape, x._dtype)
        _writable(mask, "mask", x._shape, _UINT8)
        if _overlap(mask, x) or _overlap(mask, out):
            raise ValueError("mask: must not overlap x or out")
        if _overlap(out, x) and out.data_ptr() != x.data_ptr():
            raise ValueError("out: may be x itself, but must not partly overlap it")
    if x.size:
        _mod().dropout_forward(x.data_ptr(), out.data_ptr(), mask.data_ptr(), x.size, rate,
                               int(seed), _dt(x), _stream(index))
    return out, mask


def dropout_grad(dy, mask, rate):
    from fastnn import _dropout
    if not _any_cuda(dy, mask):
        return _dropout.dropout_grad(_host(dy), _host(mask), rate)
    index = _device(dy=dy, mask=mask)
    dy = _float(dy, "dy")
    if mask._dtype != _UINT8:
        raise TypeError(f"mask: expected the uint8 mask returned by dropout, got {mask._dtype}")
    if mask._shape != dy._shape:
        raise ValueError(f"mask: expected shape {dy._shape} (dy's), got {mask._shape}")
    mask = mask if mask.is_contiguous() else mask.copy()
    dx = _empty(dy._shape, dy._dtype, index)
    if dy.size:
        _mod().dropout_backward(dy.data_ptr(), mask.data_ptr(), dx.data_ptr(), dy.size, rate,
                                _dt(dy), _stream(index))
    return dx


# ---------------------------------------------------------------------------- losses
def _workspace(index):
    return _empty((int(_mod().loss_workspace_bytes()),), _UINT8, index)


def softmax_cross_entropy(logits, labels, class_weight, label_smoothing):
    from fastnn import _losses
    if not _any_cuda(logits, labels, class_weight):
        return _losses.softmax_cross_entropy(_host(logits), _host(labels), _host(class_weight),
                                             label_smoothing)
    index = _device(logits=logits, labels=labels, class_weight=class_weight)
    logits = _float(logits, "logits", ndim=2)
    n, c = softmax_xent_dims(logits._shape)
    probs = None
    if softmax_xent_label_kind(labels._dtype, labels._shape, logits._dtype,
                               logits._shape) == "index":
        if len(labels._shape) != 1 or labels._shape[0] != n:
            raise ValueError(f"labels: expected class indices of shape ({n},) to match logits' "
                             f"{n} rows, got shape {labels._shape}")
        labels = _labels_int64(labels)
    else:
        probs, labels = _float(labels, "labels"), None
    if class_weight is not None:
        class_weight = _float(class_weight, "class_weight", ndim=1)
        _same_dtype(logits=logits, class_weight=class_weight)
        class_weight_shape(class_weight._shape, logits._shape)
        if not np.all(np.isfinite(class_weight.numpy())):
            raise ValueError("class_weight: expected finite weights")
    label_smoothing = label_smoothing_arg(label_smoothing)
    grad = _empty(logits._shape, logits._dtype, index)
    ws = _workspace(index)
    loss = _mod().softmax_cross_entropy(logits.data_ptr(), _ptr(labels), _ptr(probs),
                                        _ptr(class_weight), grad.data_ptr(), n, c,
                                        label_smoothing, ws.data_ptr(), _dt(logits),
                                        _stream(index))
    return float(loss), grad


def elem_loss(kernel, a, b, a_name, b_name):
    """binary_cross_entropy_with_logits, mse, mae: kernel is the fastnn._cuda function name."""
    from fastnn import _losses
    if not _any_cuda(a, b):
        return getattr(_losses, "binary_cross_entropy_with_logits" if kernel.startswith("binary")
                       else kernel)(_host(a), _host(b))
    index = _device(**{a_name: a, b_name: b})
    a = _float(a, a_name)
    b = _float(b, b_name)
    _same_dtype(**{a_name: a, b_name: b})
    if a._shape != b._shape:
        raise ValueError(f"{b_name}: expected shape {a._shape} to match {a_name}, got {b._shape}")
    if a.size == 0:
        raise ValueError(f"{a_name}: expected at least one element, got shape {a._shape}")
    grad = _empty(a._shape, a._dtype, index)
    ws = _workspace(index)
    loss = getattr(_mod(), kernel)(a.data_ptr(), b.data_ptr(), grad.data_ptr(), a.size,
                                   ws.data_ptr(), _dt(a), _stream(index))
    return float(loss), grad


# ---------------------------------------------------------------------------- sampled softmax
def sampled_softmax_cross_entropy(h, W, b, labels, num_sampled, seed, sampler, unique,
                                  subtract_log_q, remove_accidental_hits, correct_true_logit, dW,
                                  db):
    """The GPU half of fastnn.ops.sampled_softmax_cross_entropy: the labels (N int64) come to
    the host, where the CPU sampler draws the same sample for the same seed and the tables are
    built (fastnn._cuda.sampled_softmax_plan); the kernels run on the device. Returns (loss,
    dh, cols, dW_cols, db_cols or None), the arrays as Tensors on h's device."""
    from fastnn import _sampled
    if not _any_cuda(h, W, b, labels, dW, db):
        return _sampled.sampled_softmax_cross_entropy(
            _host(h), _host(W), _host(b), _host(labels), num_sampled, seed, sampler, unique,
            subtract_log_q, remove_accidental_hits, correct_true_logit, dW=_host(dW),
            db=_host(db))
    index = _device(h=h, W=W, b=b, labels=labels, dW=dW, db=db)
    h = _float(h, "h", ndim=2)
    W = _float(W, "W", ndim=2)
    if b is not None:
        b = _float(b, "b", ndim=1)
    _same_dtype(h=h, W=W, b=b)
    n, d, c = sampled_softmax_dims(h._shape, W._shape, None if b is None else b._shape)
    if labels._dtype.kind not in "iu":
        raise TypeError(f"labels: expected integer class indices, got dtype {labels._dtype}")
    if labels._shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), one class index per row of h, "
                         f"got {labels._shape}")
    num_sampled, c, seed, sampler, unique = _sampled._sampling_args(num_sampled, c, seed,
                                                                    sampler, unique)
    dtype = h._dtype
    if dW is not None:
        _writable(dW, "dW", W._shape, dtype)
    if db is not None:
        if b is None:
            raise ValueError("db: there is no bias gradient when b is None")
        _writable(db, "db", (c,), dtype)
    host_labels = _sampled._labels_arg(labels.numpy(), n, c)  # the CPU op's range check
    mod = _mod()
    plan = mod.sampled_softmax_plan(host_labels, d, c, num_sampled, seed, sampler, unique,
                                    bool(subtract_log_q), bool(remove_accidental_hits),
                                    bool(correct_true_logit), b is not None, _dt(h))
    k = int(plan.k)
    dh = _empty((n, d), dtype, index)
    dW_cols = _empty((d, k), dtype, index)
    db_cols = None if b is None else _empty((k,), dtype, index)
    cols = _empty((k,), _INT64, index)
    ws = _empty((int(plan.workspace_bytes),), _UINT8, index)
    s = _stream(index)
    loss = mod.sampled_softmax_cross_entropy(plan, h.data_ptr(), W.data_ptr(), _ptr(b),
                                             dh.data_ptr(), dW_cols.data_ptr(), _ptr(db_cols),
                                             cols.data_ptr(), ws.data_ptr(), ws.size, s)
    if dW is not None or db is not None:
        # Without dW the scatter covers no rows of it (D = 0) and only adds into db.
        mod.sampled_scatter_add(_dt(h), cols.data_ptr(), k, d if dW is not None else 0, c,
                                dW_cols.data_ptr(), _ptr(db_cols) if db is not None else 0,
                                _ptr(dW), _ptr(db), s)
    return float(loss), dh, cols, dW_cols, db_cols


# ---------------------------------------------------------------------------- batch norm
def _features(v, name, like, writable=False, required=False):
    if v is None:
        if required:
            raise ValueError(f"{name}: required here, got None")
        return None
    f = like._shape[1]
    if v._dtype != like._dtype:
        raise TypeError(f"{name}: expected dtype {like._dtype} (x's), got {v._dtype}")
    if v._shape != (f,):
        raise ValueError(f"{name}: expected shape ({f},), one value per feature of x "
                         f"{like._shape}, got {v._shape}")
    if writable:
        if not v.is_contiguous() or v._storage.readonly:
            raise ValueError(f"{name}: expected a writable C-contiguous array (it is updated "
                             f"in place)")
        return v
    return v if v.is_contiguous() else v.copy()


def _bn_workspace(n, f, index):
    return _empty((int(_mod().batch_norm_workspace_bytes(n, f)),), _UINT8, index)


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    """momentum and eps already validated by the CPU op."""
    from fastnn import _norm
    if not _any_cuda(x, gamma, beta, running_mean, running_var):
        return _norm.batch_norm(_host(x), _host(gamma), _host(beta), _host(running_mean),
                                _host(running_var), training, momentum, eps)
    index = _device(x=x, gamma=gamma, beta=beta, running_mean=running_mean,
                    running_var=running_var)
    x = _float(x, "x")
    if len(x._shape) != 2:
        raise ValueError(f"x: expected a 2-D (N, F) array, got shape {x._shape}")
    gamma = _features(gamma, "gamma", x)
    beta = _features(beta, "beta", x)
    n, f = x._shape
    if training:
        if n < 2:
            raise ValueError(f"x: batch normalization in training needs at least 2 rows (a "
                             f"variance), got shape {x._shape}")
        running_mean = _features(running_mean, "running_mean", x, writable=True)
        running_var = _features(running_var, "running_var", x, writable=True)
        y = _empty(x._shape, x._dtype, index)
        save_mean = _empty((f,), x._dtype, index)
        save_invstd = _empty((f,), x._dtype, index)
        if f:
            ws = _bn_workspace(n, f, index)
            _mod().batch_norm_train(_dt(x), x.data_ptr(), n, f, _ptr(gamma), _ptr(beta),
                                    _ptr(running_mean), _ptr(running_var), momentum, eps,
                                    y.data_ptr(), save_mean.data_ptr(), save_invstd.data_ptr(),
                                    ws.data_ptr(), ws.size, _stream(index))
        return y, save_mean, save_invstd
    running_mean = _features(running_mean, "running_mean", x, required=True)
    running_var = _features(running_var, "running_var", x, required=True)
    y = _empty(x._shape, x._dtype, index)
    if n and f:
        ws = _bn_workspace(n, f, index)
        _mod().batch_norm_infer(_dt(x), x.data_ptr(), n, f, _ptr(gamma), _ptr(beta),
                                running_mean.data_ptr(), running_var.data_ptr(), eps,
                                y.data_ptr(), ws.data_ptr(), ws.size, _stream(index))
    return y, None, None


def batch_norm_grad(dy, x, gamma, save_mean, save_invstd):
    from fastnn import _norm
    if not _any_cuda(dy, x, gamma, save_mean, save_invstd):
        return _norm.batch_norm_grad(_host(dy), _host(x), _host(gamma), _host(save_mean),
                                     _host(save_invstd))
    index = _device(dy=dy, x=x, gamma=gamma, save_mean=save_mean, save_invstd=save_invstd)
    x = _float(x, "x")
    if len(x._shape) != 2:
        raise ValueError(f"x: expected a 2-D (N, F) array, got shape {x._shape}")
    dy = _float(dy, "dy")
    if len(dy._shape) != 2:
        raise ValueError(f"dy: expected a 2-D (N, F) array, got shape {dy._shape}")
    if dy._dtype != x._dtype:
        raise TypeError(f"dy: expected dtype {x._dtype} (x's), got {dy._dtype}")
    if dy._shape != x._shape:
        raise ValueError(f"dy: expected shape {x._shape} (x's), got {dy._shape}")
    if x._shape[0] == 0:
        raise ValueError(f"x: expected at least one row, got shape {x._shape}")
    gamma = _features(gamma, "gamma", x)
    save_mean = _features(save_mean, "save_mean", x, required=True)
    save_invstd = _features(save_invstd, "save_invstd", x, required=True)
    n, f = x._shape
    dx = _empty(x._shape, x._dtype, index)
    dgamma = _empty((f,), x._dtype, index)
    dbeta = _empty((f,), x._dtype, index)
    if f:
        ws = _bn_workspace(n, f, index)
        _mod().batch_norm_backward(_dt(x), dy.data_ptr(), x.data_ptr(), n, f, _ptr(gamma),
                                   save_mean.data_ptr(), save_invstd.data_ptr(), dx.data_ptr(),
                                   dgamma.data_ptr(), dbeta.data_ptr(), ws.data_ptr(), ws.size,
                                   _stream(index))
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------- reductions
def _matrix(x, name):
    x = _float(x, name)
    if len(x._shape) != 2:
        raise ValueError(f"{name}: expected a 2-D (N, F) array, got shape {x._shape}")
    return x


def sum_rows(x, mean):
    from fastnn import _reduce
    if not _any_cuda(x):
        return (_reduce.mean_rows if mean else _reduce.sum_rows)(_host(x))
    index = x._index
    x = _matrix(x, "x")
    n, f = x._shape
    if mean and n == 0:
        raise ValueError(f"x: expected at least one row to average, got shape {x._shape}")
    if n == 0:
        return _zeros((f,), x._dtype, index)
    out = _empty((f,), x._dtype, index)
    if f:
        ws = _empty((int(_mod().column_sums_workspace_bytes(n, f)),), _UINT8, index)
        _mod().sum_rows(_dt(x), x.data_ptr(), n, f, out.data_ptr(), bool(mean), ws.data_ptr(),
                        ws.size, _stream(index))
    return out


def _scores(x, name):
    x = _matrix(x, name)
    if x._shape[1] == 0 and x._shape[0] > 0:
        raise ValueError(f"{name}: expected at least one class (column), got shape {x._shape}")
    return x


def _argmax(x, index):
    n, f = x._shape
    idx = _empty((n,), _INT64, index)
    if n:
        _mod().argmax_rows(_dt(x), x.data_ptr(), n, f, idx.data_ptr(), _stream(index))
    return idx


def argmax_rows(x):
    from fastnn import _reduce
    if not _any_cuda(x):
        return _reduce.argmax_rows(_host(x))
    return _argmax(_scores(x, "x"), x._index)


def count_correct(scores, labels):
    from fastnn import _reduce
    if not _any_cuda(scores, labels):
        return _reduce.count_correct(_host(scores), _host(labels))
    index = _device(scores=scores, labels=labels)
    scores = _scores(scores, "scores")
    n, c = scores._shape
    if len(labels._shape) == 2 and labels._dtype.kind == "f":
        if labels._shape != scores._shape:
            raise ValueError(f"labels: one-hot labels must have scores' shape {scores._shape}, "
                             f"got {labels._shape}")
        labels = _argmax(_matrix(labels, "labels"), index)
    if labels._dtype.kind not in "iu":
        raise TypeError(f"labels: expected integer class indices, got {labels._dtype}")
    if labels._shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), one label per row of scores, got "
                         f"{labels._shape}")
    if n == 0:
        return 0
    labels = _labels_int64(labels)
    out = _empty((2,), _INT64, index)
    _mod().count_correct(_dt(scores), scores.data_ptr(), labels.data_ptr(), n, c,
                         out.data_ptr(), _stream(index))
    correct, bad = (int(v) for v in out.numpy())
    if bad:
        raise ValueError(f"labels: expected class indices in [0, {c}), got {bad} label(s) "
                         f"outside that range")
    return correct


# ---------------------------------------------------------------------------- optimizers
def _as_list(xs, name):
    if type(xs) is Tensor:
        return [xs]
    if isinstance(xs, (list, tuple)):
        return list(xs)
    raise TypeError(f"{name}: expected a list of fastnn Tensors, got {type(xs).__name__}")


def _tensor_list(xs, name, index, like=None, writable=True):
    """Like the CPU path's _tensors: one float dtype, contiguous, writable when asked, matching
    `like` index by index, every tensor on cuda:index."""
    xs = _as_list(xs, name)
    if like is not None and len(xs) != len(like):
        raise ValueError(f"{name}: expected {len(like)} arrays, one per param, got {len(xs)}")
    dtype = like[0]._dtype if like else (xs[0]._dtype if xs and _is_cuda(xs[0]) else None)
    for i, x in enumerate(xs):
        if not _is_cuda(x):
            raise TypeError(f"{name}[{i}]: expected a fastnn.Tensor on cuda:{index}, got "
                            f"{_what(x)}; CPU arrays and GPU tensors do not mix in one call")
        if x._index != index:
            raise ValueError(f"{name}[{i}]: expected a tensor on cuda:{index}, got one on "
                             f"{x.device}")
        if x._dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name}[{i}]: expected float32 or float64, got {x._dtype}")
        if x._dtype != dtype:
            raise TypeError(f"{name}[{i}]: expected dtype {dtype} (all arrays of one call share "
                            f"one dtype), got {x._dtype}")
        if like is not None and x._shape != like[i]._shape:
            raise ValueError(f"{name}[{i}]: expected shape {like[i]._shape} to match "
                             f"params[{i}], got {x._shape}")
        if not x.is_contiguous():
            raise ValueError(f"{name}[{i}]: expected a C-contiguous array (use "
                             f"np.ascontiguousarray once, when creating it)")
        if writable and x._storage.readonly:
            raise ValueError(f"{name}[{i}]: array is read-only; it is updated in place")
    return xs


def _no_overlap(named_lists):
    names = [n for n, xs in named_lists]
    lists = [xs for n, xs in named_lists]
    for i in range(len(lists[0])):
        for a in range(len(lists)):
            for b in range(a + 1, len(lists)):
                if _overlap(lists[a][i], lists[b][i]):
                    raise ValueError(f"{names[b]}[{i}]: shares memory with {names[a]}[{i}]; "
                                     f"each needs its own array")


def _ptrs(xs):
    return None if xs is None else [t.data_ptr() for t in xs]


def _list_device(xs):
    """The device of the first CUDA tensor in xs (a tensor or a list), else None."""
    if _is_cuda(xs):
        return xs._index
    if type(xs) in (list, tuple):
        for t in xs:
            if _is_cuda(t):
                return t._index
    return None


def optim_step(kind, params, grads, states, l1, l2, grad_scale, scalars, cpu_call):
    """The four steps. states: (name, list or None, required) in kernel order; scalars: the
    kernel's trailing arguments after l1, l2 (validated by the CPU op); cpu_call(unwrap): the
    CPU op for the no-CUDA case."""
    from fastnn import _optim_ops
    index = _list_device(params)
    if index is None and not _any_cuda(grads, *(s for _, s, _ in states)):
        return cpu_call(_host_list)
    if index is None:
        for name, xs in [("grads", grads)] + [(n, s) for n, s, _ in states]:
            if xs is not None:
                index = _list_device(xs)
                if index is not None:
                    break
    params = _tensor_list(params, "params", index)
    grads = _tensor_list(grads, "grads", index, like=params, writable=False)
    named = [("params", params), ("grads", grads)]
    lists = []
    for name, xs, used in states:
        if used:
            xs = _tensor_list(xs, name, index, like=params)
            named.append((name, xs))
            lists.append(_ptrs(xs))
        else:
            lists.append(None)
    _no_overlap(named)
    if not params:
        return None
    l1 = _optim_ops._penalty(l1, "l1", len(params))
    l2 = _optim_ops._penalty(l2, "l2", len(params))
    grad_scale = finite_real(grad_scale, "grad_scale")
    fn = getattr(_mod(), kind)
    fn(_dt(params[0]), _ptrs(params), _ptrs(grads), *lists, [t.size for t in params], l1, l2,
       *scalars, grad_scale, 0, _stream(index))
    return None


def _norm_of(tensors, index, max_norm):
    """(norm, clip coefficient) of CUDA tensors, read back from the device."""
    sizes = [t.size for t in tensors]
    cap = int(_mod().global_norm_partials(sizes))
    partials = _empty((max(cap, 1),), _F64, index)
    out = _empty((2,), _F64, index)
    _mod().global_norm(_dt(tensors[0]), _ptrs(tensors), sizes, max_norm, partials.data_ptr(),
                       cap, out.data_ptr(), _stream(index))
    norm, coef = out.numpy()
    return float(norm), float(coef)


def global_norm(tensors):
    from fastnn import _optim_ops
    index = _list_device(tensors)
    if index is None:
        return _optim_ops.global_norm(_host_list(tensors))
    tensors = [t.copy() if _is_cuda(t) and not t.is_contiguous() else t
               for t in _as_list(tensors, "tensors")]
    tensors = _tensor_list(tensors, "tensors", index, writable=False)
    return _norm_of(tensors, index, math.inf)[0]


def clip_grad_norm(grads, max_norm):
    from fastnn import _optim_ops
    index = _list_device(grads)
    if index is None:
        return _optim_ops.clip_grad_norm(_host_list(grads), max_norm)
    grads = _tensor_list(grads, "grads", index)
    max_norm = _optim_ops._non_negative(max_norm, "max_norm")
    norm, _ = _norm_of(grads, index, math.inf)
    if math.isfinite(norm):
        coef = max_norm / (norm + 1e-6)  # the CPU path's formula, to the bit
        if coef < 1.0:
            _mod().scale_tensors(_dt(grads[0]), _ptrs(grads), [t.size for t in grads], coef, 0,
                                 _stream(index))
    return norm

