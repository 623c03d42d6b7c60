"""Where a Sequential's engine runs, chosen once per model (``placement``): the backend module
whose engine classes it builds (fastnn._C for the CPU, fastnn._cuda for a GPU; the two have the
same Network32 / Network64, engine/engine.h) and how the model's arrays get there.

- Data: NumPy inputs are validated on the host (fastnn/_model_data.py) and put on the engine's
  device once per fit / evaluate / predict call; inputs already on the model's GPU
  (fastnn.Tensor, or anything exposing ``__dlpack__`` / ``__cuda_array_interface__`` there:
  PyTorch, CuPy) are used without a copy when they have the engine's form (float32 C-contiguous
  (n, input_dim) features; int64 (n,) class labels, or float32 (n, outputs) targets), and copied
  through the host otherwise. GPU features are not scanned for NaN on the host (a NaN shows up
  as a non-finite loss); GPU labels are range-checked by the engine once per call.
- predict returns NumPy for NumPy input and a CUDA fastnn.Tensor for GPU input.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import DTypeLike

from fastnn import _C, cuda as _cuda_api

if TYPE_CHECKING:  # imported where used at run time
    from fastnn.tensor import Tensor


def parse_device(device: str) -> int | None:
    """None for the CPU, else the CUDA device index ("cuda", "cuda:N", "gpu")."""
    if not isinstance(device, str):
        raise TypeError(f"device: expected 'cpu' or 'cuda', got {type(device).__name__}")
    d = device.strip().lower()
    if d == "cpu":
        return None
    if d in ("cuda", "gpu"):
        index = 0
    elif d.startswith("cuda:") and d[5:].isdigit():
        index = int(d[5:])
    else:
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    _cuda_api._require()  # RuntimeError: built without CUDA, or no usable GPU
    count = _cuda_api.device_count()
    if index >= count:
        raise ValueError(f"device: {device!r} does not exist; {count} CUDA device(s) available")
    _cuda_api._require_device(index)
    return index


PRECISIONS = ("fp32", "tf32", "bf16")


def check_precision(precision: str, index: int | None) -> str:
    """The GEMM arithmetic: "fp32" anywhere, "bf16" on the CPU (vdpbf16ps where the CPU has
    AVX512_BF16, else fp32 FMA on bf16-rounded operands) and the GPU, "tf32" on the GPU only."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "tf32" and index is None:
        raise ValueError("precision: 'tf32' needs device='cuda' (TF32 is a GPU tensor-core "
                         "format); the CPU engine computes in 'fp32' or 'bf16'")
    return precision


def check_precision_dtype(precision: str, dtype: np.dtype[Any]) -> str:
    """bf16 GEMMs accumulate in float32: a float64 model computes in fp32 only."""
    if precision != "fp32" and np.dtype(dtype) != np.float32:
        raise ValueError(f"precision: {precision!r} needs dtype='float32' (got {np.dtype(dtype)}); "
                         f"float64 models compute in 'fp32'")
    return precision


def on_gpu(obj: Any) -> bool:
    """Whether obj is a CUDA array (fastnn.Tensor, DLPack or CUDA array interface producer)."""
    from fastnn.tensor import Tensor

    if isinstance(obj, Tensor):
        return obj.is_cuda
    if isinstance(obj, np.ndarray):
        return False
    if hasattr(obj, "__dlpack_device__"):
        try:
            return int(obj.__dlpack_device__()[0]) == 2
        except Exception:
            return False
    return hasattr(obj, "__cuda_array_interface__")


def as_tensor(obj: Any) -> Tensor:
    """A fastnn.Tensor sharing memory with a GPU object."""
    from fastnn.tensor import Tensor, from_dlpack

    if isinstance(obj, Tensor):
        return obj
    if hasattr(obj, "__dlpack__"):
        return from_dlpack(obj)
    raise TypeError(f"{type(obj).__name__}: a GPU array without __dlpack__ is not supported; "
                    f"pass a fastnn.Tensor, a PyTorch or CuPy array")


def to_host(obj: Any) -> Any:
    """A NumPy copy of a GPU object (or the object itself when it is not on the GPU)."""
    return as_tensor(obj).numpy() if on_gpu(obj) else obj


class HostPlacement:
    """The CPU engine (fastnn._C): NumPy arrays in host memory."""

    index = None
    device = None  # the model keeps the name it was given
    # The CPU engine scans predict's input for NaN on its way through (no extra NumPy pass).
    engine_checks_finite = True

    def backend(self) -> ModuleType:
        return _C

    def check_dtype(self, dtype: np.dtype[Any]) -> np.dtype[Any]:
        """The model's working dtype, if this engine has it (ValueError otherwise)."""
        return dtype

    def options(self, model: Any, loss: str) -> dict[str, Any]:
        """The engine's options (EngineOptions) for `model` compiled with `loss`."""
        return {"precision": model.precision}

    def native_features(self, X: Any, input_dim: int) -> Any:
        """X as the engine takes it without a host pass, or None (the host path)."""
        return None

    def native_targets(self, y: Any, n: int, loss: str, outputs: int) -> Any:
        return None

    def put(self, a: Any) -> Any:
        """An array validated on the host (or None), where the engine takes it."""
        return a

    def empty(self, shape: tuple[int, ...], dtype: DTypeLike) -> Any:
        return np.empty(shape, dtype)

    def result(self, out: Any, X: Any) -> Any:
        """predict's return value for input X."""
        return out


class CudaPlacement:
    """The GPU engine (fastnn._cuda) on CUDA device ``index``: fastnn.Tensors on that device."""

    engine_checks_finite = False

    def __init__(self, index: int) -> None:
        self.index = index
        self.device = f"cuda:{index}"

    def backend(self) -> ModuleType:
        return _cuda_api._require()

    def check_dtype(self, dtype: np.dtype[Any]) -> np.dtype[Any]:
        if dtype != np.float32:
            raise ValueError("dtype: float64 models run on the CPU only; the GPU engine is "
                             "float32")
        return dtype

    def options(self, model: Any, loss: str) -> dict[str, Any]:
        if loss == "sampled_softmax":
            raise NotImplementedError("the sampled softmax is not available on the GPU yet; "
                                      "train with device='cpu'")
        return {"device": self.index, "precision": model.precision,
                "fused_mlp": bool(model.fused_mlp), "graphs": bool(model.graphs)}

    def _here(self, t: Tensor, dtype: DTypeLike) -> bool:
        return t.device == self.device and t.dtype == dtype and t.is_contiguous()

    def native_features(self, X: Any, input_dim: int) -> Any:
        if not on_gpu(X):
            return None
        t = as_tensor(X)
        if self._here(t, np.float32) and t.ndim == 2 and t.shape[1] == input_dim:
            return t
        return None

    def native_targets(self, y: Any, n: int, loss: str, outputs: int) -> Any:
        """(labels, targets) as CUDA tensors usable without a copy, or None."""
        if not on_gpu(y):
            return None
        t = as_tensor(y)
        if len(t) != n:
            return None
        if loss in ("softmax_cross_entropy", "sampled_softmax"):
            return (t, None) if self._here(t, np.int64) and t.ndim == 1 else None
        if not self._here(t, np.float32):
            return None
        if t.shape == (n, outputs):
            return None, t
        if outputs == 1 and t.shape == (n,):
            return None, _column(t)
        return None

    def put(self, a: Any) -> Any:
        from fastnn.tensor import Tensor

        if a is None or (isinstance(a, Tensor) and a.device == self.device):
            return a
        return Tensor._upload(np.ascontiguousarray(a), self.index)

    def empty(self, shape: tuple[int, ...], dtype: DTypeLike) -> Any:
        from fastnn.tensor import Tensor

        return Tensor._empty_cuda(tuple(shape), np.dtype(dtype), self.index)

    def result(self, out: Any, X: Any) -> Any:
        return out if on_gpu(X) else out.numpy()


def placement(index: int | None) -> Any:
    """The placement of a model on device ``index`` (None: the CPU)."""
    return HostPlacement() if index is None else CudaPlacement(index)


def _column(t: Tensor) -> Tensor:
    """(n,) CUDA tensor -> (n, 1) view of the same memory."""
    from fastnn.tensor import Tensor

    return Tensor._wrap_storage(t._storage, t._offset, (t.shape[0], 1), (1, 1), t.dtype, t._index)
