"""Optimizer descriptions: the five of torch.optim, with torch's names, defaults and checks.

These objects only DESCRIBE an optimizer (its kind, hyper-parameters, per-parameter state buffers
and an optional learning-rate schedule); the update math runs in C++ in the training engine.
``lr`` is the base learning rate: callbacks such as ReduceLROnPlateau change it between epochs, and
a ``schedule`` (fastnn.optim.StepLR, ...) maps it to the rate of each epoch or step (``lr_at``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, ClassVar, NamedTuple, Tuple

from fastnn._checks import finite_real, flag
from fastnn.schedules import (  # re-exported: fastnn.optim is where users look for them
    CosineAnnealing,
    ExponentialLR,
    InverseScaling,
    Schedule,
    StepLR,
    Warmup,
    schedule_from_config,
)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "get",
           "Schedule", "StepLR", "ExponentialLR", "InverseScaling", "CosineAnnealing", "Warmup",
           "schedule_from_config"]


def _non_negative(value: float, name: str) -> float:
    value = finite_real(value, name)
    if value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value}")
    return value


def _betas(value: Sequence[float], name: str = "betas") -> tuple[float, ...]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"betas: expected a pair (beta1, beta2), got {value!r}")
    out = []
    for i, b in enumerate(value):
        b = finite_real(b, f"betas[{i}]")
        if not 0.0 <= b < 1.0:
            raise ValueError(f"betas[{i}]: expected a number in [0, 1), got {b}")
        out.append(b)
    return tuple(out)


class Field(NamedTuple):
    """One hyper-parameter of an optimizer, described once: its ``name`` (constructor argument,
    attribute and config key: torch's name), ``check`` (value, name) -> the checked value (its
    kind: a real number, one >= 0, a flag, a pair of betas), its ``default``, and the keys of
    the engine's optimizer spec it fills (csrc/bindings/engine_specs.cpp names them the same;
    a pair fills two)."""

    name: str
    check: Callable[[Any, str], Any]
    default: object
    engine: Tuple[str, ...]


def _field(name: str, check: Callable[[Any, str], Any], default: object,
           engine: tuple[str, ...] | None = None) -> Field:
    return Field(name, check, default, engine or (name,))


_REQUIRED = inspect.Parameter.empty


class Optimizer:
    """Base class. A subclass sets ``kind``, ``lr_default`` (``_REQUIRED`` for none) and
    ``fields`` (its hyper-parameters besides lr, in signature order), and implements
    ``state_names``; its constructor, ``hyperparams``, ``get_config`` and the engine's spec
    (``engine_spec``) all follow from the table."""

    kind: str | None = None
    lr_default: Any = _REQUIRED
    fields: tuple[Field, ...] = ()

    if TYPE_CHECKING:
        # The constructor's signature and each field's attribute come from the table at run
        # time (__init_subclass__, setattr in __init__).
        __signature__: ClassVar[inspect.Signature]

        def __getattr__(self, name: str) -> Any: ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        P = inspect.Parameter
        params = [P("lr", P.POSITIONAL_OR_KEYWORD, default=cls.lr_default)]
        params += [P(f.name, P.POSITIONAL_OR_KEYWORD, default=f.default) for f in cls.fields]
        params.append(P("schedule", P.POSITIONAL_OR_KEYWORD, default=None))
        cls.__signature__ = inspect.Signature(params)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            bound = type(self).__signature__.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{type(self).__name__}: {e}") from None
        bound.apply_defaults()
        values = bound.arguments
        self.lr = values["lr"]
        self.schedule = values["schedule"]
        for f in self.fields:
            setattr(self, f.name, f.check(values[f.name], f.name))
        self._check()

    def _check(self) -> None:
        """Rules across fields (none by default)."""

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _non_negative(value, "lr")

    @property
    def schedule(self) -> Schedule | None:
        return self._schedule

    @schedule.setter
    def schedule(self, value: Schedule | None) -> None:
        if value is not None and not isinstance(value, Schedule):
            raise TypeError(f"schedule: expected a schedule (fastnn.optim.StepLR, ...) or None, "
                            f"got {type(value).__name__}")
        self._schedule = value

    def lr_at(self, epoch: int = 0, step: int = 0) -> float:
        """The learning rate at a 0-based ``epoch`` and global optimizer ``step``: the schedule's
        value (it picks the counter its ``per`` names), or ``lr`` with no schedule."""
        if self._schedule is None:
            return self._lr
        t = epoch if self._schedule.per == "epoch" else step
        return float(self._schedule(self._lr, t))

    def state_names(self) -> tuple[str, ...]:
        """Names of the per-parameter state buffers the engine keeps (torch's state keys)."""
        raise NotImplementedError

    def hyperparams(self) -> dict[str, Any]:
        """All hyper-parameters, lr first, as plain Python values."""
        out = {"lr": self._lr}
        for f in self.fields:
            out[f.name] = getattr(self, f.name)
        return out

    def engine_spec(self) -> dict[str, Any]:
        """The engine's description of this optimizer: {"kind", "lr", and each field under its
        engine keys} (csrc/bindings/engine_specs.cpp reads it for both engines)."""
        spec = {"kind": self.kind, "lr": self._lr}
        for f in self.fields:
            value = getattr(self, f.name)
            spec.update(zip(f.engine, value if len(f.engine) > 1 else (value,)))
        return spec

    def get_config(self) -> dict[str, Any]:
        """A JSON-friendly dict; ``Optimizer.from_config`` (or fastnn.optim.get) rebuilds it."""
        hp = self.hyperparams()
        if "betas" in hp:
            hp["betas"] = list(hp["betas"])  # JSON has no tuples
        return {"kind": self.kind, "hyperparams": hp,
                "schedule": None if self._schedule is None else self._schedule.get_config()}

    @staticmethod
    def from_config(config: Mapping[str, Any]) -> Optimizer:
        """The optimizer described by ``config`` (from ``get_config``), of the class it names."""
        if not isinstance(config, dict):
            raise TypeError(f"config: expected a dict from get_config(), "
                            f"got {type(config).__name__}")
        kind = config.get("kind")
        if kind not in OPTIMIZERS:
            raise ValueError(f"config: unknown optimizer kind {kind!r}; "
                             f"expected one of {sorted(OPTIMIZERS)}")
        hp = dict(config.get("hyperparams", {}))
        if "betas" in hp:
            hp["betas"] = tuple(hp["betas"])
        return OPTIMIZERS[kind](**hp, schedule=schedule_from_config(config.get("schedule")))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparams().items())
        if self._schedule is not None:
            args += f", schedule={self._schedule!r}"
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, torch.optim.SGD: ``lr`` is required, as in torch 1.x."""

    kind = "sgd"
    fields = (_field("momentum", _non_negative, 0.0),
              _field("nesterov", flag, False),
              _field("weight_decay", _non_negative, 0.0),
              _field("dampening", finite_real, 0.0))

    if TYPE_CHECKING:  # the signature the table makes (tests/test_types.py compares them)
        def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False,
                     weight_decay: float = 0.0, dampening: float = 0.0,
                     schedule: Schedule | None = None) -> None: ...

    def _check(self) -> None:
        # torch's rule: Nesterov's look-ahead is only defined for undamped momentum.
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"nesterov: needs momentum > 0 and dampening == 0, got "
                             f"momentum={self.momentum}, dampening={self.dampening}")

    def state_names(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.momentum > 0 else ()


class Adam(Optimizer):
    """torch.optim.Adam: L2 ``weight_decay`` added to the gradient (coupled)."""

    kind = "adam"
    lr_default = 1e-3
    fields: tuple[Field, ...] = (_field("betas", _betas, (0.9, 0.999), ("beta1", "beta2")),
                                 _field("eps", _non_negative, 1e-8),
                                 _field("weight_decay", _non_negative, 0.0),
                                 _field("amsgrad", flag, False))

    if TYPE_CHECKING:  # the signature the table makes (tests/test_types.py compares them)
        def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                     eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                     schedule: Schedule | None = None) -> None: ...

    def state_names(self) -> tuple[str, ...]:
        names = ("exp_avg", "exp_avg_sq")
        return names + ("max_exp_avg_sq",) if self.amsgrad else names


class AdamW(Adam):
    """torch.optim.AdamW: decoupled weight decay (``w -= lr * weight_decay * w`` before Adam)."""

    kind = "adamw"
    fields = tuple(f._replace(default=0.01) if f.name == "weight_decay" else f
                   for f in Adam.fields)

    if TYPE_CHECKING:  # the signature the table makes (tests/test_types.py compares them)
        def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                     eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False,
                     schedule: Schedule | None = None) -> None: ...


class Adagrad(Optimizer):
    """torch.optim.Adagrad."""

    kind = "adagrad"
    lr_default = 1e-2
    fields = (_field("eps", _non_negative, 1e-10),
              _field("weight_decay", _non_negative, 0.0),
              _field("lr_decay", _non_negative, 0.0),
              _field("initial_accumulator_value", _non_negative, 0.0))

    if TYPE_CHECKING:  # the signature the table makes (tests/test_types.py compares them)
        def __init__(self, lr: float = 1e-2, eps: float = 1e-10, weight_decay: float = 0.0,
                     lr_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                     schedule: Schedule | None = None) -> None: ...

    def state_names(self) -> tuple[str, ...]:
        return ("sum",)


class RMSprop(Optimizer):
    """torch.optim.RMSprop."""

    kind = "rmsprop"
    lr_default = 1e-2
    fields = (_field("alpha", _non_negative, 0.99),
              _field("eps", _non_negative, 1e-8),
              _field("momentum", _non_negative, 0.0),
              _field("weight_decay", _non_negative, 0.0),
              _field("centered", flag, False))

    if TYPE_CHECKING:  # the signature the table makes (tests/test_types.py compares them)
        def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                     momentum: float = 0.0, weight_decay: float = 0.0, centered: bool = False,
                     schedule: Schedule | None = None) -> None: ...

    def state_names(self) -> tuple[str, ...]:
        names = ("square_avg",)
        if self.momentum > 0:
            names += ("momentum_buffer",)
        if self.centered:
            names += ("grad_avg",)
        return names


OPTIMIZERS: dict[Any, type[Optimizer]] = {cls.kind: cls
                                          for cls in (SGD, Adam, AdamW, Adagrad, RMSprop)}


def get(identifier: str | Mapping[str, Any] | Optimizer) -> Optimizer:
    """An optimizer from a name ("sgd", "adam", "adamw", "adagrad", "rmsprop", any case; default
    hyper-parameters, SGD with lr=0.01 as Keras), a config dict, or an Optimizer (returned as
    is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return Optimizer.from_config(identifier)
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"optimizer: unknown name {identifier!r}; expected one of "
                             f"{sorted(OPTIMIZERS)} or an optimizer object")
        # SGD has no default lr (as torch); by name it gets Keras's 0.01.
        return SGD(lr=0.01) if key == "sgd" else OPTIMIZERS[key]()
    raise TypeError(f"optimizer: expected a name such as 'adam' or a fastnn.optim optimizer, "
                    f"got {type(identifier).__name__}")
