"""Row reductions and accuracy counts. Sums are accumulated in double and do not depend on the
number of threads."""

from __future__ import annotations

import numbers

import numpy as np

from fastnn._checks import finite_real
from fastnn._typing import Array, ArrayIn
from fastnn.ops._dispatch import backend, contiguous, convert, float_array, is_array, matrix
from fastnn.ops.losses import as_labels, class_indices


def _class_scores(scores: ArrayIn, name: str) -> Array:
    scores = matrix(scores, name)
    if scores.shape[1] == 0 and scores.shape[0] > 0:
        raise ValueError(f"{name}: expected at least one class (column), got shape "
                         f"{scores.shape}")
    return scores


def sum_rows(x: ArrayIn) -> Array:
    """Column sums of x (N, F) -> (F,), x's dtype, accumulated in double; zeros when N == 0."""
    be, x = backend(x=x)
    return be.sum_rows(matrix(x, "x"))


def mean_rows(x: ArrayIn) -> Array:
    """Column means of x (N, F) -> (F,), accumulated in double; N == 0 raises ValueError."""
    be, x = backend(x=x)
    x = matrix(x, "x")
    if x.shape[0] == 0:
        raise ValueError(f"x: expected at least one row to average, got shape {x.shape}")
    return be.mean_rows(x)


def argmax_rows(x: ArrayIn) -> Array:
    """Index of each row's maximum, x (N, F) -> int64 (N,). Ties go to the first maximum. NaN
    counts as larger than any number, as in numpy.argmax: a row with NaN gives its first NaN."""
    be, x = backend(x=x)
    return be.argmax_rows(_class_scores(x, "x"))


def count_correct(scores: ArrayIn, labels: ArrayIn) -> int:
    """Number of rows whose argmax (as argmax_rows) equals the label.

    scores: (N, C) logits or probabilities. labels: integer class indices (N,), or (N, C)
    one-hot / probability rows, compared through their own argmax."""
    be, scores, labels = backend(scores=scores, labels=labels)
    scores = _class_scores(scores, "scores")
    n, c = scores.shape
    labels = as_labels(labels)
    if labels.ndim == 2 and labels.dtype.kind == "f":
        if labels.shape != scores.shape:
            raise ValueError(f"labels: one-hot labels must have scores' shape {scores.shape}, "
                             f"got {labels.shape}")
        labels = be.argmax_rows(matrix(labels, "labels"))
    return int(be.top_k_correct(scores, class_indices(labels, n, c), 1))


def top_k_correct(scores: ArrayIn, labels: ArrayIn, k: int) -> int:
    """Number of rows whose label is among the k highest scores. Ranking follows argmax_rows
    (NaN highest, ties to the lower index), so k == 1 equals count_correct; k >= C counts
    every row. labels: integer class indices (N,)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k: expected an int, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k: expected k >= 1, got {k}")
    be, scores, labels = backend(scores=scores, labels=labels)
    scores = _class_scores(scores, "scores")
    n, c = scores.shape
    labels = class_indices(as_labels(labels), n, c)
    return int(be.top_k_correct(scores, labels, min(int(k), max(c, 1))))


def binary_correct(logits: ArrayIn, targets: ArrayIn, threshold: float = 0.0) -> int:
    """Number of elements where ``logits > threshold`` agrees with ``targets >= 0.5``.

    The threshold is on logits (0.0 is probability 0.5); pass threshold=0.5 to score
    probabilities. targets: 0/1 (bool, int or float) of logits' shape. A NaN logit predicts 0."""
    be, logits, targets = backend(logits=logits, targets=targets)
    logits = contiguous(float_array(logits, "logits"))
    if not is_array(targets):
        if hasattr(targets, "__array__") or isinstance(targets, (list, tuple)):
            targets = np.asarray(targets)
        else:
            raise TypeError(f"targets: expected a NumPy array, got {type(targets).__name__}")
    if targets.dtype.kind not in "biuf":
        raise TypeError(f"targets: expected bool, integer or float targets, got {targets.dtype}")
    if targets.shape != logits.shape:
        raise ValueError(f"targets: expected shape {logits.shape} (logits'), got {targets.shape}")
    threshold = finite_real(threshold, "threshold")
    return int(be.binary_correct(logits, convert(targets, logits.dtype), threshold))


__all__ = ["sum_rows", "mean_rows", "argmax_rows", "count_correct", "top_k_correct",
           "binary_correct"]
