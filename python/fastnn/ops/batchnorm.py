"""Batch normalization over the rows of (N, F) inputs, as torch.nn.BatchNorm1d computes it."""

from __future__ import annotations

from typing import Any

from fastnn._checks import flag, in_interval, non_negative
from fastnn._typing import Array, ArrayIn
from fastnn.ops._dispatch import (backend, contiguous, float_array, is_array, is_contiguous, kind,
                                  matrix, require_aligned, writable)


def _features(v: Any, name: str, like: Array, updated: bool = False,
              required: bool = False) -> Array | None:
    """A per-feature (F,) vector of like's dtype, or None. One that is updated in place must
    already be exactly what the kernel writes: a copy would leave the caller's array stale."""
    if v is None:
        if required:
            raise ValueError(f"{name}: required here, got None")
        return None
    f = like.shape[1]
    if updated and not is_array(v):
        raise TypeError(f"{name}: expected a NumPy array (updated in place), "
                        f"got {type(v).__name__}")
    v = v if updated else float_array(v, name)
    if v.dtype != like.dtype:
        raise TypeError(f"{name}: expected dtype {like.dtype} (x's), got {v.dtype}")
    if v.shape != (f,):
        raise ValueError(f"{name}: expected shape ({f},), one value per feature of x "
                         f"{like.shape}, got {v.shape}")
    if not updated:
        return contiguous(v)
    if not is_contiguous(v) or not writable(v):
        raise ValueError(f"{name}: expected a writable C-contiguous {kind(v)} (it is updated "
                         f"in place)")
    return require_aligned(v, name)


def batch_norm(x: ArrayIn, gamma: ArrayIn | None, beta: ArrayIn | None,
               running_mean: Array | None, running_var: Array | None, training: bool = True,
               momentum: float = 0.1,
               eps: float = 1e-5) -> tuple[Array, Array | None, Array | None]:
    """Batch normalization of x (N, F), one statistic per feature (column).

    training=True: normalizes with the batch mean and biased variance, updates running_mean
    and running_var IN PLACE (unless None) with ``(1 - momentum) * running + momentum * batch``,
    the batch variance unbiased there (N / (N - 1)), and returns ``(y, save_mean, save_invstd)``
    for batch_norm_grad (save_invstd = 1 / sqrt(biased var + eps)). Needs N >= 2.
    training=False: normalizes with the running statistics (required) and returns
    ``(y, None, None)``.

    gamma, beta: (F,) or None (scale 1, shift 0). Statistics are computed in double, two-pass.
    """
    training = flag(training, "training")
    be, x, gamma, beta, running_mean, running_var = backend(
        x=x, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var)
    x = matrix(x, "x")
    momentum = in_interval(momentum, "momentum", 0, 1)
    eps = non_negative(eps, "eps")
    gamma = _features(gamma, "gamma", x)
    beta = _features(beta, "beta", x)
    if training:
        if x.shape[0] < 2:
            raise ValueError(f"x: batch normalization in training needs at least 2 rows (a "
                             f"variance), got shape {x.shape}")
        running_mean = _features(running_mean, "running_mean", x, updated=True)
        running_var = _features(running_var, "running_var", x, updated=True)
        return be.batch_norm_train(x, gamma, beta, running_mean, running_var, momentum, eps)
    running_mean = _features(running_mean, "running_mean", x, required=True)
    running_var = _features(running_var, "running_var", x, required=True)
    return be.batch_norm_infer(x, gamma, beta, running_mean, running_var, eps), None, None


def batch_norm_grad(dy: ArrayIn, x: ArrayIn, gamma: ArrayIn | None, save_mean: Array,
                    save_invstd: Array) -> tuple[Array, Array, Array]:
    """Gradients of training-mode batch_norm: ``(dx, dgamma, dbeta)``.

    dx = gamma * invstd / N * (N dy - sum(dy) - xhat * sum(dy * xhat)), dgamma = sum(dy * xhat),
    dbeta = sum(dy), sums over rows, xhat = (x - save_mean) * save_invstd. gamma may be None
    (scale 1; dgamma is still returned)."""
    be, dy, x, gamma, save_mean, save_invstd = backend(
        dy=dy, x=x, gamma=gamma, save_mean=save_mean, save_invstd=save_invstd)
    x = matrix(x, "x")
    dy = matrix(dy, "dy")
    if dy.dtype != x.dtype:
        raise TypeError(f"dy: expected dtype {x.dtype} (x's), got {dy.dtype}")
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected shape {x.shape} (x's), got {dy.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"x: expected at least one row, got shape {x.shape}")
    gamma = _features(gamma, "gamma", x)
    save_mean = _features(save_mean, "save_mean", x, required=True)
    save_invstd = _features(save_invstd, "save_invstd", x, required=True)
    return be.batch_norm_backward(dy, x, gamma, save_mean, save_invstd)


__all__ = ["batch_norm", "batch_norm_grad"]
