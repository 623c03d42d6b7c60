"""NumPy in, NumPy out forms of the GPU GEMM and fused MLP kernels, for the kernel tests: the
operands go to the GPU as fastnn.Tensors (fastnn's caching allocator and stream), the kernels run
through fastnn._cuda's device-address entry points with the variant or precision the test forces,
and the results come back. Test scaffolding, kept here rather than in the shipped package.

gemm_host(a, b, out, ...)            out = act(alpha op(a) @ op(b) + beta out + bias), in place
fused_mlp_host(X, weights, ...)      (outputs, dZ or None, dX or None); device buffers start as NaN
"""

import numpy as np

import fastnn
from fastnn import cuda

_DEVICE = "cuda:0"


def _f32(obj, name, ndim):
    """A float32 NumPy array of ndim dimensions (no conversion: the GPU computes on exactly the
    numbers given)."""
    if not isinstance(obj, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array, got {type(obj).__name__}")
    if obj.dtype != np.float32:
        raise TypeError(f"{name}: expected float32, got {obj.dtype}")
    if obj.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got {obj.ndim}-D")
    return obj


def _padded(n):
    """Floats to the next 256-byte boundary: operands packed in one block stay aligned like
    separate allocations, so the 16-byte alignment of the v2 / tensor-core kernels holds."""
    return (n + 63) // 64 * 64


def gemm_host(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None,
              activation=None, act_param=0.0, variant="auto"):
    """out = act(alpha * op(a) @ op(b) + beta * out + bias) on the GPU, in place: float32 NumPy
    arrays of any strides, copied contiguously into one block of fastnn's caching allocator (no
    cudaMalloc once the cache holds a block of the size) and run on fastnn's stream. variant:
    "auto", "v1", "v2", "tf32" or "bf16" (the last three raise ValueError when the contiguous
    copies' leading dimensions do not meet their layout conditions)."""
    a, b = _f32(a, "a", 2), _f32(b, "b", 2)
    if not isinstance(out, np.ndarray):
        raise TypeError("out: expected a NumPy array")  # a list would lose the result
    if not out.flags.writeable:
        raise ValueError("out: array is read-only")
    c = _f32(out, "out", 2)
    m, k = a.shape[::-1] if trans_a else a.shape
    kb, n = b.shape[::-1] if trans_b else b.shape
    if kb != k or c.shape != (m, n):
        raise ValueError(f"gemm_host: shapes do not match: op(a) is {(m, k)}, op(b) is "
                         f"{(kb, n)}, out is {c.shape}")
    if bias is not None:
        bias = _f32(bias, "bias", 1)
        if bias.shape != (n,):
            raise ValueError(f"bias: expected shape ({n},)")
    if activation is not None and not isinstance(activation, str):
        raise TypeError("activation: expected None or a string")
    if c.size == 0:
        return out
    mod = cuda._require()
    off_b = _padded(a.size)
    off_c = off_b + _padded(b.size)
    off_bias = off_c + _padded(c.size)
    host = np.zeros(off_bias + (0 if bias is None else n), np.float32)
    host[:a.size] = a.ravel()
    host[off_b:off_b + b.size] = b.ravel()
    host[off_c:off_c + c.size] = c.ravel()
    if bias is not None:
        host[off_bias:] = bias
    block = fastnn.asarray(host, device=_DEVICE)
    base, item = block.data_ptr(), 4
    # The contiguous copies' leading dimensions: a stored (rows, cols) has row stride cols.
    mod.gemm_device(base, base + off_b * item, base + off_c * item, m, n, k, a.shape[1],
                    b.shape[1], n, bool(trans_a), bool(trans_b), float(alpha), float(beta),
                    0 if bias is None else base + off_bias * item, activation or "none",
                    float(act_param), stream=cuda.current_stream(0), variant=str(variant))
    out[...] = block.numpy()[off_c:off_c + c.size].reshape(m, n)
    return out


def fused_mlp_host(X, weights, biases=None, activations=None, precision="fp32", dY=None,
                   act_params=None, want_dx=True):
    """The fused MLP kernel on NumPy arrays: X (M, in) float32, weights[l] (in_l, out_l),
    biases[l] (out_l,) or None, one activation name (or None) and parameter per layer.

    Returns (outputs, dZ, dX): outputs[l] = act_l(in_l @ W_l + b_l); with dY (M, out_last) also
    dZ[l] = dLoss/d(in_l @ W_l + b_l) and dX (None when want_dx is false); dZ and dX are None
    without dY. Every output buffer starts as NaN on the device, so an element the kernel misses
    shows. A stack the kernel does not take is refused (ValueError) before any device call."""
    n = len(weights)
    biases = [None] * n if biases is None else list(biases)
    acts = [None] * n if activations is None else list(activations)
    params = [0.0] * n if act_params is None else [float(p) for p in act_params]
    X = _f32(X, "X", 2)
    if n == 0 or len(biases) != n:
        raise ValueError("weights and biases: expected one per layer (biases entries may be None)")
    widths = [X.shape[1]]
    for l, (w, b) in enumerate(zip(weights, biases)):
        w = _f32(w, f"weights[{l}]", 2)
        if w.shape[0] != widths[-1]:
            raise ValueError(f"weights[{l}]: expected {widths[-1]} rows, got {w.shape[0]}")
        widths.append(w.shape[1])
        if b is not None and _f32(b, f"biases[{l}]", 1).shape != (w.shape[1],):
            raise ValueError(f"biases[{l}]: expected shape ({w.shape[1]},)")
    if not cuda._fused_mlp_applies(widths, acts, precision, params):
        raise ValueError("fused_mlp_host: the fused MLP does not take this stack (1 to a few "
                         "layers, narrow widths, activations whose gradient follows from the "
                         "output)")
    m = X.shape[0]
    if dY is not None:
        dY = _f32(dY, "dY", 2)
        if dY.shape != (m, widths[-1]):
            raise ValueError(f"dY: expected shape {(m, widths[-1])}")
    mod = cuda._require()
    stream = cuda.current_stream(0)

    def dev(a):
        return fastnn.asarray(np.ascontiguousarray(a), device=_DEVICE)

    def nan(shape):
        return dev(np.full(shape, np.nan, np.float32))

    tX, tW = dev(X), [dev(w) for w in weights]
    tb = [None if b is None else dev(b) for b in biases]
    outs = [nan((m, w)) for w in widths[1:]]
    ptrs = [t.data_ptr() for t in tW]
    mod.fused_mlp_forward_device(tX.data_ptr(), m, widths, ptrs,
                                 [0 if t is None else t.data_ptr() for t in tb], acts, params,
                                 [t.data_ptr() for t in outs], str(precision), stream)
    dzs = dx = None
    if dY is not None:
        dzs = [nan((m, w)) for w in widths[1:]]
        dx = nan((m, widths[0])) if want_dx else None
        mod.fused_mlp_backward_device(m, widths, ptrs, acts, params, [t.data_ptr() for t in outs],
                                      dev(dY).data_ptr(), [t.data_ptr() for t in dzs],
                                      0 if dx is None else dx.data_ptr(), str(precision), stream)
    host = [t.numpy() for t in outs]
    return (host, None if dzs is None else [t.numpy() for t in dzs],
            None if dx is None else dx.numpy())
