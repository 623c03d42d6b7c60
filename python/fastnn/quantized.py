"""int8 inference: ``fastnn.quantize(model)`` turns a trained `fastnn.Sequential` into a
`QuantizedModel` that predicts with int8 weights and int8 arithmetic.

The scheme (dynamic quantization, as ONNX Runtime's ``quantize_dynamic``, with finer scales):

- Weights: int8, symmetric, one scale per output channel: ``s_n = max_k |W[k, n]| / 127`` and
  ``Wq = round(W / s_n)`` in [-127, 127]. Done once, by `quantize`.
- Activations: quantized at every call, one scale and zero point per row (per sample), to
  unsigned 8 bits over the row's range widened to include 0 (so ReLU zeros are exact):
  ``lo = min(0, min x)``, ``hi = max(0, max x)``, ``scale = (hi - lo) / 255``,
  ``zero = round(-lo / scale)``, ``q = clamp(round(x / scale) + zero, 0, 255)``. Per row rather
  than per batch: a sample's prediction does not depend on the other samples it is sent with.
- Product: exact int32 sums of ``q * Wq`` -- ``vpdpbusd`` (AVX512_VNNI: unsigned x signed bytes,
  four products per int32 lane), else AVX2 (u16 x s16 ``vpmaddwd``, where ``vpmaddubsw`` would
  saturate), else scalar; the three give bit-identical sums. The zero point comes out through the
  weights' column sums: ``y[n] = scale * s_n * (sum_k q_k Wq[k, n] - zero * sum_k Wq[k, n]) + b[n]``.
  ``fastnn.set_simd`` picks the path as for every kernel ("avx512" uses VNNI where the CPU has it).
- In float32: the bias, every activation, the output link (softmax / sigmoid, as
  `Sequential.predict` applies it), and BatchNorm in its inference form, folded into the Dense
  before it when that one has no activation (a per-column factor: the per-channel scales absorb
  it exactly), else into the Dense after it, else run as a per-feature affine step. Dropout is
  the identity at inference and is dropped.

Layers take at most 66,311 inputs (int32 sums of 255 * 127 per input must not overflow).

A QuantizedModel never changes: any number of threads may predict at once. It saves to and loads
from the same safe format as Sequential (``model.save(path)``, ``fastnn.load(path)``; no pickle,
no code runs on load), and pickles, deep-copies and joblib-dumps through those bytes."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastnn import _C, io
from fastnn._checks import integer
from fastnn._model_data import as_features
from fastnn._typing import PathLike
from fastnn.layers import ACTIVATIONS
from fastnn.model import LINKS, Sequential

__all__ = ["quantize", "QuantizedModel"]

# The key in a file's metadata that marks an int8 model; its value describes the steps.
FORMAT_KEY = "fastnn_quantized"
# The widest layer input whose int32 sums cannot overflow (cpu/qgemm.h kMaxDepth).
MAX_INPUTS = (2**31 - 1) // (255 * 127)
_STEP_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a not in ("linear", "softmax")) + ("none",)
_LINKS = ("softmax", "sigmoid", "none")


def quantize(model: Sequential) -> QuantizedModel:
    """An int8 `QuantizedModel` of a CPU `fastnn.Sequential` (compiled or not): int8 weights with
    one scale per output channel, activations quantized per sample at each call (the module's
    docstring gives the scheme). The model is read once (a snapshot of its weights); later
    training does not change the quantized copy."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a fastnn.Sequential, got {type(model).__name__}")
    if str(model.device) != "cpu":
        raise ValueError(f"model: it lives on {model.device}; int8 inference runs on the CPU. "
                         f"Move it there first: model.save(path), then "
                         f"fastnn.load(path, device='cpu'), and quantize that model")
    loss = model.loss
    if loss is None:  # as Sequential.predict decides for a model never compiled
        last = getattr(model.layers[-1], "activation", None)
        loss = {"softmax": "softmax_cross_entropy",
                "sigmoid": "binary_cross_entropy"}.get(last, "mse")
    specs = model._engine_layers(loss)  # the last layer's activation left out when it is the link
    weights = iter(model.get_weights())
    steps = []
    width = model.input_dim
    for layer, spec in zip(model.layers, specs):
        arrays = [np.asarray(next(weights), np.float64) for _ in layer.weight_roles()]
        if not all(np.isfinite(a).all() for a in arrays):
            raise ValueError(f"model: {layer.name} has NaN or infinite weights (did training "
                             f"diverge?); they cannot be quantized")
        out = layer.output_width(width)
        _add_step(steps, spec, arrays, width, out, layer.name)
        width = out
    return QuantizedModel(model.input_dim, _fold_forward(steps), LINKS.get(loss, "none"),
                          source=model.get_config())


def _add_step(steps: list[dict[str, Any]], spec: dict[str, Any], arrays: list[NDArray[Any]],
              width: int, out: int, name: str) -> None:
    """Appends the float step of one layer to `steps`, folding into the step before it where
    that changes nothing (a BatchNorm or an activation after a Dense without activation)."""
    kind = spec["kind"]
    prev = steps[-1] if steps else None
    open_dense = prev is not None and prev["kind"] == "dense" and prev["activation"] == "none"
    if kind == "dense":
        bias = arrays[1] if len(arrays) > 1 else np.zeros(out)
        steps.append({"kind": "dense", "W": arrays[0], "b": bias, "activation": spec["activation"],
                      "act_param": spec["act_param"], "name": name})
    elif kind == "batch_norm":
        gamma, beta, mean, var = arrays
        s = gamma / np.sqrt(var + spec["eps"])
        t = beta - mean * s
        if open_dense:
            prev["W"], prev["b"] = prev["W"] * s, prev["b"] * s + t
        else:
            steps.append({"kind": "affine", "scale": s, "shift": t, "name": name})
    elif kind == "activation":
        if spec["activation"] == "none":
            return
        if open_dense:
            prev["activation"], prev["act_param"] = spec["activation"], spec["act_param"]
        else:
            steps.append({"kind": "activation", "activation": spec["activation"],
                          "act_param": spec["act_param"], "width": width, "name": name})
    # dropout: the identity at inference


def _fold_forward(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A BatchNorm (affine step) right before a Dense goes into that Dense's weights:
    (x * s + t) @ W + b = x @ (s[:, None] * W) + (t @ W + b)."""
    out = []
    for step in steps:
        if step["kind"] == "dense" and out and out[-1]["kind"] == "affine":
            affine = out.pop()
            step = dict(step, W=affine["scale"][:, None] * step["W"],
                        b=step["b"] + affine["shift"] @ step["W"])
        out.append(step)
    return out


def _quantize_weights(W: NDArray[Any], name: str) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
    """(int8 W, float32 per-column scales) of a float64 kernel (in, out)."""
    amax = np.abs(W).max(axis=0) if W.shape[0] else np.zeros(W.shape[1])
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    if not np.isfinite(scale).all():
        raise ValueError(f"model: {name}'s weights are too large for float32 scales")
    q = np.clip(np.rint(W / scale.astype(np.float64)), -127, 127).astype(np.int8)
    return q, scale


def _float32(a: ArrayLike, what: str) -> NDArray[np.float32]:
    a = np.asarray(a, np.float64)
    with np.errstate(over="ignore"):
        b = a.astype(np.float32)
    if not np.isfinite(b).all():
        raise ValueError(f"model: {what} overflows float32")
    return b


class QuantizedModel:
    """An int8 model made by `fastnn.quantize`: ``predict`` and ``predict_classes`` as
    `fastnn.Sequential`'s, ``save`` (read back by `fastnn.load`), ``summary``.

    ``steps`` describes what runs, in order: dense steps with their int8 kernel (``weight``),
    per-output-channel ``scale``, float32 ``bias``, ``activation`` and ``act_param``; affine
    steps (a BatchNorm that could not be folded: ``y = x * scale + shift``); activation steps.
    ``link`` is the output link predict applies ("softmax", "sigmoid" or "none")."""

    def __init__(self, input_dim: int, steps: Sequence[dict[str, Any]], link: str,
                 source: Mapping[str, Any] | None = None) -> None:
        # steps: float steps from quantize (dense W / b in float64), or quantized ones (a file).
        self.input_dim = integer(input_dim, "input_dim", 1)
        if link not in _LINKS:
            raise ValueError(f"link: expected one of {', '.join(_LINKS)}, got {link!r}")
        self.link = link
        self.source = source
        self.steps = [self._final_step(s) for s in steps]
        self._net = _C.QuantizedNetwork(self.input_dim, [self._engine_step(s) for s in self.steps],
                                        link)
        self.output_dim = self._net.output_dim

    @staticmethod
    def _final_step(step: dict[str, Any]) -> dict[str, Any]:
        step = {k: v for k, v in step.items()}
        name = step.get("name", step["kind"])
        if step["kind"] == "dense" and "W" in step:
            step["weight"], step["scale"] = _quantize_weights(step.pop("W"), name)
            step["bias"] = _float32(step.pop("b"), f"{name}'s bias")
        elif step["kind"] == "affine":
            step["scale"] = _float32(step["scale"], f"{name}'s scale")
            step["shift"] = _float32(step["shift"], f"{name}'s shift")
        return step

    @staticmethod
    def _engine_step(step: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in step.items() if k != "name"}

    # ------------------------------------------------------------------ inference
    @property
    def kernel(self) -> str:
        """The int8 path predict uses now: "vnni", "avx2" or "scalar" (follows fastnn.set_simd)."""
        return _C.QuantizedNetwork.kernel_path

    def predict(self, X: ArrayLike, batch_size: int = 1024) -> NDArray[np.float32]:
        """Outputs after the link, as `Sequential.predict`: (n, outputs) float32. batch_size:
        samples run through the network at once (memory only: each sample's output is the same
        whatever it is). Safe from many threads at once; Ctrl-C interrupts it."""
        if type(batch_size) is not int or batch_size < 1:
            batch_size = integer(batch_size, "batch_size", 1)
        if not (type(X) is np.ndarray and X.dtype == np.float32 and X.ndim == 2
                and X.flags.c_contiguous):
            X = as_features(X, self.input_dim, check_finite=False)
        try:
            out, finite = self._net.predict(X, batch_size)
        except ValueError as e:
            if "NaN or infinity" in str(e):
                as_features(X, self.input_dim)  # the message with the row and column
            raise
        if not finite:
            warnings.warn("predict: the model's outputs overflowed to NaN or infinity; its "
                          "weights are too large", RuntimeWarning, stacklevel=2)
        return out

    # The same decision as Sequential's, from this model's predict.
    predict_classes = Sequential.predict_classes

    # ------------------------------------------------------------------ description
    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """A table of the steps that run, their output widths and stored bytes; printed and
        returned."""
        lines = [f"QuantizedModel (input_dim={self.input_dim}, int8 path {self.kernel}, "
                 f"link {self.link})", f"{'step':<16}{'type':<24}{'output':<14}{'bytes':>10}"]
        width, total = self.input_dim, 0
        for s in self.steps:
            arrays = [v for v in s.values() if isinstance(v, np.ndarray)]
            nbytes = sum(a.nbytes for a in arrays)
            total += nbytes
            width = s["weight"].shape[1] if s["kind"] == "dense" else width
            kind = {"dense": "Dense int8", "affine": "BatchNorm (float32)",
                    "activation": "Activation"}[s["kind"]]
            if s.get("activation", "none") != "none":
                kind += f"({s['activation']})"
            lines.append(f"{s.get('name', s['kind']):<16}{kind:<24}{str((None, width)):<14}"
                         f"{nbytes:>10,}")
        lines.append(f"total bytes: {total:,}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self) -> str:
        widths = [self.input_dim] + [s["weight"].shape[1] for s in self.steps
                                     if s["kind"] == "dense"]
        return (f"QuantizedModel({'-'.join(map(str, widths))}, link={self.link!r}, "
                f"kernel={self.kernel!r})")

    # ------------------------------------------------------------------ persistence
    def _to_arrays(self, metadata: Mapping[str, Any] | None = None
                   ) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        from fastnn import __version__

        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata: expected a dict, got {type(metadata).__name__}")
        reserved = (FORMAT_KEY, "fastnn_version")
        clash = sorted(k for k in (metadata or {}) if k in reserved)
        if clash:
            raise ValueError(f"metadata: the keys {', '.join(map(repr, clash))} are reserved by "
                             f"the int8 model format")
        arrays, described = {}, []
        for i, s in enumerate(self.steps):
            entry = {}
            for key, value in s.items():
                if isinstance(value, np.ndarray):
                    arrays[f"quantized/{i:04d}/{key}"] = value
                else:
                    entry[key] = value
            described.append(entry)
        meta = dict(metadata or {})
        meta[FORMAT_KEY] = {"input_dim": self.input_dim, "link": self.link, "steps": described,
                            "source": self.source}
        meta["fastnn_version"] = __version__
        return arrays, meta

    def save(self, path: PathLike, metadata: Mapping[str, Any] | None = None) -> None:
        """Write the model to `path` in fastnn's safe format (atomic); `fastnn.load` reads it
        back. metadata: extra JSON-able values stored alongside."""
        io.save_arrays(path, *self._to_arrays(metadata))

    def __getstate__(self) -> dict[str, Any]:
        return {"model": io.dumps_arrays(*self._to_arrays())}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "model" not in state:
            raise ValueError("QuantizedModel: unpickled state is not one __getstate__ made")
        fresh = from_arrays(*io.loads_arrays(state["model"]), "<bytes>")
        self.__dict__.update(fresh.__dict__)


# ---------------------------------------------------------------------- files
# Per step kind: its arrays (name, dtype, ndim) and its described keys.
_ARRAYS = {"dense": (("weight", np.int8, 2), ("scale", np.float32, 1), ("bias", np.float32, 1)),
           "affine": (("scale", np.float32, 1), ("shift", np.float32, 1)),
           "activation": ()}
_KEYS = {"dense": {"kind", "activation", "act_param", "name"},
         "affine": {"kind", "name"},
         "activation": {"kind", "activation", "act_param", "width", "name"}}


def from_arrays(arrays: Mapping[str, NDArray[Any]], meta: dict[str, Any], where: str,
                device: str = "cpu", precision: str = "fp32") -> QuantizedModel:
    """The QuantizedModel an int8 model file's (arrays, metadata) describe, checked for meaning:
    every array the steps need and no other, of the right dtype and shape, int8 weights in
    [-127, 127], positive finite scales, finite biases. Damage raises ValueError naming `where`.
    Registered with fastnn.io, so fastnn.load reads these files."""
    if str(device) != "cpu":
        raise ValueError(f"device: an int8 model runs on the CPU, got device={device!r}")
    if precision != "fp32":
        raise ValueError(f"precision: an int8 model has its own arithmetic; got "
                         f"precision={precision!r} (leave the default)")
    try:
        desc = meta[FORMAT_KEY]
        if not isinstance(desc, dict) or not isinstance(desc.get("steps"), list):
            raise TypeError("expected an object with a list of steps")
        input_dim = integer(desc["input_dim"], "input_dim", 1)
        steps, used = [], set()
        for i, entry in enumerate(desc["steps"]):
            steps.append(_step_from_file(i, entry, arrays, used))
        extra = sorted(set(arrays) - used)
        if extra:
            raise ValueError(f"arrays belonging to no step: {', '.join(extra[:5])}")
        return QuantizedModel(input_dim, steps, desc["link"], source=desc.get("source"))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        text = f"missing key {e}" if isinstance(e, KeyError) else str(e)
        raise ValueError(f"{where}: damaged int8 model: {text}") from None


def _step_from_file(i: int, entry: Any, arrays: Mapping[str, NDArray[Any]],
                    used: set[str]) -> dict[str, Any]:
    if not isinstance(entry, dict) or entry.get("kind") not in _ARRAYS:
        raise ValueError(f"step {i}: expected an object with kind dense, affine or activation")
    kind = entry["kind"]
    if not set(entry) <= _KEYS[kind]:
        raise ValueError(f"step {i}: unexpected keys {sorted(set(entry) - _KEYS[kind])}")
    step = dict(entry)
    if "activation" in step and step["activation"] not in _STEP_ACTIVATIONS:
        raise ValueError(f"step {i}: unknown activation {step['activation']!r}")
    if "act_param" in step:
        p = step["act_param"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p):
            raise ValueError(f"step {i}: act_param must be a finite number, got {p!r}")
        step["act_param"] = float(p)
    if "width" in step:
        step["width"] = integer(step["width"], f"step {i}: width", 1)
    for key, dtype, ndim in _ARRAYS[kind]:
        name = f"quantized/{i:04d}/{key}"
        a = arrays[name]
        used.add(name)
        if a.dtype != dtype or a.ndim != ndim:
            raise ValueError(f"{name}: expected {ndim}-D {np.dtype(dtype)}, got {a.ndim}-D "
                             f"{a.dtype}")
        if dtype == np.int8 and a.size and a.min() < -127:
            raise ValueError(f"{name}: int8 weights lie in [-127, 127], found {a.min()}")
        if dtype == np.float32 and not np.isfinite(a).all():
            raise ValueError(f"{name}: contains NaN or infinity")
        step[key] = a
    if kind == "dense":
        if step["weight"].shape[0] > MAX_INPUTS:
            raise ValueError(f"step {i}: {step['weight'].shape[0]} inputs exceed {MAX_INPUTS}")
        if not (step["scale"] > 0).all():
            raise ValueError(f"step {i}: weight scales must be > 0")
    return step


io.MODEL_READERS[FORMAT_KEY] = from_arrays
