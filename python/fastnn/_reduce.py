"""Row reductions and accuracy counts (re-exported by fastnn.ops). Sums are accumulated in
double and do not depend on the number of threads."""

import numbers

import numpy as np

from fastnn import _C
from fastnn import _gpu_ops as _gpu
from fastnn._checks import aligned, as_float_array, finite_real


def _matrix(x, name):
    x = as_float_array(x, name)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (N, F) array, got shape {x.shape}")
    return np.ascontiguousarray(x)


def _class_scores(scores, name):
    scores = _matrix(scores, name)
    if scores.shape[1] == 0 and scores.shape[0] > 0:
        raise ValueError(f"{name}: expected at least one class (column), got shape "
                         f"{scores.shape}")
    return scores


def _labels(labels, n, c):
    """Integer class indices (n,) as contiguous int64, checked against [0, c)."""
    if not isinstance(labels, np.ndarray):
        if hasattr(labels, "__array__") or isinstance(labels, (list, tuple)):
            labels = np.asarray(labels)
        else:
            raise TypeError(f"labels: expected a NumPy array, got {type(labels).__name__}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels: expected integer class indices, got {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), one label per row of scores, got "
                         f"{labels.shape}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= c):
        bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
        raise ValueError(f"labels: expected class indices in [0, {c}), got {bad}")
    return aligned(np.ascontiguousarray(labels, dtype=np.int64))


def sum_rows(x):
    """Column sums of x (N, F) -> (F,), x's dtype, accumulated in double; zeros when N == 0."""
    if _gpu.has_tensor(x):
        return _gpu.sum_rows(x, False)
    return _C.sum_rows(_matrix(x, "x"))


def mean_rows(x):
    """Column means of x (N, F) -> (F,), accumulated in double; N == 0 raises ValueError."""
    if _gpu.has_tensor(x):
        return _gpu.sum_rows(x, True)
    x = _matrix(x, "x")
    if x.shape[0] == 0:
        raise ValueError(f"x: expected at least one row to average, got shape {x.shape}")
    return _C.mean_rows(x)


def argmax_rows(x):
    """Index of each row's maximum, x (N, F) -> int64 (N,). Ties go to the first maximum. NaN
    counts as larger than any number, as in numpy.argmax: a row with NaN gives its first NaN."""
    if _gpu.has_tensor(x):
        return _gpu.argmax_rows(x)
    return _C.argmax_rows(_class_scores(x, "x"))


def count_correct(scores, labels):
    """Number of rows whose argmax (as argmax_rows) equals the label.

    scores: (N, C) logits or probabilities. labels: integer class indices (N,), or (N, C)
    one-hot / probability rows, compared through their own argmax."""
    if _gpu.has_tensor(scores, labels):
        return _gpu.count_correct(scores, labels)
    scores = _class_scores(scores, "scores")
    n, c = scores.shape
    if isinstance(labels, np.ndarray) and labels.ndim == 2 and labels.dtype.kind == "f":
        if labels.shape != scores.shape:
            raise ValueError(f"labels: one-hot labels must have scores' shape {scores.shape}, "
                             f"got {labels.shape}")
        labels = _C.argmax_rows(_matrix(labels, "labels"))
    return _C.top_k_correct(scores, _labels(labels, n, c), 1)


def top_k_correct(scores, labels, k):
    """Number of rows whose label is among the k highest scores. Ranking follows argmax_rows
    (NaN highest, ties to the lower index), so k == 1 equals count_correct; k >= C counts
    every row. labels: integer class indices (N,)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k: expected an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k: expected k >= 1, got {k}")
    scores = _class_scores(scores, "scores")
    n, c = scores.shape
    return _C.top_k_correct(scores, _labels(labels, n, c), min(int(k), max(c, 1)))


def binary_correct(logits, targets, threshold=0.0):
    """Number of elements where ``logits > threshold`` agrees with ``targets >= 0.5``.

    The threshold is on logits (0.0 is probability 0.5); pass threshold=0.5 to score
    probabilities. targets: 0/1 (bool, int or float) of logits' shape. A NaN logit predicts 0."""
    logits = np.ascontiguousarray(as_float_array(logits, "logits"))
    if not isinstance(targets, np.ndarray):
        if hasattr(targets, "__array__") or isinstance(targets, (list, tuple)):
            targets = np.asarray(targets)
        else:
            raise TypeError(f"targets: expected a NumPy array, got {type(targets).__name__}")
    if targets.dtype.kind not in "biuf":
        raise TypeError(f"targets: expected bool, integer or float targets, got {targets.dtype}")
    if targets.shape != logits.shape:
        raise ValueError(f"targets: expected shape {logits.shape} (logits'), got {targets.shape}")
    threshold = finite_real(threshold, "threshold")
    targets = aligned(np.ascontiguousarray(targets, dtype=logits.dtype))
    return _C.binary_correct(logits, targets, threshold)


__all__ = ["sum_rows", "mean_rows", "argmax_rows", "count_correct", "top_k_correct",
           "binary_correct"]
