"""Layers: descriptions of what a model computes. The math runs in the C++ engine; a layer holds
its hyper-parameters, checks them, and knows how to describe itself to the engine and to a saved
file (``get_config`` / ``from_config``)."""

import numbers

from fastnn._checks import finite_real, flag

# Activations a Dense or Activation layer may name. softmax is only the output link of a
# classifier (the last layer, with the softmax cross-entropy loss).
ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus",
               "step", "softmax")
INITIALIZERS = ("auto", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                "lecun_uniform", "lecun_normal", "zeros", "ones")
# "auto" picks He for the ReLU family (their half-zero outputs halve the variance), Glorot else.
RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu")


def _activation_name(activation):
    if activation is None:
        return "linear"
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected None or one of {', '.join(ACTIVATIONS)}, "
                         f"got {activation!r}")
    return activation


def _non_negative(value, name):
    value = finite_real(value, name)
    if value < 0:
        raise ValueError(f"{name}: expected a number >= 0, got {value}")
    return value


class Layer:
    """Base class. ``name`` is set by the model (``dense_0``, ``batch_norm_1``, ...)."""

    kind = None

    def __init__(self):
        self.name = None

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("class", None)
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "class")
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """``y = act(x @ W + b)`` with ``W`` of shape (in_features, units).

    l1, l2: penalty ``l1 * sum(abs(W)) + l2 * sum(W**2)`` added to the loss (kernel only).
    kernel_initializer: "auto" (He for relu-like activations, Glorot otherwise) or a name of
    `fastnn.ops.init_weights`. The bias starts at zero.
    negative_slope / alpha: parameters of leaky_relu / elu.
    """

    kind = "dense"

    def __init__(self, units, activation=None, l1=0.0, l2=0.0, kernel_initializer="auto",
                 use_bias=True, negative_slope=0.01, alpha=1.0):
        super().__init__()
        if isinstance(units, bool) or not isinstance(units, numbers.Integral):
            raise TypeError(f"units: expected an int, got {type(units).__name__}")
        if units <= 0:
            raise ValueError(f"units: expected a positive number of units, got {units}")
        self.units = int(units)
        self.activation = _activation_name(activation)
        self.l1 = _non_negative(l1, "l1")
        self.l2 = _non_negative(l2, "l2")
        if kernel_initializer not in INITIALIZERS:
            raise ValueError(f"kernel_initializer: expected one of {', '.join(INITIALIZERS)}, "
                             f"got {kernel_initializer!r}")
        self.kernel_initializer = kernel_initializer
        self.use_bias = flag(use_bias, "use_bias")
        self.negative_slope = finite_real(negative_slope, "negative_slope")
        self.alpha = _non_negative(alpha, "alpha")

    def initializer(self):
        if self.kernel_initializer != "auto":
            return self.kernel_initializer
        return "he_uniform" if self.activation in RELU_LIKE else "glorot_uniform"

    def act_param(self):
        return {"leaky_relu": self.negative_slope, "elu": self.alpha}.get(self.activation, 0.0)

    def get_config(self):
        return {"class": "Dense", "units": self.units, "activation": self.activation,
                "l1": self.l1, "l2": self.l2, "kernel_initializer": self.kernel_initializer,
                "use_bias": self.use_bias, "negative_slope": self.negative_slope,
                "alpha": self.alpha}


class Activation(Layer):
    """An activation on its own: ``Activation("relu")``."""

    kind = "activation"

    def __init__(self, activation, negative_slope=0.01, alpha=1.0):
        super().__init__()
        self.activation = _activation_name(activation)
        self.negative_slope = finite_real(negative_slope, "negative_slope")
        self.alpha = _non_negative(alpha, "alpha")

    def act_param(self):
        return {"leaky_relu": self.negative_slope, "elu": self.alpha}.get(self.activation, 0.0)

    def get_config(self):
        return {"class": "Activation", "activation": self.activation,
                "negative_slope": self.negative_slope, "alpha": self.alpha}


class Dropout(Layer):
    """Inverted dropout in training (each unit zeroed with probability ``rate``, the rest scaled
    by 1 / (1 - rate)); the identity in evaluate and predict."""

    kind = "dropout"

    def __init__(self, rate):
        super().__init__()
        rate = finite_real(rate, "rate")
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate: expected a probability in [0, 1), got {rate}")
        self.rate = rate

    def get_config(self):
        return {"class": "Dropout", "rate": self.rate}


class BatchNorm(Layer):
    """Per-feature batch normalization as ``torch.nn.BatchNorm1d``: batch statistics (biased
    variance) in training, running statistics in inference, updated as
    ``running = (1 - momentum) * running + momentum * batch`` (unbiased variance)."""

    kind = "batch_norm"

    def __init__(self, momentum=0.1, eps=1e-5):
        super().__init__()
        momentum = finite_real(momentum, "momentum")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1], got {momentum}")
        eps = finite_real(eps, "eps")
        if eps <= 0:
            raise ValueError(f"eps: expected a positive number, got {eps}")
        self.momentum = momentum
        self.eps = eps

    def get_config(self):
        return {"class": "BatchNorm", "momentum": self.momentum, "eps": self.eps}


LAYER_CLASSES = {cls.__name__: cls for cls in (Dense, Activation, Dropout, BatchNorm)}


def from_config(config):
    """A layer from its ``get_config()`` dict."""
    name = config.get("class") if isinstance(config, dict) else None
    if name not in LAYER_CLASSES:
        raise ValueError(f"layer config: unknown layer class {name!r}")
    return LAYER_CLASSES[name].from_config(config)
