"""Data checks and conversions for the model layer: done once per fit/evaluate/predict call,
so the engine can take the arrays as they are."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from fastnn._checks import aligned, real_array


def as_features(X: Any, input_dim: int, name: str = "X", check_finite: bool = True,
                dtype: DTypeLike = np.float32) -> NDArray[Any]:
    """X as a C-contiguous (n, input_dim) array of the model's dtype (float32 unless the model
    is a float64 one), checked for NaN and infinity (unless the caller leaves that to the
    engine: check_finite=False)."""
    if (type(X) is np.ndarray and X.dtype == dtype and X.ndim == 2
            and X.shape[1] == input_dim and X.flags.c_contiguous and X.flags.aligned):
        # The common case, answered with the cheapest tests (batch-1 inference is ~microseconds).
        if check_finite and not np.isfinite(X).all():
            _raise_nonfinite(X, name)
        return X
    if hasattr(X, "__dlpack__") and not isinstance(X, np.ndarray) and hasattr(X, "numpy"):
        X = X.numpy()
    X = np.asarray(X)
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise TypeError(f"{name}: expected a numeric array, got dtype {X.dtype}")
    if np.iscomplexobj(X):
        raise TypeError(f"{name}: complex values are not supported")
    if X.ndim == 1 and input_dim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (samples, features), got shape {X.shape}")
    if X.shape[1] != input_dim:
        raise ValueError(f"{name}: expected {input_dim} features per sample, got {X.shape[1]} "
                         f"(shape {X.shape})")
    X = aligned(np.ascontiguousarray(X, dtype=dtype))
    if check_finite and not np.isfinite(X).all():
        _raise_nonfinite(X, name)
    return X


def _raise_nonfinite(X: NDArray[Any], name: str) -> None:
    bad = np.argwhere(~np.isfinite(X))[0]
    raise ValueError(f"{name}: contains NaN or infinity (first at row {bad[0]}, column "
                     f"{bad[1]}); clean or impute the data first")


def _class_indices(y: Any, n_classes: int, name: str) -> NDArray[Any]:
    """Integer class labels (any integer dtype, integral floats, or one-hot rows)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == n_classes and n_classes > 1:
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise ValueError(f"{name}: 2-D labels must be one-hot rows (one 1 per row); soft "
                             f"labels are available through fastnn.ops.softmax_cross_entropy")
        return np.ascontiguousarray(np.argmax(y, axis=1).astype(np.int64))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name}: expected class indices of shape (n,) or one-hot rows of shape "
                         f"(n, {n_classes}), got shape {y.shape}")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all():
            raise ValueError(f"{name}: a NaN or infinite label is not a class; drop or impute "
                             f"those rows first")
        if (y != np.round(y)).any():
            raise ValueError(f"{name}: class labels must be whole numbers")
    elif not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name}: expected integer class labels, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = y[(y < 0) | (y >= n_classes)][0]
        raise ValueError(f"{name}: labels must be in [0, {n_classes}) for a model with "
                         f"{n_classes} outputs, got {bad}")
    return np.ascontiguousarray(y.astype(np.int64))


def as_targets(y: Any, n: int, loss: str, n_outputs: int, name: str = "y",
               dtype: DTypeLike = np.float32) -> tuple[NDArray[Any] | None, NDArray[Any] | None]:
    """(labels, targets) for the engine: int64 class indices for the softmax cross-entropy,
    (n, outputs) targets of the model's dtype for the other losses; the other one is None."""
    if y is None:
        raise ValueError(f"{name}: targets are required")
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != n:
        raise ValueError(f"{name}: expected {n} targets (one per sample of X), got "
                         f"{len(y) if y.ndim else 'a scalar'}")
    if loss in ("softmax_cross_entropy", "sampled_softmax"):
        return _class_indices(y, n_outputs, name), None
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise TypeError(f"{name}: expected numeric targets, got dtype {y.dtype}")
    real_array(y, name)
    if y.ndim == 1:
        y = y[:, None]
    if y.shape != (n, n_outputs):
        raise ValueError(f"{name}: expected shape ({n}, {n_outputs}) (or ({n},) for one output), "
                         f"got {y.shape}")
    t = aligned(np.ascontiguousarray(y, dtype=dtype))
    if not np.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    if loss == "binary_cross_entropy" and ((t < 0).any() or (t > 1).any()):
        raise ValueError(f"{name}: binary cross-entropy targets must lie in [0, 1]")
    return None, t
