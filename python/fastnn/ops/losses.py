"""Loss functions: each returns ``(loss, gradient)``, computed by one fused kernel pass.

The loss is a Python float (accumulated in double precision; on the GPU it waits for the
kernel); the gradient has the dtype and shape of the first argument, on its device. Results do
not depend on the number of threads."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from fastnn._checks import (class_weight_shape, label_smoothing_arg, same_dtype,
                            softmax_xent_dims, softmax_xent_label_kind)
from fastnn._typing import Array, ArrayIn
from fastnn.ops._dispatch import (backend, contiguous, convert, float_array, host, is_array,
                                  matrix)


def as_labels(labels: Any) -> Array:
    """labels as an array (NumPy or a CUDA tensor); array-likes are converted, anything else is a
    TypeError."""
    if is_array(labels):
        return labels
    if hasattr(labels, "__array__") or isinstance(labels, (list, tuple, numbers.Number)):
        return np.asarray(labels)
    raise TypeError(f"labels: expected a NumPy array, got {type(labels).__name__}")


def class_indices(labels: Array, n: int, c: int, rows_of: str = "scores", note: str = "") -> Array:
    """Integer class indices (n,) as a contiguous int64 array on their device, checked against
    [0, c) on the host; note adds to the range error."""
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels: expected integer class indices, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},), one class index per row of "
                         f"{rows_of}, got {labels.shape}")
    if n:
        values = host(labels)
        # Compared in Python ints so that uint64 values above 2**63 are not wrapped by a cast.
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi >= c:
            raise ValueError(f"labels: expected class indices in [0, {c}){note}, got "
                             f"{lo if lo < 0 else hi}")
    return convert(labels, np.int64)


def softmax_cross_entropy(logits: ArrayIn, labels: ArrayIn, class_weight: ArrayIn | None = None,
                          label_smoothing: float = 0.0) -> tuple[float, Array]:
    """Mean softmax cross-entropy of ``logits`` (N, C) and its gradient ``dlogits``.

    labels: integer class indices (N,), any integer dtype, or probability rows (N, C) of the
    logits' dtype. class_weight: (C,) or None; the mean is weighted as in
    ``torch.nn.functional.cross_entropy`` (sum_i w[y_i] l_i / sum_i w[y_i] for indices,
    a plain mean over rows for probabilities). label_smoothing in [0, 1] mixes each target
    with the uniform distribution, as torch does.

    Stable for any finite logits (each row is shifted by its maximum).
    """
    be, logits, labels, class_weight = backend(logits=logits, labels=labels,
                                               class_weight=class_weight)
    logits = matrix(logits, "logits")
    n, c = softmax_xent_dims(logits.shape)
    labels = as_labels(labels)
    if softmax_xent_label_kind(labels.dtype, labels.shape, logits.dtype, logits.shape) == "index":
        if labels.ndim != 1 or labels.shape[0] != n:
            raise ValueError(f"labels: expected class indices of shape ({n},) to match logits' "
                             f"{n} rows, got shape {labels.shape}")
        labels = class_indices(labels, n, c, "logits")
    else:
        labels = contiguous(float_array(labels, "labels"))
    if class_weight is not None:
        class_weight = contiguous(float_array(class_weight, "class_weight", ndim=1))
        same_dtype(logits=logits, class_weight=class_weight)
        class_weight_shape(class_weight.shape, logits.shape)
        if not np.all(np.isfinite(host(class_weight))):
            raise ValueError("class_weight: expected finite weights")
    label_smoothing = label_smoothing_arg(label_smoothing)
    loss, grad = be.softmax_cross_entropy(logits, labels, class_weight, label_smoothing)
    return float(loss), grad


def _pair(be: Any, kernel: str, a: ArrayIn, b: ArrayIn, a_name: str,
          b_name: str) -> tuple[float, Array]:
    a = contiguous(float_array(a, a_name))
    b = contiguous(float_array(b, b_name))
    same_dtype(**{a_name: a, b_name: b})
    if a.shape != b.shape:
        raise ValueError(f"{b_name}: expected shape {a.shape} to match {a_name}, got {b.shape}")
    if a.size == 0:
        raise ValueError(f"{a_name}: expected at least one element, got shape {a.shape}")
    loss, grad = getattr(be, kernel)(a, b)
    return float(loss), grad


def binary_cross_entropy_with_logits(logits: ArrayIn, targets: ArrayIn) -> tuple[float, Array]:
    """Mean over all elements of ``max(x, 0) - x t + log1p(exp(-|x|))`` and its gradient
    ``(sigmoid(x) - t) / count``. logits and targets: one shape, one float dtype."""
    be, logits, targets = backend(logits=logits, targets=targets)
    return _pair(be, "binary_cross_entropy_with_logits", logits, targets, "logits", "targets")


def mse(pred: ArrayIn, target: ArrayIn) -> tuple[float, Array]:
    """Mean squared error and its gradient ``2 (pred - target) / count``."""
    be, pred, target = backend(pred=pred, target=target)
    return _pair(be, "mse", pred, target, "pred", "target")


def mae(pred: ArrayIn, target: ArrayIn) -> tuple[float, Array]:
    """Mean absolute error and its gradient ``sign(pred - target) / count`` (0 where equal)."""
    be, pred, target = backend(pred=pred, target=target)
    return _pair(be, "mae", pred, target, "pred", "target")


__all__ = ["softmax_cross_entropy", "binary_cross_entropy_with_logits", "mse", "mae"]
