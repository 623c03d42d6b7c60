"""Inverted dropout (re-exported by fastnn.ops)."""

import numbers

import numpy as np

from fastnn import _C
from fastnn._checks import as_float_array, finite_real


def _rate_arg(rate):
    rate = finite_real(rate, "rate")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate: expected a probability in [0, 1], got {rate}")
    return rate


def dropout(x, rate, seed):
    """Inverted dropout: each element is zeroed with probability `rate`, the others are scaled
    by 1 / (1 - rate). Returns (y, mask), mask a uint8 array (1 = kept) of x's shape.

    The mask is a function of (seed, element index) alone (Philox 4x32-10), so the same seed
    gives the same mask for any thread count, and on the GPU.
    """
    x = np.ascontiguousarray(as_float_array(x, "x"))
    rate = _rate_arg(rate)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed: expected 0 <= seed < 2**64, got {seed}")
    return _C.dropout_forward(x, rate, int(seed))


def dropout_grad(dy, mask, rate):
    """Gradient of dropout: dy * mask / (1 - rate)."""
    dy = np.ascontiguousarray(as_float_array(dy, "dy"))
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8:
        raise TypeError("mask: expected the uint8 mask returned by dropout, got "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.shape != dy.shape:
        raise ValueError(f"mask: expected shape {dy.shape} (dy's), got {mask.shape}")
    return _C.dropout_backward(dy, np.ascontiguousarray(mask), _rate_arg(rate))
