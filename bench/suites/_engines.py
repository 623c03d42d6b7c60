"""The inference engines of the `infer` suite, each built from the same fastnn model's weights and
wrapped as ``predict(X: float32 ndarray) -> softmax probabilities ndarray``. An engine that cannot
be built here (peer not installed, fastnn feature not in this build) carries a note instead of a
predict function; nothing in this file raises for that."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from bench.suites._mlp import fastnn_model, layer_shapes, torch_model

NOT_IN_BUILD = "n/a (not in this build)"


@dataclass
class Engine:
    name: str
    predict: Callable | None
    note: str = ""
    detail: str = ""            # why it is missing, for the JSON
    exact: bool = True          # fp32 arithmetic: checked against the oracle at fp32 tolerance
    weight_bytes: float = 4.0   # bytes per kernel weight that a batch-1 call must read


class _Missing(Exception):
    """The engine cannot be built here; args: the row's note, then optionally why (for the JSON)."""


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:60] if text else ''}"


# ------------------------------------------------------------------ fastnn
def _fastnn_fp32(model, widths, weights, tmp, threads):
    return lambda X: model.predict(X)


# The two below start working when the bf16 / int8 work lands: they only try the public API.
def _fastnn_bf16(model, widths, weights, tmp, threads):
    try:
        m = fastnn_model(widths, precision="bf16")
        m.set_weights(weights)
        m.predict(np.zeros((1, widths[0]), np.float32))
    except (ValueError, TypeError, NotImplementedError, RuntimeError) as exc:
        raise _Missing(NOT_IN_BUILD, _first_line(exc)) from exc
    return lambda X: m.predict(X)


def _fastnn_int8(model, widths, weights, tmp, threads):
    import fastnn

    quantize = getattr(fastnn, "quantize", None)
    if quantize is None:
        raise _Missing(NOT_IN_BUILD, "no fastnn.quantize")
    q = quantize(model)
    return lambda X: q.predict(X)


# ------------------------------------------------------------------ ONNX Runtime
def _onnx_graph(widths, weights):
    """MatMul/Add/Relu per hidden layer, MatMul/Add/Softmax last; batch dimension symbolic."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise _Missing("onnx not installed") from exc
    nodes, inits, h = [], [], "X"
    n_layers = len(layer_shapes(widths))
    for i, (w, b) in enumerate(zip(weights[0::2], weights[1::2])):
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("MatMul", [h, f"W{i}"], [f"mm{i}"]))
        nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"z{i}"]))
        last = i == n_layers - 1
        out = "Y" if last else f"h{i}"
        nodes.append(helper.make_node("Softmax", [f"z{i}"], [out], axis=1) if last
                     else helper.make_node("Relu", [f"z{i}"], [out]))
        h = out
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", widths[0]])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", widths[-1]])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _ort_session(path, threads):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise _Missing("onnxruntime not installed") from exc
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return lambda X: sess.run(None, {"X": X})[0]


def _fp32_onnx_path(widths, weights, tmp):
    try:
        import onnx
    except ImportError as exc:
        raise _Missing("onnx not installed") from exc
    path = os.path.join(tmp, f"mlp_{'-'.join(map(str, widths))}.onnx")
    if not os.path.exists(path):
        onnx.save(_onnx_graph(widths, weights), path)
    return path


def _ort_fp32(model, widths, weights, tmp, threads):
    return _ort_session(_fp32_onnx_path(widths, weights, tmp), threads)


def _ort_int8(model, widths, weights, tmp, threads):
    path = _fp32_onnx_path(widths, weights, tmp)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise _Missing("onnxruntime.quantization not available") from exc
    qpath = path.replace(".onnx", "_int8.onnx")
    # quantize_dynamic warns through the root logger that pre-processing may help (it cannot
    # for MatMul/Add); keep the table readable.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(path, qpath, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return _ort_session(qpath, threads)


# ------------------------------------------------------------------ PyTorch
def _torch(threads):
    try:
        import torch
    except ImportError as exc:
        raise _Missing("torch not installed") from exc
    torch.set_num_threads(threads)
    return torch


def torch_qengine() -> str:
    try:
        import torch
    except ImportError:
        return "n/a"
    return torch.backends.quantized.engine


def _torch_runner(torch, module, autocast: bool = False):
    def run(X):
        with torch.inference_mode():
            x = torch.from_numpy(X)
            if autocast:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits = module(x)
                logits = logits.float()
            else:
                logits = module(x)
            return torch.softmax(logits, dim=1).numpy()
    return run


def _torch_fp32(model, widths, weights, tmp, threads):
    torch = _torch(threads)
    return _torch_runner(torch, torch_model(torch, widths, weights).eval())


def _torch_bf16(model, widths, weights, tmp, threads):
    torch = _torch(threads)
    return _torch_runner(torch, torch_model(torch, widths, weights).eval(), autocast=True)


def _torch_int8(model, widths, weights, tmp, threads):
    torch = _torch(threads)
    # torch 2.13 marks torch.ao.quantization deprecated (moving to torchao) but it is what a
    # PyTorch CPU user has today; the warning would only clutter the table.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        q = torch.ao.quantization.quantize_dynamic(torch_model(torch, widths, weights).eval(),
                                                   {torch.nn.Linear}, dtype=torch.qint8)
    return _torch_runner(torch, q)


# name, builder, exact (fp32 arithmetic), bytes per weight read at batch 1
_BUILDERS = (
    ("fastnn fp32", _fastnn_fp32, True, 4),
    ("fastnn bf16", _fastnn_bf16, False, 2),
    ("fastnn int8", _fastnn_int8, False, 1),
    ("ORT fp32", _ort_fp32, True, 4),
    ("ORT int8", _ort_int8, False, 1),
    ("torch fp32", _torch_fp32, True, 4),
    # autocast casts the fp32 weights to bf16 on every call: it still reads 4 bytes per weight
    ("torch bf16 autocast", _torch_bf16, False, 4),
    ("torch int8 dynamic", _torch_int8, False, 1),
)


ENGINE_NAMES = tuple(name for name, *_ in _BUILDERS)


def build(name, model, widths, weights, tmp, threads) -> Engine:
    """The engine called ``name`` (one of ENGINE_NAMES), or its note when it cannot run here."""
    _, builder, exact, nbytes = next(b for b in _BUILDERS if b[0] == name)
    predict, note, detail = None, "", ""
    try:
        predict = builder(model, widths, weights, tmp, threads)
    except _Missing as exc:
        note, detail = exc.args[0], " ".join(exc.args[1:])
    except Exception as exc:  # a peer (or a new fastnn path) that breaks: say so, go on
        note = f"failed: {_first_line(exc)}"
    return Engine(name, predict, note, detail, exact, nbytes)


def build_all(model, widths, weights, tmp, threads) -> list[Engine]:
    return [build(name, model, widths, weights, tmp, threads) for name in ENGINE_NAMES]
