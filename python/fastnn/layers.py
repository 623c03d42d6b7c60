"""Layers: descriptions of what a model computes. The math runs in the C++ engine; a layer holds
its hyper-parameters, checks them, and knows how to describe itself to the engine and to a saved
file (``get_config`` / ``from_config``)."""

from __future__ import annotations

import math
from typing import NamedTuple, Optional
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fastnn._checks import finite_real, flag, in_interval, integer, non_negative
from fastnn.ops import ACTIVATIONS as _ELEMENTWISE, init_weights

# Activations a Dense or Activation layer may name: the elementwise ones of fastnn.ops (one name
# table for both), "linear" for none, and softmax, which is only the output link of a classifier
# (the last layer, with the softmax cross-entropy loss).
ACTIVATIONS = ("linear",) + _ELEMENTWISE + ("softmax",)
INITIALIZERS = ("auto", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                "lecun_uniform", "lecun_normal", "zeros", "ones")
# "auto" picks He for the ReLU family (their half-zero outputs halve the variance), Glorot else.
RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu")


def _activation_name(activation: str | None) -> str:
    if activation is None:
        return "linear"
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected None or one of {', '.join(ACTIVATIONS)}, "
                         f"got {activation!r}")
    return activation


class Role(NamedTuple):
    """What one array of get_weights is, by its role ("kernel", "running_var", ...)."""

    trainable: bool  # the optimizer updates it; else the engine keeps it as a buffer
    fill: Optional[float]  # its starting value; None: drawn by the layer's initializer
    matrix: bool = False  # shape (inputs, outputs) rather than (outputs,)
    # For arrays whose values must be >= 0 (variances): what they are, for messages.
    non_negative: str = ""


ROLES = {"kernel": Role(True, None, matrix=True), "bias": Role(True, 0.0),
         "gamma": Role(True, 1.0), "beta": Role(True, 0.0), "running_mean": Role(False, 0.0),
         "running_var": Role(False, 1.0, non_negative="a BatchNorm running variance")}


class Layer:
    """Base class. ``name`` is set by the model (``dense_0``, ``batch_norm_1``, ...).

    A layer describes itself to everything that handles it, so that the model, the file format
    and the estimators never ask which kind of layer they hold: its output width, the roles of
    the arrays it adds to get_weights (their shapes and starting values follow from ROLES), its
    entry of the engine's plan (csrc/bindings/engine_specs.h), its summary row and its config."""

    kind: str | None = None

    def __init__(self) -> None:
        self.name = None

    def output_width(self, width: int) -> int:
        """The number of features out of the layer for `width` features in."""
        return width

    def weight_roles(self) -> tuple[str, ...]:
        """The ROLES of the arrays this layer adds to get_weights, in order."""
        return ()

    def initial_weight(self, role: str, shape: tuple[int, ...], seed: int) -> NDArray[np.float32]:
        """The array of `role` a new model starts from (float32)."""
        return np.full(shape, ROLES[role].fill, np.float32)

    def engine_spec(self, link_in_loss: bool) -> dict[str, Any]:
        """The engine's description of this layer. link_in_loss: this is the last layer and
        its activation is the loss's link, which the loss computes from the logits."""
        return {"kind": self.kind}

    def summary_type(self) -> str:
        """The "type" column of Sequential.summary."""
        return type(self).__name__

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Layer:
        config = dict(config)
        config.pop("class", None)
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "class")
        return f"{type(self).__name__}({args})"


class _Activated(Layer):
    """A layer that ends in an activation: Dense and Activation.
    negative_slope / alpha: parameters of leaky_relu / elu."""

    def __init__(self, activation: str | None, negative_slope: float, alpha: float) -> None:
        super().__init__()
        self.activation = _activation_name(activation)
        self.negative_slope = finite_real(negative_slope, "negative_slope")
        self.alpha = non_negative(alpha, "alpha")

    def act_param(self) -> float:
        return {"leaky_relu": self.negative_slope, "elu": self.alpha}.get(self.activation, 0.0)

    def engine_spec(self, link_in_loss: bool) -> dict[str, Any]:
        act = "none" if link_in_loss or self.activation == "linear" else self.activation
        return {"kind": self.kind, "activation": act, "act_param": self.act_param()}

    def get_config(self) -> dict[str, Any]:
        return {"activation": self.activation, "negative_slope": self.negative_slope,
                "alpha": self.alpha}


class Dense(_Activated):
    """``y = act(x @ W + b)`` with ``W`` of shape (in_features, units).

    l1, l2: penalty ``l1 * sum(abs(W)) + l2 * sum(W**2)`` added to the loss (kernel only).
    kernel_initializer: "auto" (He for relu-like activations, Glorot otherwise) or a name of
    `fastnn.ops.init_weights`. The bias starts at zero.
    negative_slope / alpha: parameters of leaky_relu / elu.
    """

    kind = "dense"

    def __init__(self, units: int, activation: str | None = None, l1: float = 0.0, l2: float = 0.0,
                 kernel_initializer: str = "auto", use_bias: bool = True,
                 negative_slope: float = 0.01, alpha: float = 1.0) -> None:
        if integer(units, "units") <= 0:
            raise ValueError(f"units: expected a positive number of units, got {units}")
        super().__init__(activation, negative_slope, alpha)
        self.units = int(units)
        self.l1 = non_negative(l1, "l1")
        self.l2 = non_negative(l2, "l2")
        if kernel_initializer not in INITIALIZERS:
            raise ValueError(f"kernel_initializer: expected one of {', '.join(INITIALIZERS)}, "
                             f"got {kernel_initializer!r}")
        self.kernel_initializer = kernel_initializer
        self.use_bias = flag(use_bias, "use_bias")

    def initializer(self) -> str:
        if self.kernel_initializer != "auto":
            return self.kernel_initializer
        return "he_uniform" if self.activation in RELU_LIKE else "glorot_uniform"

    def output_width(self, width: int) -> int:
        return self.units

    def weight_roles(self) -> tuple[str, ...]:
        return ("kernel", "bias") if self.use_bias else ("kernel",)

    def initial_weight(self, role: str, shape: tuple[int, ...], seed: int) -> NDArray[np.float32]:
        if role == "kernel":
            return init_weights(self.initializer(), shape, seed)
        return super().initial_weight(role, shape, seed)

    def engine_spec(self, link_in_loss: bool) -> dict[str, Any]:
        return dict(super().engine_spec(link_in_loss), units=self.units, use_bias=self.use_bias,
                    l1=self.l1, l2=self.l2)

    def summary_type(self) -> str:
        return "Dense" if self.activation == "linear" else f"Dense({self.activation})"

    def get_config(self) -> dict[str, Any]:
        return {"class": "Dense", "units": self.units, "activation": self.activation,
                "l1": self.l1, "l2": self.l2, "kernel_initializer": self.kernel_initializer,
                "use_bias": self.use_bias, "negative_slope": self.negative_slope,
                "alpha": self.alpha}


class Activation(_Activated):
    """An activation on its own: ``Activation("relu")``."""

    kind = "activation"

    def __init__(self, activation: str | None, negative_slope: float = 0.01,
                 alpha: float = 1.0) -> None:
        super().__init__(activation, negative_slope, alpha)

    def get_config(self) -> dict[str, Any]:
        return {"class": "Activation", **super().get_config()}


class Dropout(Layer):
    """Inverted dropout in training (each unit zeroed with probability ``rate``, the rest scaled
    by 1 / (1 - rate)); the identity in evaluate and predict."""

    kind = "dropout"

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = in_interval(rate, "rate", 0, 1, "left", "a probability")

    def engine_spec(self, link_in_loss: bool) -> dict[str, Any]:
        return {"kind": self.kind, "rate": self.rate}

    def get_config(self) -> dict[str, Any]:
        return {"class": "Dropout", "rate": self.rate}


class BatchNorm(Layer):
    """Per-feature batch normalization as ``torch.nn.BatchNorm1d``: batch statistics (biased
    variance) in training, running statistics in inference, updated as
    ``running = (1 - momentum) * running + momentum * batch`` (unbiased variance)."""

    kind = "batch_norm"

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum = in_interval(momentum, "momentum", 0, 1)
        self.eps = finite_real(eps, "eps")
        if self.eps <= 0:
            raise ValueError(f"eps: expected a positive number, got {self.eps}")

    def weight_roles(self) -> tuple[str, ...]:
        return ("gamma", "beta", "running_mean", "running_var")

    def engine_spec(self, link_in_loss: bool) -> dict[str, Any]:
        return {"kind": self.kind, "momentum": self.momentum, "eps": self.eps}

    def get_config(self) -> dict[str, Any]:
        return {"class": "BatchNorm", "momentum": self.momentum, "eps": self.eps}


LAYER_CLASSES = {cls.__name__: cls for cls in (Dense, Activation, Dropout, BatchNorm)}


def from_config(config: Mapping[str, Any]) -> Layer:
    """A layer from its ``get_config()`` dict."""
    name = config.get("class") if isinstance(config, dict) else None
    if name not in LAYER_CLASSES:
        raise ValueError(f"layer config: unknown layer class {name!r}")
    return LAYER_CLASSES[name].from_config(config)


def widths(layers: Sequence[Layer], input_dim: int) -> list[int]:
    """[input_dim, width after layer 0, width after layer 1, ...]."""
    out = [input_dim]
    for layer in layers:
        out.append(layer.output_width(out[-1]))
    return out


def weight_shapes(layers: Sequence[Layer], input_dim: int) -> list[tuple[str, tuple[int, ...]]]:
    """(role, shape) of each array get_weights returns, in its order, from the architecture
    alone (fastnn.load compares it with a file before allocating anything)."""
    w = widths(layers, input_dim)
    return [(role, (fin, fout) if ROLES[role].matrix else (fout,))
            for layer, fin, fout in zip(layers, w, w[1:]) for role in layer.weight_roles()]


def weight_roles(layers: Sequence[Layer]) -> list[str]:
    """The role of each array get_weights returns ("kernel", "bias", "gamma", ...)."""
    return [role for layer in layers for role in layer.weight_roles()]


def trainable_count(layers: Sequence[Layer], input_dim: int) -> int:
    """The number of values the optimizer trains (running statistics are not trained)."""
    return sum(math.prod(shape) for role, shape in weight_shapes(layers, input_dim)
               if ROLES[role].trainable)
