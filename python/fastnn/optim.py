"""Optimizer descriptions: the five of torch.optim, with torch's names, defaults and checks.

These objects only DESCRIBE an optimizer (its kind, hyper-parameters, per-parameter state buffers
and an optional learning-rate schedule); the update math runs in C++ in the training engine.
``lr`` is the base learning rate: callbacks such as ReduceLROnPlateau change it between epochs, and
a ``schedule`` (fastnn.optim.StepLR, ...) maps it to the rate of each epoch or step (``lr_at``).
"""

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


def _non_negative(value, name):
    value = finite_real(value, name)
    if value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value}")
    return value


_flag = flag


def _betas(value):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"betas: expected a pair (beta1, beta2), got {value!r}")
    out = []
    for i, b in enumerate(value):
        b = finite_real(b, f"betas[{i}]")
        if not 0.0 <= b < 1.0:
            raise ValueError(f"betas[{i}]: expected a number in [0, 1), got {b}")
        out.append(b)
    return tuple(out)


class Optimizer:
    """Base class. Subclasses set ``kind`` and ``_HYPER`` (hyper-parameter names besides lr, in
    signature order) and implement ``state_names``."""

    kind = None
    _HYPER = ()

    def __init__(self, lr, schedule=None):
        self.lr = lr
        self.schedule = schedule

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        value = finite_real(value, "lr")
        if value < 0:
            raise ValueError(f"lr: expected a finite number >= 0, got {value}")
        self._lr = value

    @property
    def schedule(self):
        return self._schedule

    @schedule.setter
    def schedule(self, value):
        if value is not None and not isinstance(value, Schedule):
            raise TypeError(f"schedule: expected a schedule (fastnn.optim.StepLR, ...) or None, "
                            f"got {type(value).__name__}")
        self._schedule = value

    def lr_at(self, epoch=0, step=0):
        """The learning rate at a 0-based ``epoch`` and global optimizer ``step``: the schedule's
        value (it picks the counter its ``per`` names), or ``lr`` with no schedule."""
        if self._schedule is None:
            return self._lr
        t = epoch if self._schedule.per == "epoch" else step
        return float(self._schedule(self._lr, t))

    def state_names(self):
        """Names of the per-parameter state buffers the engine keeps (torch's state keys)."""
        raise NotImplementedError

    def hyperparams(self):
        """All hyper-parameters, lr first, as plain Python values."""
        out = {"lr": self._lr}
        for name in self._HYPER:
            out[name] = getattr(self, name)
        return out

    def get_config(self):
        """A JSON-friendly dict; ``Optimizer.from_config`` (or fastnn.optim.get) rebuilds it."""
        hp = self.hyperparams()
        if "betas" in hp:
            hp["betas"] = list(hp["betas"])  # JSON has no tuples
        return {"kind": self.kind, "hyperparams": hp,
                "schedule": None if self._schedule is None else self._schedule.get_config()}

    @staticmethod
    def from_config(config):
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

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparams().items())
        if self._schedule is not None:
            args += f", schedule={self._schedule!r}"
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, torch.optim.SGD: ``lr`` is required, as in torch 1.x."""

    kind = "sgd"
    _HYPER = ("momentum", "nesterov", "weight_decay", "dampening")

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0,
                 schedule=None):
        super().__init__(lr, schedule)
        self.momentum = _non_negative(momentum, "momentum")
        self.nesterov = _flag(nesterov, "nesterov")
        self.weight_decay = _non_negative(weight_decay, "weight_decay")
        self.dampening = finite_real(dampening, "dampening")
        # torch's rule: Nesterov's look-ahead is only defined for undamped momentum.
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"nesterov: needs momentum > 0 and dampening == 0, got "
                             f"momentum={self.momentum}, dampening={self.dampening}")

    def state_names(self):
        return ("momentum_buffer",) if self.momentum > 0 else ()


class Adam(Optimizer):
    """torch.optim.Adam: L2 ``weight_decay`` added to the gradient (coupled)."""

    kind = "adam"
    _HYPER = ("betas", "eps", "weight_decay", "amsgrad")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 schedule=None):
        super().__init__(lr, schedule)
        self.betas = _betas(betas)
        self.eps = _non_negative(eps, "eps")
        self.weight_decay = _non_negative(weight_decay, "weight_decay")
        self.amsgrad = _flag(amsgrad, "amsgrad")

    def state_names(self):
        names = ("exp_avg", "exp_avg_sq")
        return names + ("max_exp_avg_sq",) if self.amsgrad else names


class AdamW(Adam):
    """torch.optim.AdamW: decoupled weight decay (``w -= lr * weight_decay * w`` before Adam)."""

    kind = "adamw"

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False,
                 schedule=None):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, schedule)


class Adagrad(Optimizer):
    """torch.optim.Adagrad."""

    kind = "adagrad"
    _HYPER = ("eps", "weight_decay", "lr_decay", "initial_accumulator_value")

    def __init__(self, lr=1e-2, eps=1e-10, weight_decay=0.0, lr_decay=0.0,
                 initial_accumulator_value=0.0, schedule=None):
        super().__init__(lr, schedule)
        self.eps = _non_negative(eps, "eps")
        self.weight_decay = _non_negative(weight_decay, "weight_decay")
        self.lr_decay = _non_negative(lr_decay, "lr_decay")
        self.initial_accumulator_value = _non_negative(initial_accumulator_value,
                                                       "initial_accumulator_value")

    def state_names(self):
        return ("sum",)


class RMSprop(Optimizer):
    """torch.optim.RMSprop."""

    kind = "rmsprop"
    _HYPER = ("alpha", "eps", "momentum", "weight_decay", "centered")

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0,
                 centered=False, schedule=None):
        super().__init__(lr, schedule)
        self.alpha = _non_negative(alpha, "alpha")
        self.eps = _non_negative(eps, "eps")
        self.momentum = _non_negative(momentum, "momentum")
        self.weight_decay = _non_negative(weight_decay, "weight_decay")
        self.centered = _flag(centered, "centered")

    def state_names(self):
        names = ("square_avg",)
        if self.momentum > 0:
            names += ("momentum_buffer",)
        if self.centered:
            names += ("grad_avg",)
        return names


OPTIMIZERS = {cls.kind: cls for cls in (SGD, Adam, AdamW, Adagrad, RMSprop)}


def get(identifier):
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
