"""fastnn.from_torch: a fastnn.Sequential from a PyTorch stack of Linear, activation, BatchNorm1d
and Dropout modules, with the same weights and the same outputs as the module in eval mode.

Accepted: ``torch.nn.Sequential`` (nested ones are flattened) or one such module on its own.
Linear -> Dense (an activation module right after a Linear becomes that Dense's activation;
elsewhere an Activation layer); ReLU, LeakyReLU, Sigmoid, Tanh, GELU (approximate="none"), ELU,
Softplus (beta=1, threshold >= 20) and, as the last module only, Softmax(dim=-1 or 1) -> their
fastnn activations (fastnn/torch_export.py's table); BatchNorm1d (with running statistics, a
momentum, affine or not) -> BatchNorm with its running statistics; Dropout -> Dropout; Identity ->
nothing. Anything else raises ValueError naming the module, since a module fastnn cannot compute
exactly would give other outputs without a word. Parameters must all be float32 or all float64
(the model's dtype). The model comes back uncompiled: ``predict`` works at once, and a final
Softmax or Sigmoid makes it the classifier's link, as compile with the matching loss expects."""

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from fastnn import layers as layers_mod
from fastnn._export_steps import TORCH_NAMES, from_torch_layout
from fastnn.model import Sequential
from fastnn.torch_export import TORCH_ACTIVATIONS, import_torch

# torch.nn class name -> fastnn activation, from the one table both directions use.
_ACTIVATION_OF = {cls: act for act, (cls, _) in TORCH_ACTIVATIONS.items()}
_SUPPORTED = ("Sequential", "Linear", "BatchNorm1d", "Dropout", "Identity",
              *_ACTIVATION_OF)


def _flatten(torch: Any, module: Any, where: str) -> List[Tuple[str, Any]]:
    """(path, leaf module) of a Sequential, nested ones included, in order."""
    if type(module) is not torch.nn.Sequential:  # a subclass may change forward: a leaf
        return [(where, module)]
    out = []
    for name, child in module.named_children():
        out += _flatten(torch, child, f"{where}.{name}" if where else name)
    return out


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()


def _activation_options(module: Any, act: str, where: str) -> Dict[str, Any]:
    """The fastnn arguments of an activation module, or ValueError for settings fastnn's formula
    does not have."""
    if act == "gelu" and module.approximate != "none":
        raise ValueError(f"module {where}: GELU(approximate={module.approximate!r}) has no "
                         f"fastnn equivalent (fastnn's gelu is the exact erf form)")
    if act == "softplus" and (module.beta != 1 or module.threshold < 20):
        raise ValueError(f"module {where}: Softplus(beta={module.beta}, threshold="
                         f"{module.threshold}) has no fastnn equivalent (fastnn's softplus is "
                         f"log(1 + exp(x)): beta=1, threshold >= 20)")
    if act == "softmax" and module.dim not in (-1, 1):
        raise ValueError(f"module {where}: Softmax(dim={module.dim}) has no fastnn equivalent "
                         f"(fastnn's softmax runs over the features: dim=-1 or 1)")
    if act == "elu" and module.alpha < 0:
        raise ValueError(f"module {where}: ELU(alpha={module.alpha}): fastnn's elu needs "
                         f"alpha >= 0")
    _, args = TORCH_ACTIVATIONS[act]
    return {option: float(getattr(module, arg)) for arg, option in args.items()}


def _batch_norm(module: Any, where: str) -> Tuple[Any, Dict[str, np.ndarray]]:
    if module.running_mean is None or module.running_var is None:
        raise ValueError(f"module {where}: BatchNorm1d(track_running_stats=False) has no "
                         f"running statistics; fastnn's BatchNorm predicts from them")
    if module.momentum is None:
        raise ValueError(f"module {where}: BatchNorm1d(momentum=None) (a cumulative average) has "
                         f"no fastnn equivalent; set a momentum (PyTorch's default is 0.1)")
    n = module.num_features
    ones = np.ones(n, _numpy(module.running_mean).dtype)
    arrays = {"weight": _numpy(module.weight) if module.affine else ones,
              "bias": _numpy(module.bias) if module.affine else 0 * ones,
              "running_mean": _numpy(module.running_mean),
              "running_var": _numpy(module.running_var)}
    return layers_mod.BatchNorm(momentum=module.momentum, eps=module.eps), arrays


def _width_in(module: Any) -> Optional[int]:
    """The number of features the module takes, for those that fix it."""
    name = type(module).__name__
    return {"Linear": getattr(module, "in_features", None),
            "BatchNorm1d": getattr(module, "num_features", None)}.get(name)


def _add_leaf(torch: Any, leaf: Any, where: str, is_last: bool, layers: List[Any],
              arrays: List[Tuple[str, np.ndarray]]) -> None:
    """Append the fastnn layer of one leaf module to `layers` (or fold an activation into the
    Dense before it) and its arrays, as (role, get_weights layout), to `arrays`."""
    cls = type(leaf).__name__
    if cls == "Identity":
        return
    if cls == "Linear":
        layer = layers_mod.Dense(leaf.out_features, use_bias=leaf.bias is not None)
        own = {"weight": _numpy(leaf.weight)}
        if leaf.bias is not None:
            own["bias"] = _numpy(leaf.bias)
    elif cls == "BatchNorm1d":
        layer, own = _batch_norm(leaf, where)
    elif cls == "Dropout":
        layer, own = layers_mod.Dropout(leaf.p), {}
    else:
        act = _ACTIVATION_OF[cls]
        if act == "softmax" and not is_last:
            raise ValueError(f"module {where}: Softmax is only supported as the last module "
                             f"(fastnn's softmax is the classifier's output link)")
        options = _activation_options(leaf, act, where)
        last = layers[-1] if layers else None
        if last is not None and last.kind == "dense" and last.activation == "linear":
            # The Dense's own activation: the model reads as the stack was meant.
            layers[-1] = layers_mod.Dense(last.units, act, use_bias=last.use_bias, **options)
        else:
            layers.append(layers_mod.Activation(act, **options))
        return
    layers.append(layer)
    arrays += [(role, from_torch_layout(role, own[TORCH_NAMES[role]]))
               for role in layer.weight_roles()]


def from_torch(module: Any) -> Sequential:
    """A fastnn.Sequential with the module's weights that predicts what the module computes in
    eval mode (see the module's doc for what is accepted)."""
    torch = import_torch("from_torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    leaves = [(w or "<module>", m) for w, m in _flatten(torch, module, "")]
    layers: List[Any] = []
    arrays: List[Tuple[str, np.ndarray]] = []
    input_dim: Optional[int] = None
    width: Optional[int] = None
    for i, (where, leaf) in enumerate(leaves):
        cls = type(leaf).__name__
        if cls not in _SUPPORTED or type(leaf) is not getattr(torch.nn, cls):
            # Subclasses of supported modules may compute anything in forward: refused too.
            raise ValueError(f"module {where}: {type(leaf).__module__}.{cls} is not supported "
                             f"by from_torch; it converts torch.nn {', '.join(_SUPPORTED)}")
        fixed = _width_in(leaf)
        if fixed is not None:
            if width is not None and fixed != width:
                raise ValueError(f"module {where}: {cls} takes {fixed} features, the modules "
                                 f"before it give {width}")
            input_dim = fixed if input_dim is None else input_dim
            width = leaf.out_features if cls == "Linear" else fixed
        try:
            _add_leaf(torch, leaf, where, i == len(leaves) - 1, layers, arrays)
        except ValueError as e:  # a setting fastnn's layer refuses (Dropout(p=1), eps=0, ...)
            if str(e).startswith("module "):
                raise
            raise ValueError(f"module {where}: {cls}: {e}") from None
    if input_dim is None:
        raise ValueError("module: from_torch takes the number of input features from the first "
                         "Linear or BatchNorm1d, and the module has none")
    dtypes = {w.dtype for _, w in arrays}
    if not dtypes <= {np.dtype(np.float32), np.dtype(np.float64)} or len(dtypes) > 1:
        raise ValueError(f"module: parameters must be all float32 or all float64, got "
                         f"{', '.join(sorted(str(d) for d in dtypes))} (convert with .float() "
                         f"or .double())")
    model = Sequential(layers, input_dim=input_dim, dtype=dtypes.pop())
    model.set_weights([w for _, w in arrays])
    return model
