"""A model as the plain steps that every exporter writes (ONNX graph, PyTorch modules), and the
names and layouts of its arrays there (PyTorch's state-dict names, which load_weights reads back).

Each Dense becomes a linear step followed by its activation step, each BatchNorm one step in its
inference form, each Dropout a step the exporters may drop (the identity in predict), and the
loss's link, when predict applies it beyond the last layer, a last activation step: the steps
compute exactly what ``predict`` returns.

Names: a layer's step has the layer's name (``dense_0``, ``batch_norm_1``); the activation of a
Dense is ``<dense name>_<activation>``; the link is ``link_<activation>``. Arrays are stored as
PyTorch keeps them: ``dense_0.weight`` is the kernel transposed, (units, inputs), ``dense_0.bias``,
``batch_norm_0.weight`` / ``.bias`` / ``.running_mean`` / ``.running_var`` (gamma, beta and the
running statistics). This module imports no model class: the model is passed in."""

from typing import Any, Dict, List, NamedTuple, Tuple

import numpy as np

from fastnn import layers as layers_mod
from fastnn._model_device import to_host

# get_weights' roles -> the parameter name PyTorch's module gives the same array.
TORCH_NAMES = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
               "running_mean": "running_mean", "running_var": "running_var"}
# Roles stored transposed: a fastnn kernel is (inputs, units), torch.nn.Linear's weight is
# (units, inputs).
TRANSPOSED = ("kernel",)


class Step(NamedTuple):
    """One operation of the exported model.

    kind: "linear", "batch_norm", "dropout", or an activation name of fastnn.layers.ACTIVATIONS
    (never "linear": the identity is no step). arrays: by PyTorch's parameter name, in its
    layout. options: "negative_slope" (leaky_relu), "alpha" (elu), "eps" and "momentum"
    (batch_norm), "rate" (dropout). width: the number of features out."""

    kind: str
    name: str
    width: int
    arrays: Dict[str, np.ndarray]
    options: Dict[str, float]


def weight_names(model: Any) -> List[Tuple[str, str]]:
    """(state-dict key, role) of each array of model.get_weights(), in that order."""
    return [(f"{layer.name}.{TORCH_NAMES[role]}", role)
            for layer in model.layers for role in layer.weight_roles()]


def to_torch_layout(role: str, array: np.ndarray) -> np.ndarray:
    """A get_weights array as PyTorch stores it (C-contiguous)."""
    return np.ascontiguousarray(array.T if role in TRANSPOSED else array)


def from_torch_layout(role: str, array: np.ndarray) -> np.ndarray:
    """The get_weights array of a state-dict array (the inverse of to_torch_layout)."""
    return array.T if role in TRANSPOSED else array


def state_dict(model: Any) -> Dict[str, np.ndarray]:
    """The model's arrays by state-dict key, in PyTorch's layout and the model's dtype."""
    weights = [np.asarray(to_host(w)) for w in model.get_weights()]
    return {key: to_torch_layout(role, w) for (key, role), w in zip(weight_names(model), weights)}


def _activation_step(layer: Any, name: str, width: int) -> List[Step]:
    """The step of a Dense's or an Activation's activation; none for "linear"."""
    act = layer.activation
    if act == "linear":
        return []
    options = {"leaky_relu": {"negative_slope": layer.negative_slope},
               "elu": {"alpha": layer.alpha}}.get(act, {})
    return [Step(act, name, width, {}, options)]


def model_steps(model: Any) -> List[Step]:
    """The steps that compute model.predict's outputs, first to last."""
    arrays = iter(state_dict(model).values())
    widths = layers_mod.widths(model.layers, model.input_dim)
    steps = []
    for layer, width in zip(model.layers, widths[1:]):
        own = {TORCH_NAMES[role]: next(arrays) for role in layer.weight_roles()}
        if layer.kind == "dense":
            steps.append(Step("linear", layer.name, width, own, {}))
            steps += _activation_step(layer, f"{layer.name}_{layer.activation}", width)
        elif layer.kind == "activation":
            steps += _activation_step(layer, layer.name, width)
        elif layer.kind == "batch_norm":
            steps.append(Step("batch_norm", layer.name, width, own,
                              {"eps": layer.eps, "momentum": layer.momentum}))
        elif layer.kind == "dropout":
            steps.append(Step("dropout", layer.name, width, own, {"rate": layer.rate}))
        else:
            raise ValueError(f"{layer.name}: a {type(layer).__name__} layer cannot be exported")
    link = model._output_link()
    if link is not None:
        steps.append(Step(link, f"link_{link}", widths[-1], {}, {}))
    return steps
