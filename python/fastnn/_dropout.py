"""Inverted dropout (re-exported by fastnn.ops)."""

import numbers

import numpy as np

from fastnn import _C
from fastnn import _gpu_ops as _gpu
from fastnn._checks import as_float_array, finite_real, require_aligned


def _rate_arg(rate):
    rate = finite_real(rate, "rate")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate: expected a probability in [0, 1], got {rate}")
    return rate


def _seed_arg(seed):
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed: expected 0 <= seed < 2**64, got {seed}")
    return seed


def _out_arg(a, name, shape, dtype):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{name}: expected a writable C-contiguous array")
    return require_aligned(a, name)


def dropout(x, rate, seed, out=None, mask=None):
    """Inverted dropout: each element is zeroed with probability `rate`, the others are scaled
    by 1 / (1 - rate). Returns (y, mask), mask a uint8 array (1 = kept) of x's shape.

    The mask is a function of (seed, element index) alone (Philox 4x32-10), so the same seed
    gives the same mask for any thread count, and on the GPU.
    out, mask: arrays to write into instead of new ones (both or neither; out may be x).
    """
    if _gpu.has_tensor(x, out, mask):
        return _gpu.dropout(x, _rate_arg(rate), _seed_arg(seed), out, mask)
    x = np.ascontiguousarray(as_float_array(x, "x"))
    rate = _rate_arg(rate)
    seed = _seed_arg(seed)
    if out is None and mask is None:
        return _C.dropout_forward(x, rate, int(seed))
    if out is None or mask is None:
        raise ValueError("out, mask: give both arrays to write into, or neither")
    out = _out_arg(out, "out", x.shape, x.dtype)
    mask = _out_arg(mask, "mask", x.shape, np.dtype(np.uint8))
    if np.may_share_memory(mask, x) or np.may_share_memory(mask, out):
        raise ValueError("mask: must not overlap x or out")
    if np.may_share_memory(out, x) and not (out.ctypes.data == x.ctypes.data):
        raise ValueError("out: may be x itself, but must not partly overlap it")
    _C.dropout_forward_into(x, out, mask, rate, int(seed))
    return out, mask


def dropout_grad(dy, mask, rate):
    """Gradient of dropout: dy * mask / (1 - rate)."""
    if _gpu.has_tensor(dy, mask):
        return _gpu.dropout_grad(dy, mask, _rate_arg(rate))
    dy = np.ascontiguousarray(as_float_array(dy, "dy"))
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8:
        raise TypeError("mask: expected the uint8 mask returned by dropout, got "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.shape != dy.shape:
        raise ValueError(f"mask: expected shape {dy.shape} (dy's), got {mask.shape}")
    return _C.dropout_backward(dy, np.ascontiguousarray(mask), _rate_arg(rate))
