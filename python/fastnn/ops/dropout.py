"""Inverted dropout."""

from __future__ import annotations

import numbers

import numpy as np

from fastnn._checks import in_interval
from fastnn._typing import Array, ArrayIn
from fastnn.ops._dispatch import (backend, check_out, contiguous, data_ptr, float_array, is_array,
                                  may_share_memory)

_UINT8 = np.dtype(np.uint8)


def _rate_arg(rate: float) -> float:
    return in_interval(rate, "rate", 0, 1, what="a probability")


def seed_arg(seed: int) -> int:
    """A Philox key: an int in [0, 2**64)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed: expected 0 <= seed < 2**64, got {seed}")
    return int(seed)


def dropout(x: ArrayIn, rate: float, seed: int, out: Array | None = None,
            mask: Array | None = None) -> tuple[Array, Array]:
    """Inverted dropout: each element is zeroed with probability `rate`, the others are scaled
    by 1 / (1 - rate). Returns (y, mask), mask a uint8 array (1 = kept) of x's shape.

    The mask is a function of (seed, element index) alone (Philox 4x32-10), so the same seed
    gives the same mask for any thread count, and on the GPU.
    out, mask: arrays to write into instead of new ones (both or neither; out may be x).
    """
    be, x, out, mask = backend(x=x, out=out, mask=mask)
    x = contiguous(float_array(x, "x"))
    rate = _rate_arg(rate)
    seed = seed_arg(seed)
    if out is None and mask is None:
        return be.dropout_forward(x, rate, seed)
    if out is None or mask is None:
        raise ValueError("out, mask: give both arrays to write into, or neither")
    check_out(out, "out", x.shape, x.dtype)
    check_out(mask, "mask", x.shape, _UINT8)
    if may_share_memory(mask, x) or may_share_memory(mask, out):
        raise ValueError("mask: must not overlap x or out")
    if may_share_memory(out, x) and data_ptr(out) != data_ptr(x):
        raise ValueError("out: may be x itself, but must not partly overlap it")
    be.dropout_forward_into(x, out, mask, rate, seed)
    return out, mask


def dropout_grad(dy: ArrayIn, mask: Array, rate: float) -> Array:
    """Gradient of dropout: dy * mask / (1 - rate)."""
    be, dy, mask = backend(dy=dy, mask=mask)
    dy = contiguous(float_array(dy, "dy"))
    if not is_array(mask) or mask.dtype != _UINT8:
        raise TypeError("mask: expected the uint8 mask returned by dropout, got "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.shape != dy.shape:
        raise ValueError(f"mask: expected shape {dy.shape} (dy's), got {mask.shape}")
    return be.dropout_backward(dy, contiguous(mask), _rate_arg(rate))


__all__ = ["dropout", "dropout_grad"]
