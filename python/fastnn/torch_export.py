"""Sequential.to_torch: the model as a ``torch.nn.Sequential`` with the same weights and outputs.

One module per step of fastnn/_export_steps.py, named as the step (``dense_0``, ``dense_0_relu``,
``batch_norm_0``, ``dropout_0``, ``link_softmax``), so the state dict's keys are
``dense_0.weight``, ``dense_0.bias``, ``batch_norm_0.running_mean``, ... -- the names
Sequential.load_weights reads back. The module is returned in eval mode (BatchNorm uses its
running statistics, Dropout is the identity), in the model's dtype, on the CPU: its outputs are
``predict``'s. Its last module is the loss's link when predict applies one (Softmax for the
softmax cross-entropy, Sigmoid for the binary one): drop it (``module[:-1]``) for the logits.

The activations map onto PyTorch's modules with the same formulas: ReLU, LeakyReLU(slope),
Sigmoid, Tanh, GELU (exact erf form), ELU(alpha), Softplus (beta 1, threshold 20: above 20 it
returns x, which differs from log(1 + exp(x)) by less than exp(-20) = 2e-9, below float32's
resolution there), Softmax(dim=-1). fastnn's ``step`` has no PyTorch module: exporting it raises
ValueError."""

from collections import OrderedDict
from typing import Any, Callable, Dict, Tuple

import numpy as np

from fastnn._export_steps import Step, model_steps
from fastnn._optional import require

# fastnn's activation -> (torch.nn class name, {its argument: Step option}). fastnn.from_torch
# reads the same table the other way.
TORCH_ACTIVATIONS: Dict[str, Tuple[str, Dict[str, str]]] = {
    "relu": ("ReLU", {}),
    "leaky_relu": ("LeakyReLU", {"negative_slope": "negative_slope"}),
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "gelu": ("GELU", {}),
    "elu": ("ELU", {"alpha": "alpha"}),
    "softplus": ("Softplus", {}),
    "softmax": ("Softmax", {}),
}


def import_torch(what: str) -> Any:
    """The torch module, or ImportError with the line that installs it."""
    return require("torch", "torch", what)


def _tensor(torch: Any, array: np.ndarray) -> Any:
    return torch.from_numpy(np.array(array, copy=True))


def _linear(torch: Any, s: Step, inputs: int) -> Any:
    weight = s.arrays["weight"]
    module = torch.nn.Linear(inputs, s.width, bias="bias" in s.arrays, dtype=_dtype(torch, weight))
    with torch.no_grad():
        module.weight.copy_(_tensor(torch, weight))
        if "bias" in s.arrays:
            module.bias.copy_(_tensor(torch, s.arrays["bias"]))
    return module


def _batch_norm(torch: Any, s: Step, inputs: int) -> Any:
    module = torch.nn.BatchNorm1d(s.width, eps=s.options["eps"], momentum=s.options["momentum"],
                                  dtype=_dtype(torch, s.arrays["weight"]))
    with torch.no_grad():
        for key in ("weight", "bias", "running_mean", "running_var"):
            getattr(module, key).copy_(_tensor(torch, s.arrays[key]))
    return module


def _dropout(torch: Any, s: Step, inputs: int) -> Any:
    return torch.nn.Dropout(s.options["rate"])


def _activation(torch: Any, s: Step, inputs: int) -> Any:
    if s.kind not in TORCH_ACTIVATIONS:
        raise ValueError(f"{s.name}: the {s.kind!r} activation has no PyTorch module with the "
                         f"same formula; to_torch covers {', '.join(TORCH_ACTIVATIONS)}")
    cls, args = TORCH_ACTIVATIONS[s.kind]
    kwargs = {arg: s.options[option] for arg, option in args.items()}
    if s.kind == "softmax":
        kwargs["dim"] = -1
    return getattr(torch.nn, cls)(**kwargs)


def _dtype(torch: Any, array: np.ndarray) -> Any:
    return torch.float64 if array.dtype == np.float64 else torch.float32


_BUILDERS: Dict[str, Callable[[Any, Step, int], Any]] = {
    "linear": _linear, "batch_norm": _batch_norm, "dropout": _dropout}


def to_torch(model: Any) -> Any:
    """A torch.nn.Sequential computing model.predict (see the module's doc)."""
    torch = import_torch("to_torch")
    modules: "OrderedDict[str, Any]" = OrderedDict()
    width = model.input_dim
    for step in model_steps(model):
        modules[step.name] = _BUILDERS.get(step.kind, _activation)(torch, step, width)
        width = step.width
    return torch.nn.Sequential(modules).eval()
