"""Fused multi-tensor optimizer steps and gradient clipping.

Each ``*_step`` updates a whole list of parameters in one kernel call: for every parameter it
reads the gradient once and rewrites the parameter and its optimizer state in place, in a single
pass, with the work of all tensors cut into chunks shared by the thread pool. The formulas are
``torch.optim``'s (SGD, Adam, AdamW, Adagrad, RMSprop), hyper-parameter for hyper-parameter.

Common arguments:
- params: a list of float32 or float64 arrays (all of one dtype), C-contiguous and writable.
- grads: a list of arrays, grads[i] of params[i]'s shape and dtype; only read.
- state lists (momentum_buffers, exp_avgs, ...): like params, owned by the caller, updated in
  place; create them with ``np.zeros_like`` (Adagrad: filled with initial_accumulator_value).
- l1, l2: None, one number for every tensor, or one number per tensor (0 for biases): the
  penalty ``l1 * sum|p| + l2 * sum p**2`` is folded into the gradient as
  ``g = grad_scale * grad + l1 * sign(p) + 2 * l2 * p``.
- grad_scale: multiplies each gradient as it is read (1/k to average k accumulated batches; a
  clipping factor), so neither costs an extra pass. It does not scale the penalty terms.

A single array is accepted wherever a list is. Results do not depend on the thread count."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from fastnn._checks import FLOAT_DTYPES, finite_real, flag, in_interval, non_negative
from fastnn._typing import Array, Arrays, Penalty
from fastnn.ops._dispatch import (backend, contiguous, copy, is_aligned, is_array, is_contiguous,
                                  kind, may_share_memory, require_aligned, writable)


def _as_list(xs: Arrays, name: str) -> list[Any]:
    if is_array(xs):
        return [xs]
    if isinstance(xs, (list, tuple)):
        return list(xs)
    raise TypeError(f"{name}: expected a list of NumPy arrays, got {type(xs).__name__}")


def _tensors(xs: Arrays, name: str, like: list[Array] | None = None,
             updated: bool = True) -> list[Array]:
    """xs as a list of arrays the kernels can update: one float dtype, C-contiguous, writable
    when updated, and matching `like` (the params list) index by index."""
    xs = _as_list(xs, name)
    if like is not None and len(xs) != len(like):
        raise ValueError(f"{name}: expected {len(like)} arrays, one per param, got {len(xs)}")
    if like:
        dtype = like[0].dtype
    else:
        dtype = xs[0].dtype if xs and is_array(xs[0]) else None
    for i, x in enumerate(xs):
        if not is_array(x):
            raise TypeError(f"{name}[{i}]: expected a NumPy array, got {type(x).__name__}")
        if x.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name}[{i}]: expected float32 or float64, got {x.dtype}")
        if x.dtype != dtype:
            raise TypeError(f"{name}[{i}]: expected dtype {dtype} (all arrays of one call share "
                            f"one dtype), got {x.dtype}")
        if like is not None and x.shape != like[i].shape:
            raise ValueError(f"{name}[{i}]: expected shape {like[i].shape} to match "
                             f"params[{i}], got {x.shape}")
        if not is_contiguous(x):
            raise ValueError(f"{name}[{i}]: expected a C-contiguous array (use "
                             f"np.ascontiguousarray once, when creating it)")
        if updated and not writable(x):
            raise ValueError(f"{name}[{i}]: {kind(x)} is read-only; it is updated in place")
        if updated:
            xs[i] = require_aligned(x, f"{name}[{i}]")
        elif not is_aligned(x):
            xs[i] = copy(x)
    return xs


def _no_overlap(named_lists: list[tuple[str, list[Array]]]) -> None:
    """The kernel reads and writes each tensor's arrays as distinct memory (restrict pointers):
    refuse a param, grad or state that overlaps another of the same index."""
    names = [n for n, xs in named_lists]
    lists = [xs for n, xs in named_lists]
    for i in range(len(lists[0])):
        for a in range(len(lists)):
            for b in range(a + 1, len(lists)):
                if lists[a][i].size and may_share_memory(lists[a][i], lists[b][i]):
                    raise ValueError(f"{names[b]}[{i}]: shares memory with {names[a]}[{i}]; "
                                     f"each needs its own array")


def _optional(xs: Arrays | None, name: str, used: bool, why: str,
              named: list[tuple[str, list[Array]]]) -> list[Array] | None:
    """An optional state list, checked against named[0] (the params) and added to `named` when
    `used`; else None, which the kernel skips. why: the condition that needs it."""
    if not used:
        return None
    if xs is None:
        raise ValueError(f"{name}: needed when {why} (np.zeros_like(p) for each param)")
    xs = _tensors(xs, name, like=named[0][1])
    named.append((name, xs))
    return xs


def _penalty(value: Penalty, name: str, count: int) -> list[float]:
    """Per-tensor penalty weights: None -> zeros, a number -> that number for every tensor."""
    if value is None:
        return [0.0] * count
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        values = [value] * count
    elif isinstance(value, (list, tuple, np.ndarray)):
        values = list(value)
        if len(values) != count:
            raise ValueError(f"{name}: expected one value per param ({count}), got {len(values)}")
    else:
        raise TypeError(f"{name}: expected None, a number or a list of numbers, "
                        f"got {type(value).__name__}")
    out = []
    for i, v in enumerate(values):
        v = finite_real(v, f"{name}[{i}]" if len(values) > 1 else name)
        if v < 0:
            raise ValueError(f"{name}: expected penalty weights >= 0, got {v}")
        out.append(v)
    return out


def _non_negative(value: float, name: str) -> float:
    return non_negative(value, name, "a value")


def _step(step: int) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step: expected an int (the 1-based step count), "
                        f"got {type(step).__name__}")
    if step < 1:
        raise ValueError(f"step: expected the 1-based step count (>= 1), got {step}")
    return int(step)


def _common(params: Arrays, grads: Arrays, l1: Penalty, l2: Penalty,
            grad_scale: float) -> tuple[list[Array], list[Array], list[float], list[float], float]:
    params = _tensors(params, "params")
    grads = _tensors(grads, "grads", like=params, updated=False)
    return (params, grads, _penalty(l1, "l1", len(params)), _penalty(l2, "l2", len(params)),
            finite_real(grad_scale, "grad_scale"))


def sgd_step(params: Arrays, grads: Arrays, lr: float, momentum: float = 0.0,
             dampening: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
             momentum_buffers: Arrays | None = None, step: int = 1, l1: Penalty = None,
             l2: Penalty = None, grad_scale: float = 1.0) -> None:
    """One ``torch.optim.SGD`` step, in place: ``g += weight_decay * p``; with momentum,
    ``buf = g`` on step 1 (the buffers' old contents are ignored) and
    ``buf = momentum * buf + (1 - dampening) * g`` later, then ``g = g + momentum * buf``
    (nesterov) or ``g = buf``; finally ``p -= lr * g``.

    momentum_buffers is needed when momentum != 0; pass the real 1-based ``step`` count so that
    the buffers are only initialised on the first step.
    """
    nesterov = flag(nesterov, "nesterov")
    be, params, grads, momentum_buffers = backend(params=params, grads=grads,
                                                  momentum_buffers=momentum_buffers)
    params, grads, l1, l2, grad_scale = _common(params, grads, l1, l2, grad_scale)
    lr = _non_negative(lr, "lr")
    momentum = _non_negative(momentum, "momentum")
    dampening = finite_real(dampening, "dampening")
    weight_decay = _non_negative(weight_decay, "weight_decay")
    step = _step(step)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"nesterov: needs momentum > 0 and dampening == 0, got "
                         f"momentum={momentum}, dampening={dampening}")
    named = [("params", params), ("grads", grads)]
    momentum_buffers = _optional(momentum_buffers, "momentum_buffers", momentum != 0,
                                 "momentum != 0", named)
    _no_overlap(named)
    be.sgd_step(params, grads, momentum_buffers, l1, l2, step == 1, grad_scale, lr=lr,
                momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                nesterov=bool(nesterov))


def _betas(betas: tuple[float, float]) -> tuple[float, ...]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
    return tuple(in_interval(b, f"betas[{i}]", 0, 1, "left", "a value")
                 for i, b in enumerate(betas))


def adam_step(params: Arrays, grads: Arrays, exp_avgs: Arrays, exp_avg_sqs: Arrays, step: int,
              lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
              weight_decay: float = 0.0, decoupled: bool = False, amsgrad: bool = False,
              max_exp_avg_sqs: Arrays | None = None, l1: Penalty = None, l2: Penalty = None,
              grad_scale: float = 1.0) -> None:
    """One ``torch.optim.Adam`` step (``decoupled=True``: ``torch.optim.AdamW``), in place.

    ``g += weight_decay * p`` (Adam) or ``p *= 1 - lr * weight_decay`` (AdamW);
    ``m = lerp(m, g, 1 - beta1)``; ``v = beta2 * v + (1 - beta2) * g * g``;
    ``p -= lr / (1 - beta1**step) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)``; with
    amsgrad, ``max_exp_avg_sqs = max(max_exp_avg_sqs, v)`` replaces v in the denominator.
    step: the 1-based count of this update, shared by every tensor.
    """
    decoupled, amsgrad = flag(decoupled, "decoupled"), flag(amsgrad, "amsgrad")
    be, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs = backend(
        params=params, grads=grads, exp_avgs=exp_avgs, exp_avg_sqs=exp_avg_sqs,
        max_exp_avg_sqs=max_exp_avg_sqs)
    params, grads, l1, l2, grad_scale = _common(params, grads, l1, l2, grad_scale)
    exp_avgs = _tensors(exp_avgs, "exp_avgs", like=params)
    exp_avg_sqs = _tensors(exp_avg_sqs, "exp_avg_sqs", like=params)
    step = _step(step)
    lr = _non_negative(lr, "lr")
    beta1, beta2 = _betas(betas)
    eps = _non_negative(eps, "eps")
    weight_decay = _non_negative(weight_decay, "weight_decay")
    named = [("params", params), ("grads", grads), ("exp_avgs", exp_avgs),
             ("exp_avg_sqs", exp_avg_sqs)]
    max_exp_avg_sqs = _optional(max_exp_avg_sqs, "max_exp_avg_sqs", amsgrad, "amsgrad=True",
                                named)
    _no_overlap(named)
    be.adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, l1, l2, step,
                 bool(decoupled), grad_scale, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                 weight_decay=weight_decay)


def adamw_step(params: Arrays, grads: Arrays, exp_avgs: Arrays, exp_avg_sqs: Arrays, step: int,
               lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               weight_decay: float = 1e-2, amsgrad: bool = False,
               max_exp_avg_sqs: Arrays | None = None, l1: Penalty = None, l2: Penalty = None,
               grad_scale: float = 1.0) -> None:
    """One ``torch.optim.AdamW`` step: Adam with the decoupled decay ``p *= 1 - lr * wd``."""
    adam_step(params, grads, exp_avgs, exp_avg_sqs, step, lr=lr, betas=betas, eps=eps,
              weight_decay=weight_decay, decoupled=True, amsgrad=amsgrad,
              max_exp_avg_sqs=max_exp_avg_sqs, l1=l1, l2=l2, grad_scale=grad_scale)


def adagrad_step(params: Arrays, grads: Arrays, state_sums: Arrays, step: int, lr: float = 1e-2,
                 lr_decay: float = 0.0, weight_decay: float = 0.0, eps: float = 1e-10,
                 l1: Penalty = None, l2: Penalty = None, grad_scale: float = 1.0) -> None:
    """One ``torch.optim.Adagrad`` step, in place: ``g += weight_decay * p``;
    ``state_sum += g * g``; ``p -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(state_sum) + eps)``.

    state_sums: start them at torch's ``initial_accumulator_value`` (np.full_like(p, value)).
    """
    be, params, grads, state_sums = backend(params=params, grads=grads, state_sums=state_sums)
    params, grads, l1, l2, grad_scale = _common(params, grads, l1, l2, grad_scale)
    state_sums = _tensors(state_sums, "state_sums", like=params)
    step = _step(step)
    lr = _non_negative(lr, "lr")
    lr_decay = _non_negative(lr_decay, "lr_decay")
    weight_decay = _non_negative(weight_decay, "weight_decay")
    eps = _non_negative(eps, "eps")
    _no_overlap([("params", params), ("grads", grads), ("state_sums", state_sums)])
    be.adagrad_step(params, grads, state_sums, l1, l2, step, grad_scale, lr=lr,
                    lr_decay=lr_decay, weight_decay=weight_decay, eps=eps)


def rmsprop_step(params: Arrays, grads: Arrays, square_avgs: Arrays, lr: float = 1e-2,
                 alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False,
                 momentum_buffers: Arrays | None = None, grad_avgs: Arrays | None = None,
                 l1: Penalty = None, l2: Penalty = None, grad_scale: float = 1.0) -> None:
    """One ``torch.optim.RMSprop`` step, in place: ``g += weight_decay * p``;
    ``sq = alpha * sq + (1 - alpha) * g * g``; ``avg = sqrt(sq) + eps``, or when centered
    ``grad_avg = lerp(grad_avg, g, 1 - alpha)``, ``avg = sqrt(sq - grad_avg**2) + eps``; then
    ``buf = momentum * buf + g / avg``, ``p -= lr * buf`` (momentum > 0) or ``p -= lr * g / avg``.

    momentum_buffers are needed when momentum > 0, grad_avgs when centered (zeros at the start).
    """
    centered = flag(centered, "centered")
    be, params, grads, square_avgs, momentum_buffers, grad_avgs = backend(
        params=params, grads=grads, square_avgs=square_avgs, momentum_buffers=momentum_buffers,
        grad_avgs=grad_avgs)
    params, grads, l1, l2, grad_scale = _common(params, grads, l1, l2, grad_scale)
    square_avgs = _tensors(square_avgs, "square_avgs", like=params)
    lr = _non_negative(lr, "lr")
    alpha = _non_negative(alpha, "alpha")
    eps = _non_negative(eps, "eps")
    weight_decay = _non_negative(weight_decay, "weight_decay")
    momentum = _non_negative(momentum, "momentum")
    named = [("params", params), ("grads", grads), ("square_avgs", square_avgs)]
    momentum_buffers = _optional(momentum_buffers, "momentum_buffers", momentum > 0,
                                 "momentum > 0", named)
    grad_avgs = _optional(grad_avgs, "grad_avgs", centered, "centered=True", named)
    _no_overlap(named)
    be.rmsprop_step(params, grads, square_avgs, momentum_buffers, grad_avgs, l1, l2, grad_scale,
                    lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)


def global_norm(tensors: Arrays) -> float:
    """The 2-norm of all elements of all tensors (one float dtype) together, ``sqrt(sum x**2)``,
    accumulated in double. inf or NaN when an element is. Arrays may have any strides
    (non-contiguous ones are copied first)."""
    be, tensors = backend(tensors=tensors)
    tensors = [contiguous(t) if is_array(t) else t for t in _as_list(tensors, "tensors")]
    tensors = _tensors(tensors, "tensors", updated=False)
    return float(be.global_norm(tensors)) if tensors else 0.0


def clip_grad_norm(grads: Arrays, max_norm: float) -> float:
    """``torch.nn.utils.clip_grad_norm_``: scales every gradient in place by
    ``max_norm / (total_norm + 1e-6)`` when that is below 1, and returns the total 2-norm of
    the gradients before clipping.

    A non-finite norm is returned as it is and the gradients are left untouched, so that the
    caller can skip the step, raise or warn. grads: C-contiguous and writable.
    """
    be, grads = backend(grads=grads)
    grads = _tensors(grads, "grads")
    max_norm = _non_negative(max_norm, "max_norm")
    norm = float(be.global_norm(grads)) if grads else 0.0
    if np.isfinite(norm):
        coef = max_norm / (norm + 1e-6)
        if coef < 1.0:
            be.scale_tensors(grads, coef)
    return norm


__all__ = ["sgd_step", "adam_step", "adamw_step", "adagrad_step", "rmsprop_step",
           "global_norm", "clip_grad_norm"]
