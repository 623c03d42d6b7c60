"""Data helpers: one-hot labels, seeded train/validation/test splits, mini-batch index streams and
the one-time validation of (X, y) that fit/evaluate/predict rely on.

Every random function takes a `seed` and builds its own np.random.default_rng(seed): the same seed
and data give the same split, whatever else the program does with NumPy's global state."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastnn._checks import flag, integer, seed_or_none

__all__ = ["one_hot", "train_test_split", "train_val_test_split", "batches", "validate_xy",
           "split_validation"]


def _int_labels(labels: ArrayLike, name: str) -> NDArray[Any]:
    """labels as an integer NumPy array (TypeError for floats, bools, strings...)."""
    arr = np.asarray(labels)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected integer class labels, got dtype {arr.dtype} "
                        f"(convert with .astype(int) if the values are whole numbers)")
    return arr


def one_hot(labels: ArrayLike, num_classes: int | None = None,
            dtype: DTypeLike = np.float32) -> NDArray[Any]:
    """Rows of zeros with a one at each label: shape labels.shape + (num_classes,).

    num_classes defaults to max(labels) + 1. Labels must be integers in [0, num_classes)."""
    arr = _int_labels(labels, "labels")
    if num_classes is None:
        if arr.size == 0:
            raise ValueError("labels: empty, so num_classes cannot be inferred; pass num_classes")
        num_classes = int(arr.max()) + 1
    num_classes = integer(num_classes, "num_classes", 1)
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0:
            raise ValueError(f"labels: expected values in [0, {num_classes}), got {lo} "
                             f"at index {int(np.argmin(arr))}")
        if hi >= num_classes:
            raise ValueError(f"labels: expected values in [0, {num_classes}), got {hi} "
                             f"at index {int(np.argmax(arr))}")
    out = np.zeros(arr.shape + (num_classes,), dtype=dtype)
    # Scatter along the last axis: one write per label instead of comparing against every class.
    np.put_along_axis(out, arr[..., None].astype(np.intp), 1, axis=-1)
    return out


def _check_rows(X: Any, name: str) -> Any:
    if not hasattr(X, "shape") or not hasattr(X, "__getitem__"):
        X = np.asarray(X)
    if len(X.shape) == 0:
        raise ValueError(f"{name}: expected an array with one sample per row, got a 0-d value")
    return X


def _check_xy_rows(X: Any, y: Any) -> tuple[Any, Any, int]:
    """(X, y, n): both indexable by row, y (if given) with X's n rows."""
    X = _check_rows(X, "X")
    n = len(X)
    if y is not None:
        y = _check_rows(y, "y")
        if len(y) != n:
            raise ValueError(f"y: expected {n} rows to match X, got {len(y)}")
    return X, y, n


def _part_size(size: float, n: int, name: str) -> int:
    """sklearn's rule: a float in (0, 1) is a fraction of n (rounded up for the held-out part),
    an int is a count."""
    if isinstance(size, bool) or not isinstance(size, numbers.Real):
        raise TypeError(f"{name}: expected a fraction (float) or a count (int), "
                        f"got {type(size).__name__}")
    if isinstance(size, numbers.Integral):
        if not 0 <= size <= n:
            raise ValueError(f"{name}: expected a count in [0, {n}] (the number of samples), "
                             f"got {size}")
        return int(size)
    size = float(size)
    if not 0.0 < size < 1.0:
        raise ValueError(f"{name}: expected a fraction in (0, 1) or an int count, got {size}")
    return int(math.ceil(size * n))


def _group_ids(y: ArrayLike) -> NDArray[Any]:
    """Class index of every row of y: 1-D labels, or one-hot / label rows (unique rows)."""
    y = np.asarray(y)
    if y.dtype.kind in "fc" and np.isnan(y).any():
        # np.unique would make NaN a class of its own (or one class per NaN).
        row = int(np.argwhere(np.isnan(y))[0][0])
        raise ValueError(f"y: a NaN label (first at row {row}) is not a class; drop or impute "
                         f"those rows first")
    if y.ndim == 1:
        _, inv = np.unique(y, return_inverse=True)
    else:
        _, inv = np.unique(y.reshape(len(y), -1), axis=0, return_inverse=True)
    return inv.reshape(-1)


def _allocate(counts: NDArray[Any], total: int) -> NDArray[Any]:
    """Split `total` across classes in proportion to `counts` (largest remainders get the extra
    ones), never giving a class more than it has; sums exactly to total."""
    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if n == 0:
        return np.zeros_like(counts)
    exact = counts * total / n
    alloc = np.floor(exact).astype(np.int64)
    short = total - int(alloc.sum())
    # Stable sort: ties go to the lower class index, so the result is deterministic.
    order = np.argsort(-(exact - alloc), kind="stable")
    alloc[order[:short]] += 1
    return alloc


def _partition(n: int, sizes: Sequence[int], groups: NDArray[Any] | None, shuffle: bool,
               rng: np.random.Generator) -> list[NDArray[Any]]:
    """Index arrays of len(sizes) + 1 parts: sizes[i] samples in part i + 1, the rest in part 0.
    Every index lands in exactly one part."""
    if groups is None:
        order = rng.permutation(n) if shuffle else np.arange(n)
        parts, end = [], n
        # Held-out parts are taken from the end, like sklearn's unshuffled split.
        for s in sizes:
            parts.append(order[end - s:end])
            end -= s
        return [order[:end]] + parts
    # Stratified: fix how many rows of each class every part gets, then deal shuffled rows.
    n_groups = int(groups.max()) + 1 if n else 0
    remaining = np.bincount(groups, minlength=n_groups)
    per_part = []
    for s in sizes:
        alloc = _allocate(remaining, s)
        per_part.append(alloc)
        remaining = remaining - alloc
    parts = [[] for _ in range(len(sizes) + 1)]
    for g in range(n_groups):
        rows = rng.permutation(np.flatnonzero(groups == g))
        start = 0
        for i, alloc in enumerate(per_part):
            parts[i + 1].append(rows[start:start + alloc[g]])
            start += alloc[g]
        parts[0].append(rows[start:])
    # Shuffle within each part so classes are interleaved, not in blocks.
    return [rng.permutation(np.concatenate(p)) if p else np.arange(0) for p in parts]


def _split(X: Any, y: Any, sizes_named: Sequence[tuple[str, float]], seed: int | None,
           stratify: bool, shuffle: bool) -> list[Any]:
    X, y, n = _check_xy_rows(X, y)
    sizes = [_part_size(s, n, name) for name, s in sizes_named]
    if sum(sizes) >= n and n > 0:
        named = ", ".join(f"{name}={s!r}" for name, s in sizes_named)
        raise ValueError(f"{named}: leave no training samples out of {n}")
    groups = None
    stratify, shuffle = flag(stratify, "stratify"), flag(shuffle, "shuffle")
    if stratify:
        if y is None:
            raise ValueError("stratify: needs class labels y, got y=None")
        if not shuffle:
            raise ValueError("stratify: a stratified split needs shuffle=True")
        groups = _group_ids(y)
    rng = np.random.default_rng(seed_or_none(seed))
    parts = _partition(n, sizes, groups, shuffle, rng)
    out = [X[p] for p in parts]
    if y is not None:
        out += [y[p] for p in parts]
    return out


def train_test_split(X: Any, y: Any = None, test_size: float = 0.25, seed: int | None = 0,
                     stratify: bool = False, shuffle: bool = True) -> tuple[Any, ...]:
    """(X_train, X_test) or, with y, (X_train, X_test, y_train, y_test), like sklearn.

    test_size is a fraction of the samples (rounded up) or a count. stratify=True keeps every
    class's share of y in both parts (y may be labels or one-hot rows). shuffle=False takes the
    test part from the end, in order. Every sample lands in exactly one part."""
    X_tr, X_te, *ys = _split(X, y, [("test_size", test_size)], seed, stratify, shuffle)
    return (X_tr, X_te, *ys)


def train_val_test_split(X: Any, y: Any = None, val_size: float = 0.1, test_size: float = 0.1,
                         seed: int | None = 0, stratify: bool = False,
                         shuffle: bool = True) -> tuple[Any, ...]:
    """(X_train, X_val, X_test) or, with y, (X_train, X_val, X_test, y_train, y_val, y_test).

    val_size and test_size are each a fraction of ALL samples (rounded up) or a count; the rest is
    training data. Stratification and shuffling as in train_test_split."""
    X_tr, X_te, X_va, *ys = _split(X, y, [("test_size", test_size), ("val_size", val_size)],
                                   seed, stratify, shuffle)
    if ys:
        y_tr, y_te, y_va = ys
        return X_tr, X_va, X_te, y_tr, y_va, y_te
    return X_tr, X_va, X_te


def batches(n: int, batch_size: int | None = 32, shuffle: bool = True,
            seed: int | None = 0) -> Iterator[NDArray[np.int64]]:
    """Yield index arrays covering range(n) in batches of batch_size (the last one may be smaller).

    batch_size=None gives one batch of all n. shuffle draws one permutation from seed."""
    n = integer(n, "n", 0)
    if batch_size is None:
        batch_size = max(n, 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"batch_size: expected an int or None, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    shuffle = flag(shuffle, "shuffle")
    order = np.random.default_rng(seed_or_none(seed)).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, int(batch_size)):
        yield order[start:start + batch_size]


def _first_bad_row(a: NDArray[Any]) -> int:
    bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
    return int(np.flatnonzero(bad)[0])


def validate_xy(X: ArrayLike, y: ArrayLike | None = None,
                dtype: DTypeLike = np.float32) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """Check and convert (X, y) once, before training or inference: returns (X, y).

    X becomes a C-contiguous 2-D array of dtype (float32 unless asked), copied only if needed.
    Raises TypeError for non-numeric data, ValueError for an empty X, a shape that is not
    (samples, features), NaN or infinity, and len(y) != len(X). y keeps its dtype (integer labels
    stay integers) and is checked for NaN/infinity when it is floating point."""
    if isinstance(X, (str, bytes)):
        raise TypeError(f"X: expected a numeric array, got {type(X).__name__}")
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"X: expected a numeric array, got {type(X).__name__} ({exc})") from None
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"X: expected numeric data, got dtype {arr.dtype}")
    if arr.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if arr.ndim == 1 else ""
        raise ValueError(f"X: expected a 2-D array (samples, features), got shape "
                         f"{arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"X: expected at least one sample, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    # One float64 sum finds NaN/inf without a full boolean mask in the common, clean case; a float32
    # sum could overflow to inf on finite data, so the row search runs only when needed.
    with np.errstate(over="ignore", invalid="ignore"):
        total = arr.sum(dtype=np.float64)
    if not np.isfinite(total):
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise ValueError(f"X: contains NaN or infinity at row {int(np.flatnonzero(bad)[0])}")
    if y is None:
        return arr, None
    if isinstance(y, (str, bytes)):
        raise TypeError(f"y: expected a numeric array, got {type(y).__name__}")
    y_arr = np.asarray(y)
    if y_arr.dtype == bool:
        y_arr = y_arr.astype(np.int64)
    if not (np.issubdtype(y_arr.dtype, np.integer) or np.issubdtype(y_arr.dtype, np.floating)):
        raise TypeError(f"y: expected numeric labels or targets, got dtype {y_arr.dtype}")
    if y_arr.ndim == 0:
        raise ValueError("y: expected one label or target per row of X, got a 0-d value")
    if len(y_arr) != len(arr):
        raise ValueError(f"y: expected {len(arr)} rows to match X, got {len(y_arr)}")
    if np.issubdtype(y_arr.dtype, np.floating) and not np.isfinite(y_arr).all():
        raise ValueError(f"y: contains NaN or infinity at row {_first_bad_row(y_arr)}")
    return arr, y_arr


def split_validation(X: Any, y: Any = None,
                     fraction: float = 0.1) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """Keras's `validation_split` rule: ((X_train, y_train), (X_val, y_val)) where the validation
    part is the LAST `fraction` of the rows, taken in order BEFORE any shuffling.

    This is exactly what `fit(..., validation_split=fraction)` uses: training rows are the first
    int(n * (1 - fraction)); only those are shuffled each epoch. Data sorted by class therefore
    gives a validation set of the last classes only (fit then warns):
    shuffle it once first, or split with train_test_split(stratify=True). The parts are views of
    X and y, not copies."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise TypeError(f"fraction: expected a float in (0, 1), got {type(fraction).__name__}")
    fraction = float(fraction)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction: expected a float in (0, 1), got {fraction}")
    X, y, n = _check_xy_rows(X, y)
    split_at = int(n * (1.0 - fraction))
    if split_at == 0 or split_at == n:
        which = "training" if split_at == 0 else "validation"
        raise ValueError(f"fraction: {fraction} of {n} samples leaves no {which} samples")
    y_tr = None if y is None else y[:split_at]
    y_va = None if y is None else y[split_at:]
    return (X[:split_at], y_tr), (X[split_at:], y_va)


def _class_set(y: Any) -> set[Any] | None:
    """The classes in y (class indices, or one binary target column), or None when y holds
    other values (regression targets, soft or multi-label targets)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        return None
    values = np.unique(y)
    if np.issubdtype(values.dtype, np.floating) and not np.isin(values, (0.0, 1.0)).all():
        return None
    return {int(v) for v in values}


def _warn_if_split_loses_classes(y_train: Any, y_val: Any, fraction: float,
                                 stacklevel: int = 3) -> None:
    """UserWarning when the last-fraction validation part (split_validation) has classes that
    the training part lacks, or lacks classes that it has: rows sorted by class give such a split,
    and the validation figures then measure something else than the model's accuracy."""
    train, val = _class_set(y_train), _class_set(y_val)
    if train is None or val is None or train == val:
        return
    problems = []
    if val - train:
        problems.append(f"holds classes {sorted(val - train)} that the training part lacks")
    if train - val:
        problems.append(f"lacks classes {sorted(train - val)} that the training part has")
    warnings.warn(
        f"validation_split={fraction}: the validation part (the last {len(y_val)} rows, taken "
        f"before shuffling, as Keras does) {' and '.join(problems)}; are the rows sorted by "
        f"class? Pass validation_data=(X_val, y_val) instead, e.g. from "
        f"fastnn.data.train_test_split(X, y, test_size={fraction}, stratify=True), or shuffle "
        f"the rows first", UserWarning, stacklevel=stacklevel)
