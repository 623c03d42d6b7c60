"""Weight initializers: torch.nn.init's formulas, drawn from a counter-based generator, so a
(kind, shape, seed) gives the same bits for any thread count. CPU only: into NumPy arrays."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from fastnn import _C
from fastnn._checks import FLOAT_DTYPES, non_negative
from fastnn.ops.dropout import seed_arg

INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
                "lecun_normal", "zeros", "ones",
                # torch's names for the same draws
                "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")


def _shape_arg(shape: int | Sequence[int] | None) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in shape):
        raise TypeError(f"shape: expected a tuple of ints, got {shape!r}")
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"shape: expected non-negative sizes, got {shape}")
    return shape


def init_weights(kind: str, shape: int | Sequence[int] | None, seed: int,
                 dtype: DTypeLike | None = None,
                 gain: float | None = None, out: NDArray[Any] | None = None) -> NDArray[Any]:
    """A new array of `shape` (or `out`, filled in place and returned) drawn by `kind`.

    kind: glorot_uniform / glorot_normal (Xavier: a = gain sqrt(6 / (fan_in + fan_out)),
    std = gain sqrt(2 / (fan_in + fan_out))), he_uniform / he_normal (Kaiming for ReLU:
    a = gain sqrt(3 / fan_in), std = gain / sqrt(fan_in), gain sqrt(2) by default),
    lecun_uniform / lecun_normal (variance 1 / fan_in, a plain normal), zeros, ones; torch's
    names xavier_* and kaiming_* are accepted too. Uniform draws lie in [-a, a].

    shape: (in_features, out_features), fan_in = shape[0], fan_out = shape[1]; the random kinds
    need a 2-D shape (a 1-D bias has no fans: ValueError), zeros / ones take any shape.
    seed: int in [0, 2**64). dtype: float32 (default) or float64; float32 draws are the float64
    ones rounded. gain: None for the kind's default, or a finite number >= 0.
    out: a writable float32/float64 array of `shape` (shape may then be None); its dtype is used.
    """
    if not isinstance(kind, str):
        raise TypeError(f"kind: expected a string, got {type(kind).__name__}")
    if kind not in INITIALIZERS:
        raise ValueError(f"kind: expected one of {', '.join(INITIALIZERS)}, got {kind!r}")
    seed = seed_arg(seed)
    # -1: the kernel's "default gain"
    gain = -1.0 if gain is None else non_negative(gain, "gain")

    if out is not None:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out: expected a NumPy array, got {type(out).__name__}")
        if out.dtype not in FLOAT_DTYPES or not out.dtype.isnative:
            raise TypeError(f"out: expected float32 or float64, got {out.dtype}")
        if dtype is not None and np.dtype(dtype) != out.dtype:
            raise TypeError(f"dtype: {np.dtype(dtype)} does not match out's {out.dtype}")
        if shape is not None and _shape_arg(shape) != out.shape:
            raise ValueError(f"out: expected shape {_shape_arg(shape)}, got {out.shape}")
        if not out.flags.writeable:
            raise ValueError("out: array is read-only")
        shape = out.shape
    else:
        shape = _shape_arg(shape)
        try:
            dt = np.dtype(np.float32 if dtype is None else dtype)
        except TypeError:
            raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from None
        if dt not in FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float32 or float64, got {dt}")

    if kind in ("zeros", "ones"):
        fan_in = fan_out = 0
    elif len(shape) != 2:
        raise ValueError(f"shape: {kind} needs a 2-D weight shape (in_features, out_features) "
                         f"to define fan_in and fan_out, got {shape} (use zeros or ones for "
                         f"biases)")
    else:
        fan_in, fan_out = shape
    if out is None:
        out = np.empty(shape, dtype=dt)
        target = out
    else:
        # Draws follow the flat row-major index: a strided `out` gets the same values as a new
        # array would, through a contiguous (and aligned) scratch copy.
        target = (out if out.flags.c_contiguous and out.flags.aligned
                  else np.empty(shape, dtype=out.dtype))
    _C.init_weights(kind, target, fan_in, fan_out, int(seed), gain)
    if target is not out:
        out[...] = target
    return out


__all__ = ["init_weights", "INITIALIZERS"]
