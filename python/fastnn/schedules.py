"""Learning-rate schedules: pure functions of (base_lr, t).

Each schedule maps the optimizer's base learning rate and a 0-based counter ``t`` to the rate to
use at that point, with the closed forms of ``torch.optim.lr_scheduler``. ``per`` says what ``t``
counts: ``"epoch"`` (the schedule steps between epochs) or ``"step"`` (between optimizer updates).
Being pure functions, they can be evaluated ahead of time, by the C++ engine or in a test, and give
the same value however often they are asked. ReduceLROnPlateau depends on the monitored metric, so
it is a callback (fastnn.callbacks), not a schedule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastnn._checks import finite_real, integer, non_negative

_PER = ("epoch", "step")


def _check_t(t: int) -> int:
    return integer(t, "t", 0)


class Schedule:
    """Base class: subclasses implement ``__call__(base_lr, t) -> lr`` and list their
    constructor arguments in ``_ARGS`` (used by get_config, __eq__ and __repr__)."""

    _ARGS: tuple[str, ...] = ()

    def __init__(self, per: str = "epoch") -> None:
        if per not in _PER:
            raise ValueError(f"per: expected 'epoch' or 'step', got {per!r}")
        self.per = per

    def __call__(self, base_lr: float, t: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """A JSON-friendly dict; ``schedule_from_config`` turns it back into a schedule."""
        config: dict[str, Any] = {"name": type(self).__name__, "per": self.per}
        for arg in self._ARGS:
            value = getattr(self, arg)
            config[arg] = value.get_config() if isinstance(value, Schedule) else value
        return config

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        args = ", ".join(f"{a}={getattr(self, a)!r}" for a in self._ARGS)
        return f"{type(self).__name__}({args}, per={self.per!r})"


class StepLR(Schedule):
    """``base_lr * gamma ** (t // step_size)``: decay by ``gamma`` every ``step_size`` epochs or
    steps."""

    _ARGS = ("step_size", "gamma")

    def __init__(self, step_size: int, gamma: float = 0.1, per: str = "epoch") -> None:
        super().__init__(per)
        self.step_size = integer(step_size, "step_size", 1)
        self.gamma = _positive(gamma, "gamma")

    def __call__(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** (_check_t(t) // self.step_size)


class ExponentialLR(Schedule):
    """``base_lr * gamma ** t``."""

    _ARGS = ("gamma",)

    def __init__(self, gamma: float, per: str = "epoch") -> None:
        super().__init__(per)
        self.gamma = _positive(gamma, "gamma")

    def __call__(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** _check_t(t)


class InverseScaling(Schedule):
    """scikit-learn's ``learning_rate="invscaling"``: ``base_lr / (t + 1) ** power``.

    sklearn counts time from 1; ``t`` here is 0-based, hence the ``+ 1``: the first epoch or step
    uses ``base_lr`` itself."""

    _ARGS = ("power",)

    def __init__(self, power: float = 0.5, per: str = "epoch") -> None:
        super().__init__(per)
        self.power = non_negative(power, "power")

    def __call__(self, base_lr: float, t: int) -> float:
        return base_lr / (_check_t(t) + 1) ** self.power


class CosineAnnealing(Schedule):
    """``eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2`` (torch's closed form of
    CosineAnnealingLR). Past ``T_max`` the cosine keeps going, rising back towards ``base_lr``, as
    torch's does; use ``T_max`` = the total number of epochs/steps for a single decay."""

    _ARGS = ("T_max", "eta_min")

    def __init__(self, T_max: int, eta_min: float = 0.0,  # noqa: N803 (torch's name)
                 per: str = "epoch") -> None:
        super().__init__(per)
        self.T_max = integer(T_max, "T_max", 1)
        self.eta_min = non_negative(eta_min, "eta_min")

    def __call__(self, base_lr: float, t: int) -> float:
        cos = math.cos(math.pi * _check_t(t) / self.T_max)
        return self.eta_min + (base_lr - self.eta_min) * (1.0 + cos) / 2.0


class Warmup(Schedule):
    """Linear warm-up over ``warmup_steps``, then ``after`` (or a constant ``base_lr``).

    During warm-up the rate is ``base_lr * (1/W + (1 - 1/W) * t / W)`` with ``W = warmup_steps``,
    torch's ``LinearLR(start_factor=1/W, total_iters=W)``: it starts at ``base_lr / W`` (never 0,
    which would waste an update) and reaches ``base_lr`` at ``t = W``, where ``after`` takes over
    with its own counter starting at 0 (as torch's SequentialLR does)."""

    _ARGS = ("warmup_steps", "after")

    def __init__(self, warmup_steps: int, after: Schedule | None = None, per: str = "step") -> None:
        super().__init__(per)
        self.warmup_steps = integer(warmup_steps, "warmup_steps", 1)
        if after is not None:
            if not isinstance(after, Schedule):
                raise TypeError(f"after: expected a schedule (fastnn.optim.StepLR, ...) or None, "
                                f"got {type(after).__name__}")
            if after.per != self.per:
                raise ValueError(f"after: counts per {after.per!r} but the warm-up counts per "
                                 f"{self.per!r}; give both the same `per`")
        self.after = after

    def __call__(self, base_lr: float, t: int) -> float:
        t = _check_t(t)
        w = self.warmup_steps
        if t < w:
            start = 1.0 / w
            return base_lr * (start + (1.0 - start) * t / w)
        return base_lr if self.after is None else self.after(base_lr, t - w)


def _positive(value: float, name: str) -> float:
    value = finite_real(value, name)
    if value <= 0:
        raise ValueError(f"{name}: expected a number > 0, got {value}")
    return value


SCHEDULES = {cls.__name__: cls for cls in (StepLR, ExponentialLR, InverseScaling,
                                           CosineAnnealing, Warmup)}


def schedule_from_config(config: Mapping[str, Any] | None) -> Schedule | None:
    """The schedule described by ``config`` (a dict from ``Schedule.get_config``), or None."""
    if config is None:
        return None
    if not isinstance(config, dict):
        raise TypeError(f"config: expected a dict from get_config(), got {type(config).__name__}")
    config = dict(config)
    name = config.pop("name", None)
    if name not in SCHEDULES:
        raise ValueError(f"config: unknown schedule {name!r}; expected one of {sorted(SCHEDULES)}")
    if name == "Warmup":
        config["after"] = schedule_from_config(config.get("after"))
    return SCHEDULES[name](**config)
