"""Sequential.export_onnx: the model as an ONNX file that computes what ``predict`` returns.

The graph has one input ``input`` (batch, input_dim) and one output ``output`` (batch, outputs),
the batch dimension dynamic, in the model's dtype (float32 or float64). It is written for opset
17 (IR version 8), which ONNX Runtime, TensorRT and OpenVINO of the last years read. Per step of
fastnn/_export_steps.py:

- Dense: ``Gemm(x, weight, bias, transB=1)`` with ``<layer>.weight`` stored (units, inputs) as
  PyTorch stores it, so that the file's initializers carry the state-dict names.
- BatchNorm: ``BatchNormalization`` with the running statistics and eps (inference form).
- Dropout: nothing (the identity in predict).
- Activations, exactly fastnn's formulas: relu ``Relu``; leaky_relu ``PRelu`` with the slope as a
  tensor of the model's dtype (LeakyRelu's ``alpha`` attribute is float32 by the ONNX spec:
  a float64 model would lose its slope's digits); sigmoid ``Sigmoid``; tanh ``Tanh``; gelu, the
  exact (erf) form: ``x * 0.5 * (1 + Erf(x / sqrt(2)))``; elu and softplus ``Elu`` / ``Softplus``
  in float32, and in float64 as ``Where(x > 0, x, alpha * (Exp(Min(x, 0)) - 1))`` and
  ``Relu(x) + Log(1 + Exp(-|x|))`` (ONNX Runtime has no float64 kernel for Elu or Softplus, and
  Elu's alpha would be float32); step ``Relu(Sign(x))``; softmax ``Softmax(axis=-1)``.
- The loss's link, when predict applies it after the last layer: ``Softmax`` or ``Sigmoid``.

ONNX Runtime 1.x has no float64 ``Erf``: a float64 model with gelu is a valid file that it cannot
run (the ONNX reference evaluator and other runtimes can). BatchNormalization's epsilon is a
float32 attribute by the spec: in a float64 model eps carries float32's digits (1e-5 becomes
1e-5 * (1 - 2.5e-8): a relative change of the outputs below 1e-12 for variances near 1)."""

import math
import os
from typing import Any, Callable, Dict, List

import numpy as np

from fastnn._export_steps import Step, model_steps
from fastnn._optional import require

OPSET = 17
IR_VERSION = 8  # the IR version of opset 17's release (onnx 1.12): older readers accept it


class _Graph:
    """The nodes and initializers of the graph being built, each output a fresh name."""

    def __init__(self, helper: Any, numpy_helper: Any, dtype: np.dtype) -> None:
        self.helper, self.numpy_helper, self.dtype = helper, numpy_helper, dtype
        self.nodes: List[Any] = []
        self.initializers: List[Any] = []
        self._count = 0

    def const(self, name: str, value: Any) -> str:
        """An initializer holding `value` in the model's dtype."""
        array = np.asarray(value, dtype=self.dtype)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: List[str], name: str, **attrs: Any) -> str:
        """Append a node; its output's name."""
        self._count += 1
        out = f"{name}/{op_type}_{self._count}"
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _relu(g: _Graph, x: str, s: Step) -> str:
    return g.op("Relu", [x], s.name)


def _leaky_relu(g: _Graph, x: str, s: Step) -> str:
    return g.op("PRelu", [x, g.const(f"{s.name}.negative_slope", [s.options["negative_slope"]])],
                s.name)


def _sigmoid(g: _Graph, x: str, s: Step) -> str:
    return g.op("Sigmoid", [x], s.name)


def _tanh(g: _Graph, x: str, s: Step) -> str:
    return g.op("Tanh", [x], s.name)


def _gelu(g: _Graph, x: str, s: Step) -> str:
    # x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2: the exact GELU, as fastnn's.
    erf = g.op("Erf", [g.op("Div", [x, g.const(f"{s.name}.sqrt2", math.sqrt(2.0))], s.name)],
               s.name)
    phi = g.op("Mul", [g.op("Add", [erf, g.const(f"{s.name}.one", 1.0)], s.name),
                       g.const(f"{s.name}.half", 0.5)], s.name)
    return g.op("Mul", [x, phi], s.name)


def _elu(g: _Graph, x: str, s: Step) -> str:
    alpha = s.options["alpha"]
    if g.dtype == np.float32:
        return g.op("Elu", [x], s.name, alpha=alpha)
    zero = g.const(f"{s.name}.zero", 0.0)
    # Min(x, 0) keeps Exp finite in the branch that Where does not take.
    em1 = g.op("Sub", [g.op("Exp", [g.op("Min", [x, zero], s.name)], s.name),
                       g.const(f"{s.name}.one", 1.0)], s.name)
    negative = g.op("Mul", [em1, g.const(f"{s.name}.alpha", alpha)], s.name)
    return g.op("Where", [g.op("Greater", [x, zero], s.name), x, negative], s.name)


def _softplus(g: _Graph, x: str, s: Step) -> str:
    if g.dtype == np.float32:
        return g.op("Softplus", [x], s.name)
    # max(x, 0) + log(1 + exp(-|x|)): no overflow for any x, as fastnn's.
    tail = g.op("Exp", [g.op("Neg", [g.op("Abs", [x], s.name)], s.name)], s.name)
    log1p = g.op("Log", [g.op("Add", [tail, g.const(f"{s.name}.one", 1.0)], s.name)], s.name)
    return g.op("Add", [g.op("Relu", [x], s.name), log1p], s.name)


def _step(g: _Graph, x: str, s: Step) -> str:
    # sign(x) is -1, 0 or 1: its positive part is the step, 1 exactly where x > 0.
    return g.op("Relu", [g.op("Sign", [x], s.name)], s.name)


def _softmax(g: _Graph, x: str, s: Step) -> str:
    return g.op("Softmax", [x], s.name, axis=-1)


def _linear(g: _Graph, x: str, s: Step) -> str:
    inputs = [x] + [g.const(f"{s.name}.{key}", s.arrays[key]) for key in ("weight", "bias")
                    if key in s.arrays]
    return g.op("Gemm", inputs, s.name, transB=1)


def _batch_norm(g: _Graph, x: str, s: Step) -> str:
    inputs = [x] + [g.const(f"{s.name}.{key}", s.arrays[key])
                    for key in ("weight", "bias", "running_mean", "running_var")]
    return g.op("BatchNormalization", inputs, s.name, epsilon=s.options["eps"])


def _dropout(g: _Graph, x: str, s: Step) -> str:
    return x


_WRITERS: Dict[str, Callable[[_Graph, str, Step], str]] = {
    "linear": _linear, "batch_norm": _batch_norm, "dropout": _dropout, "relu": _relu,
    "leaky_relu": _leaky_relu, "sigmoid": _sigmoid, "tanh": _tanh, "gelu": _gelu, "elu": _elu,
    "softplus": _softplus, "step": _step, "softmax": _softmax}


def to_onnx(model: Any) -> Any:
    """The model as an ``onnx.ModelProto`` (checked by onnx's checker)."""
    onnx = require("onnx", "onnx", "export_onnx")
    from onnx import helper, numpy_helper

    dtype = np.dtype(model.dtype)
    g = _Graph(helper, numpy_helper, dtype)
    x = "input"
    for step in model_steps(model):
        x = _WRITERS[step.kind](g, x, step)
    if g.nodes:
        # The last node writes the graph's output directly (no trailing Identity).
        g.nodes[-1].output[0] = "output"
    else:  # nothing but Dropout: the output is the input
        g.nodes.append(helper.make_node("Identity", [x], ["output"], name="output"))
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    graph = helper.make_graph(
        g.nodes, "fastnn", [helper.make_tensor_value_info("input", elem, ["batch", model.input_dim])],
        [helper.make_tensor_value_info("output", elem, ["batch", model.output_dim])],
        g.initializers)
    from fastnn import __version__

    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="fastnn", producer_version=__version__,
                              ir_version=IR_VERSION)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: Any, path: "str | os.PathLike[str]") -> None:
    """Write `model` (a fastnn.Sequential) to `path` as an ONNX file (see the module's doc)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path (str or os.PathLike), got "
                        f"{type(path).__name__}")
    proto = to_onnx(model)
    onnx = require("onnx", "onnx", "export_onnx")
    onnx.save_model(proto, os.fspath(path))
