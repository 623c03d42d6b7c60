"""Loss functions: each returns ``(loss, gradient)``, computed by one fused kernel pass.

The loss is a Python float (accumulated in double precision); the gradient has the dtype and
shape of the first argument. Results do not depend on the number of threads."""

import numbers

import numpy as np

from fastnn import _C
from fastnn import _gpu_ops as _gpu
from fastnn._checks import (aligned, as_float_array, class_weight_shape, label_smoothing_arg,
                            same_dtype, softmax_xent_dims, softmax_xent_label_kind)


def _contiguous(x):
    # The kernels walk flat memory; as_float_array only guarantees whole-element strides.
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def _index_labels(labels, n, c):
    """Integer class indices as a contiguous int64 array, checked against [0, c)."""
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"labels: expected class indices of shape ({n},) to match logits' "
                         f"{n} rows, got shape {labels.shape}")
    lo, hi = labels.min(), labels.max()
    # Compared in Python ints so that uint64 values above 2**63 are not wrapped by a cast.
    if int(lo) < 0 or int(hi) >= c:
        bad = int(lo) if int(lo) < 0 else int(hi)
        raise ValueError(f"labels: expected class indices in [0, {c}), got {bad}")
    return aligned(np.ascontiguousarray(labels, dtype=np.int64))


def softmax_cross_entropy(logits, labels, class_weight=None, label_smoothing=0.0):
    """Mean softmax cross-entropy of ``logits`` (N, C) and its gradient ``dlogits``.

    labels: integer class indices (N,), any integer dtype, or probability rows (N, C) of the
    logits' dtype. class_weight: (C,) or None; the mean is weighted as in
    ``torch.nn.functional.cross_entropy`` (sum_i w[y_i] l_i / sum_i w[y_i] for indices,
    a plain mean over rows for probabilities). label_smoothing in [0, 1] mixes each target
    with the uniform distribution, as torch does.

    Stable for any finite logits (each row is shifted by its maximum).
    """
    if _gpu.has_tensor(logits, labels, class_weight):
        return _gpu.softmax_cross_entropy(logits, labels, class_weight, label_smoothing)
    logits = as_float_array(logits, "logits", ndim=2)
    n, c = softmax_xent_dims(logits.shape)
    if not isinstance(labels, np.ndarray):
        if hasattr(labels, "__array__") or isinstance(labels, (list, tuple, numbers.Number)):
            labels = np.asarray(labels)
        else:
            raise TypeError(f"labels: expected a NumPy array, got {type(labels).__name__}")
    if softmax_xent_label_kind(labels.dtype, labels.shape, logits.dtype, logits.shape) == "index":
        labels = _index_labels(labels, n, c)
    else:
        labels = _contiguous(as_float_array(labels, "labels"))
    if class_weight is not None:
        class_weight = as_float_array(class_weight, "class_weight", ndim=1)
        same_dtype(logits=logits, class_weight=class_weight)
        class_weight_shape(class_weight.shape, logits.shape)
        if not np.all(np.isfinite(class_weight)):
            raise ValueError("class_weight: expected finite weights")
        class_weight = _contiguous(class_weight)
    label_smoothing = label_smoothing_arg(label_smoothing)
    return _C.softmax_cross_entropy(_contiguous(logits), labels, class_weight, label_smoothing)


def _pair(a, b, a_name, b_name):
    a = as_float_array(a, a_name)
    b = as_float_array(b, b_name)
    same_dtype(**{a_name: a, b_name: b})
    if a.shape != b.shape:
        raise ValueError(f"{b_name}: expected shape {a.shape} to match {a_name}, got {b.shape}")
    if a.size == 0:
        raise ValueError(f"{a_name}: expected at least one element, got shape {a.shape}")
    return _contiguous(a), _contiguous(b)


def binary_cross_entropy_with_logits(logits, targets):
    """Mean over all elements of ``max(x, 0) - x t + log1p(exp(-|x|))`` and its gradient
    ``(sigmoid(x) - t) / count``. logits and targets: one shape, one float dtype."""
    if _gpu.has_tensor(logits, targets):
        return _gpu.elem_loss("binary_cross_entropy_with_logits", logits, targets, "logits",
                              "targets")
    logits, targets = _pair(logits, targets, "logits", "targets")
    return _C.binary_cross_entropy_with_logits(logits, targets)


def mse(pred, target):
    """Mean squared error and its gradient ``2 (pred - target) / count``."""
    if _gpu.has_tensor(pred, target):
        return _gpu.elem_loss("mse", pred, target, "pred", "target")
    pred, target = _pair(pred, target, "pred", "target")
    return _C.mse(pred, target)


def mae(pred, target):
    """Mean absolute error and its gradient ``sign(pred - target) / count`` (0 where equal)."""
    if _gpu.has_tensor(pred, target):
        return _gpu.elem_loss("mae", pred, target, "pred", "target")
    pred, target = _pair(pred, target, "pred", "target")
    return _C.mae(pred, target)


__all__ = ["softmax_cross_entropy", "binary_cross_entropy_with_logits", "mse", "mae"]
