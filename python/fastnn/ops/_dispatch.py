"""THE device switch of fastnn.ops: the one place that asks whether an argument is a CUDA tensor.

Every op hands its array arguments to `backend`, which answers with the module that runs the
call, `fastnn._C` (NumPy arrays; CPU fastnn.Tensors are read as their arrays) or `fastnn._cuda`
(CUDA fastnn.Tensors, all on one device). The two modules share one signature per kernel, so the
op validates once and calls ``be.<kernel>(...)`` either way. The helpers below (output
allocation, copies, memory overlap) take either kind of array, so the ops need not ask which.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from fastnn import _C
from fastnn import cuda as _cuda_api
from fastnn._checks import FLOAT_DTYPES, aligned, as_float_array
from fastnn._checks import require_aligned as _require_aligned_array
from fastnn.tensor import Tensor


class _CudaBackend:
    """fastnn._cuda, looked up when a kernel is called (``be.relu(args)`` reads the attribute
    before it evaluates the arguments, whose checks must come before any need for a GPU); a
    kernel the CUDA module lacks is a clear NotImplementedError."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return functools.partial(_call_cuda, name)


def _call_cuda(name: str, *args: Any, **kwargs: Any) -> Any:
    fn = getattr(_cuda_api._require(), name, None)
    if fn is None:
        raise NotImplementedError(f"{name}: not available on the GPU yet (fastnn._cuda has no "
                                  f"such kernel); run it on NumPy arrays")
    return fn(*args, **kwargs)


CUDA = _CudaBackend()


def _is_cuda(a: Any) -> bool:
    return type(a) is Tensor and a._storage is not None


def _host(a: Any) -> Any:
    """A CPU tensor's NumPy array, a list of them element by element; anything else as it is."""
    if type(a) is Tensor:
        return a._array if a._storage is None else a
    if type(a) is list or type(a) is tuple:
        return [x._array if type(x) is Tensor and x._storage is None else x for x in a]
    return a


def _what(a: Any) -> str:
    if type(a) is Tensor:
        return f"a Tensor on {a.device}"
    if isinstance(a, np.ndarray):
        return "a NumPy array"
    return type(a).__name__


def _named(arrays: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(name, array) for every array argument; a list argument (the optimizer steps) gives one
    per element, named like params[0]."""
    for name, a in arrays.items():
        if type(a) is list or type(a) is tuple:
            for i, x in enumerate(a):
                yield f"{name}[{i}]", x
        elif a is not None:
            yield name, a


def backend(**arrays: Any) -> tuple[Any, ...]:
    """(module, *arrays): `_C` and the arrays (CPU tensors unwrapped) when none is a CUDA
    tensor; else `_cuda` and the arrays as given, which must then all be CUDA tensors
    (TypeError) on one device (ValueError). None arguments are skipped."""
    for a in arrays.values():
        t = type(a)
        if t is Tensor or t is list or t is tuple:
            return _backend_of(arrays)
    return (_C, *arrays.values())  # NumPy arrays and the like: a type test each, nothing more


def _backend_of(arrays: dict[str, Any]) -> tuple[Any, ...]:
    first = None
    for name, a in _named(arrays):
        if type(a) is Tensor and a._storage is not None:
            first = name, a._index
            break
    if first is None:
        return (_C, *(_host(a) for a in arrays.values()))
    first_name, index = first
    for name, a in _named(arrays):
        if not _is_cuda(a):
            raise TypeError(f"{name}: expected a fastnn.Tensor on cuda:{index} (as {first_name} "
                            f"is), got {_what(a)}; CPU arrays and GPU tensors do not mix in one "
                            f"call (move it with fastnn.asarray(..., device='cuda:{index}'))")
        if a._index != index:
            raise ValueError(f"{name}: expected a tensor on cuda:{index} (as {first_name} is), "
                             f"got one on {a.device}")
    return (CUDA, *arrays.values())


def float32_only(be: Any, dtype: np.dtype[Any], what: str) -> None:
    """The CUDA GEMM has float32 kernels only: TypeError for anything else on the GPU."""
    if be is CUDA and dtype != np.float32:
        raise TypeError(f"{what} on the GPU: float32 only (the CUDA GEMM has no float64 kernel), "
                        f"got {dtype}")


# ---------------------------------------------------------------- arrays of either kind
def is_array(a: Any) -> bool:
    return isinstance(a, np.ndarray) or _is_cuda(a)


def kind(a: Any) -> str:
    return "tensor" if type(a) is Tensor else "array"


def float_array(a: Any, name: str, ndim: int | None = None) -> Any:
    """A float32/float64 array the kernels can read: for NumPy input as_float_array (any
    array-like, strides in whole elements); a CUDA tensor is made contiguous."""
    if not _is_cuda(a):
        return as_float_array(a, name, ndim)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {a.dtype} "
                        f"(convert with .astype(np.float32))")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    return contiguous(a)


def matrix(a: Any, name: str) -> Any:
    """A C-contiguous 2-D float array on a's device (float_array, copied when strided)."""
    return contiguous(float_array(a, name, ndim=2))


def is_contiguous(a: Any) -> bool:
    return a.is_contiguous() if _is_cuda(a) else a.flags.c_contiguous


def is_aligned(a: Any) -> bool:
    return True if _is_cuda(a) else a.flags.aligned


def writable(a: Any) -> bool:
    return not a._storage.readonly if _is_cuda(a) else a.flags.writeable


def copy(a: Any) -> Any:
    """A C-contiguous copy on a's device."""
    return a.copy() if _is_cuda(a) else np.array(a, order="C")


def contiguous(a: Any) -> Any:
    return a if is_contiguous(a) else copy(a)


def convert(a: Any, dtype: DTypeLike) -> Any:
    """a as a C-contiguous (and aligned) array of dtype on its device; a CUDA tensor of another
    dtype is converted through the host."""
    if _is_cuda(a):
        return contiguous(a.astype(dtype))
    return aligned(np.ascontiguousarray(a, dtype=dtype))


def host(a: Any) -> Any:
    """The values of a as a NumPy array (a copy from the device for a CUDA tensor): for the
    checks that read values, such as a label range."""
    return a.numpy() if _is_cuda(a) else a


def empty(shape: Sequence[int], dtype: DTypeLike, like: Any) -> Any:
    """A new C-contiguous array on like's device."""
    if _is_cuda(like):
        return Tensor._empty_cuda(tuple(shape), np.dtype(dtype), like._index)
    return np.empty(shape, dtype)


def copy_into(dst: Any, src: Any) -> Any:
    """dst[...] = src, both of one shape and dtype, src C-contiguous; returns dst."""
    if not _is_cuda(dst):
        dst[...] = src
    elif src.nbytes:
        CUDA.copy_device(dst._storage, dst._offset, src._storage, src._offset, src.nbytes)
    return dst


def data_ptr(a: Any) -> int:
    return a.data_ptr() if _is_cuda(a) else a.__array_interface__["data"][0]


def may_share_memory(a: Any, b: Any) -> bool:
    """Whether a and b may overlap (NumPy's bounds test; CUDA tensors are contiguous here)."""
    if a is None or b is None:
        return False
    if not _is_cuda(a):
        return np.may_share_memory(a, b)
    if a.nbytes == 0 or b.nbytes == 0:
        return False
    a0, b0 = a.data_ptr(), b.data_ptr()
    return a0 < b0 + b.nbytes and b0 < a0 + a.nbytes


def same_block(a: Any, b: Any) -> bool:
    """a and b are the same C-contiguous block: safe for the kernels' in-place mode."""
    return (is_contiguous(a) and is_contiguous(b) and tuple(a.shape) == tuple(b.shape)
            and data_ptr(a) == data_ptr(b))


def check_out(a: Any, name: str, shape: Sequence[int], dtype: DTypeLike,
              contiguous_only: bool = True) -> Any:
    """An array a kernel writes: exactly this dtype and shape, writable, on the call's device.
    C-contiguous and aligned when contiguous_only (it is written directly); otherwise the op
    writes through a temporary, which only NumPy arrays can take."""
    if not is_array(a):
        raise TypeError(f"{name}: expected a NumPy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {a.dtype}")
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(a.shape)}")
    if not writable(a):
        raise ValueError(f"{name}: expected a writable C-contiguous {kind(a)}, got a read-only "
                         f"one")
    if (contiguous_only or _is_cuda(a)) and not is_contiguous(a):
        raise ValueError(f"{name}: expected a writable C-contiguous {kind(a)} (it is written in "
                         f"place)")
    if contiguous_only:
        require_aligned(a, name)
    return a


def require_aligned(a: Any, name: str) -> Any:
    # fastnn's allocator and DLPack imports hand out aligned device memory.
    return a if _is_cuda(a) else _require_aligned_array(a, name)
