"""Argument checks shared by fastnn.ops: every message names the argument, what was expected and
what was given."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_array(x: Any, name: str, ndim: int | None = None) -> NDArray[Any]:
    """x as a float32/float64 NumPy array the kernels can read (native byte order, strides in
    whole elements), without copying when it already is one."""
    if type(x) is np.ndarray and x.dtype.char in "fd" and x.dtype.isnative:
        # The common case, checked with the cheapest tests first (this runs on every op call).
        if ndim is not None and x.ndim != ndim:
            raise ValueError(f"{name}: expected a {ndim}-D array, got shape {x.shape}")
        if x.flags.aligned and (x.flags.c_contiguous
                                or not any(s % x.itemsize for s in x.strides)):
            return x
        return np.array(x, order="C")
    if not isinstance(x, np.ndarray):
        if hasattr(x, "__array__") or isinstance(x, (list, tuple, numbers.Number)):
            x = np.asarray(x)
        else:
            raise TypeError(f"{name}: expected a NumPy array, got {type(x).__name__}")
    if x.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {x.dtype} "
                        f"(convert with .astype(np.float32))")
    if not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {x.shape}")
    if any(s % x.itemsize for s in x.strides):
        x = np.ascontiguousarray(x)
    return aligned(x)


def aligned(x: NDArray[Any]) -> NDArray[Any]:
    """x, or a C-contiguous copy when its address is not a multiple of its item size (a view of
    a byte buffer at an odd offset, np.frombuffer with an offset): C++ may only read an element
    at an address aligned for its type; anything else is undefined behaviour."""
    return x if x.flags.aligned else np.array(x, order="C")


def require_aligned(x: NDArray[Any], name: str) -> NDArray[Any]:
    """For an array the kernel updates in place, which an aligned copy cannot stand in for."""
    if not x.flags.aligned:
        raise ValueError(f"{name}: expected an aligned array (it is updated in place), got one "
                         f"at an address that is not a multiple of its item size "
                         f"{x.itemsize}; pass np.array(..., copy=True) of it")
    return x


def same_dtype(**arrays: Any) -> None:
    """Raise TypeError unless every given array has the same dtype."""
    named = [(n, a) for n, a in arrays.items() if a is not None]
    first_name, first = named[0]
    for n, a in named[1:]:
        if a.dtype != first.dtype:
            raise TypeError(f"{n}: dtype {a.dtype} does not match {first_name}'s {first.dtype}; "
                            f"all arrays must share one dtype")


def finite_real(value: Any, name: str) -> float:
    """value as a float, raising unless it is a finite real number."""
    if type(value) is float and math.isfinite(value):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return value


def in_interval(value: Any, name: str, low: float, high: float, closed: str = "both",
                what: str = "a number") -> float:
    """value as a finite float between low and high; closed: "both" ends, or "left" only (high
    excluded), as scikit-learn's Interval says it."""
    value = finite_real(value, name)
    if not (low <= value <= high and (closed == "both" or value < high)):
        right = "]" if closed == "both" else ")"
        raise ValueError(f"{name}: expected {what} in [{low}, {high}{right}, got {value}")
    return value


def integer(value: Any, name: str, minimum: int | None = None) -> int:
    """value as an int (bools refused: True is not a count), >= minimum when one is given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def non_negative(value: Any, name: str, what: str = "a number") -> float:
    """value as a finite float >= 0."""
    value = finite_real(value, name)
    if value < 0:
        raise ValueError(f"{name}: expected {what} >= 0, got {value}")
    return value


def flag(value: Any, name: str) -> bool:
    """value as a bool: True or False (NumPy's included) only, since bool("no") is True and
    a 0/1 is as likely another argument passed in the wrong place."""
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")


def seed_or_none(value: Any, name: str = "seed") -> int | None:
    """A seed for np.random.default_rng: an int >= 0, or None for fresh randomness."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int or None, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name}: expected an int >= 0, got {value}")
    return int(value)


def verbosity(value: Any, name: str = "verbose") -> int:
    """0 (silent), 1 or 2; True and False stand for 1 and 0, the everyday spelling."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected 0, 1 or 2, got {type(value).__name__}")
    if value not in (0, 1, 2):
        raise ValueError(f"{name}: expected 0 (silent), 1 (progress bar) or 2 (a line per "
                         f"epoch), got {value!r}")
    return int(value)


def real_array(a: NDArray[Any], name: str) -> NDArray[Any]:
    """TypeError for complex values, which a conversion to float would silently drop the
    imaginary part of."""
    if np.iscomplexobj(a):
        raise TypeError(f"{name}: complex values are not supported, got dtype {a.dtype}")
    return a


# Shape rules of the dense kernels, checked once by fastnn.ops for either device:
# they take shapes, so NumPy arrays and fastnn.Tensor get the same checks and messages.
def matmul_dims(a_shape: tuple[int, ...], b_shape: tuple[int, ...], trans_a: bool,
                trans_b: bool) -> tuple[int, int, int]:
    """(m, k, n) of op(a) @ op(b); ValueError when the inner dimensions differ."""
    m, k = (a_shape[1], a_shape[0]) if trans_a else a_shape
    kb, n = (b_shape[1], b_shape[0]) if trans_b else b_shape
    if k != kb:
        raise ValueError(f"matmul: inner dimensions differ: op(a) is {(m, k)}, op(b) is {(kb, n)} "
                         f"(a.shape={a_shape}, trans_a={trans_a}, b.shape={b_shape}, "
                         f"trans_b={trans_b})")
    return m, k, n


def linear_dims(x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                b_shape: tuple[int, ...] | None = None) -> None:
    """Checks x (n, in), w (in, out), b (out,) of a dense layer."""
    if x_shape[1] != w_shape[0]:
        raise ValueError(f"linear: x has {x_shape[1]} features (x.shape={x_shape}) but w expects "
                         f"{w_shape[0]} (w.shape={w_shape})")
    if b_shape is not None and b_shape[0] != w_shape[1]:
        raise ValueError(f"b: expected shape ({w_shape[1]},) to match w.shape={w_shape}, "
                         f"got {b_shape}")


def linear_grad_dims(dy_shape: tuple[int, ...], x_shape: tuple[int, ...],
                     w_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(n, k, m) of a dense layer's backward: x (n, k), w (k, m), dy (n, m)."""
    n, k = x_shape
    if w_shape[0] != k:
        raise ValueError(f"linear_grad: x has {k} features (x.shape={x_shape}) but w expects "
                         f"{w_shape[0]} (w.shape={w_shape})")
    m = w_shape[1]
    if tuple(dy_shape) != (n, m):
        raise ValueError(f"dy: expected shape {(n, m)} (x.shape={x_shape}, w.shape={w_shape}), "
                         f"got {dy_shape}")
    return n, k, m


def sampled_softmax_dims(h_shape: tuple[int, ...], W_shape: tuple[int, ...],
                         b_shape: tuple[int, ...] | None = None) -> tuple[int, int, int]:
    """(n, d, c) of a sampled softmax: h (n, d) with n > 0, W (d, c) with c > 0, b (c,)."""
    n, d = h_shape
    if n == 0:
        raise ValueError(f"h: expected at least one row, got shape {h_shape}")
    if W_shape[0] != d:
        raise ValueError(f"W: expected {d} rows to match h's {d} features (h.shape={h_shape}), "
                         f"got W.shape={W_shape}")
    c = W_shape[1]
    if c == 0:
        raise ValueError(f"W: expected at least one class (column), got shape {W_shape}")
    if b_shape is not None and b_shape != (c,):
        raise ValueError(f"b: expected shape ({c},) to match W.shape={W_shape}, got {b_shape}")
    return n, d, c


def softmax_xent_dims(logits_shape: tuple[int, ...]) -> tuple[int, int]:
    """(n, c) of softmax cross-entropy logits (n, c), both positive."""
    n, c = logits_shape
    if n == 0:
        raise ValueError(f"logits: expected at least one row, got shape {logits_shape}")
    if c == 0:
        raise ValueError(f"logits: expected at least one class, got shape {logits_shape}")
    return n, c


def softmax_xent_label_kind(labels_dtype: np.dtype[Any], labels_shape: tuple[int, ...],
                            logits_dtype: np.dtype[Any], logits_shape: tuple[int, ...]) -> str:
    """"index" for integer class indices (their shape and range are the caller's to check),
    "probs" for probability rows of the logits' dtype and shape; TypeError/ValueError otherwise."""
    if labels_dtype.kind in "iu":
        return "index"
    if labels_dtype.kind == "f" and len(labels_shape) == 1:
        raise TypeError(f"labels: class indices must have an integer dtype, got {labels_dtype} "
                        f"(probability labels have logits' shape {logits_shape})")
    if labels_dtype.kind == "f":
        if labels_dtype != logits_dtype:
            raise TypeError(f"labels: probability labels must have logits' dtype {logits_dtype}, "
                            f"got {labels_dtype}")
        if tuple(labels_shape) != tuple(logits_shape):
            raise ValueError(f"labels: probability labels must have logits' shape "
                             f"{logits_shape}, got {labels_shape}")
        return "probs"
    raise TypeError(f"labels: expected integer class indices or {logits_dtype} "
                    f"probabilities, got {labels_dtype}")


def class_weight_shape(weight_shape: tuple[int, ...], logits_shape: tuple[int, ...]) -> None:
    """One weight per class (column) of the logits."""
    c = logits_shape[1]
    if tuple(weight_shape) != (c,):
        raise ValueError(f"class_weight: expected shape ({c},), one weight per class of "
                         f"logits {logits_shape}, got {weight_shape}")


def label_smoothing_arg(value: Any) -> float:
    """A float in [0, 1]."""
    return in_interval(value, "label_smoothing", 0, 1)


def finite_as(a: NDArray[Any], dtype: DTypeLike, what: str) -> NDArray[Any]:
    """a (a NumPy array) as `dtype` (the model's: float32, float64), refused (ValueError) unless
    every value is finite once stored: the check runs after the cast, so 1e300 in a float64 array
    is caught as the inf it would become in float32. Non-real dtypes (complex, strings, objects)
    raise TypeError."""
    dtype = np.dtype(dtype)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{what}: expected real numbers, got dtype {a.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        stored = a.astype(dtype)
    if not np.isfinite(stored).all():
        big = np.isfinite(a).all() if a.dtype.kind == "f" else True
        limit = f"{float(np.finfo(dtype).max):.2g}".replace("+", "")
        raise ValueError(f"{what}: " + (f"has values beyond {dtype.name}'s range (about {limit})"
                                        if big else "contains NaN or infinity"))
    return stored
