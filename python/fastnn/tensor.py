"""fastnn.Tensor: an array in CPU or GPU memory, with zero-copy exchange through DLPack and
``__cuda_array_interface__``.

A CPU tensor wraps a NumPy array (no copy). A CUDA tensor views a storage of fastnn's caching
allocator (or memory imported through DLPack) with a shape, element strides, a dtype and a byte
offset. All fastnn work on a GPU runs on fastnn's own stream for that device; exchanges with other
libraries synchronise streams as the DLPack and CUDA Array Interface (v3) protocols prescribe.

Nothing here touches CUDA until a CUDA tensor is asked for, so ``import fastnn`` stays GPU-free.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastnn import cuda as _cuda_api

__all__ = ["Tensor", "asarray", "from_dlpack"]

# DLPack device types and dtype codes (the public ABI; see csrc/cuda/dlpack.h).
_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13
_DL_INT, _DL_UINT, _DL_FLOAT, _DL_BOOL = 0, 1, 2, 6

_SUPPORTED = tuple(np.dtype(t) for t in (
    np.float16, np.float32, np.float64,
    np.int8, np.int16, np.int32, np.int64,
    np.uint8, np.uint16, np.uint32, np.uint64,
    np.bool_,
))
_KIND_TO_CODE = {"i": _DL_INT, "u": _DL_UINT, "f": _DL_FLOAT, "b": _DL_BOOL}
_CODE_TO_KIND = {v: k for k, v in _KIND_TO_CODE.items()}


def _supported_names() -> str:
    return ", ".join(str(d) for d in _SUPPORTED)


def _check_dtype(dtype: DTypeLike, name: str = "dtype") -> np.dtype[Any]:
    """dtype as a supported native NumPy dtype, else TypeError naming it."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name}: not a dtype: {dtype!r} ({exc})") from None
    if dt.newbyteorder("=") not in _SUPPORTED:
        raise TypeError(f"{name}: unsupported dtype {dt}; fastnn.Tensor holds {_supported_names()}")
    return dt.newbyteorder("=")


def _dtype_from_dlpack(code: int, bits: int, lanes: int) -> np.dtype[Any]:
    kind = _CODE_TO_KIND.get(code)
    if kind is None or lanes != 1:
        raise TypeError(f"from_dlpack: unsupported DLPack dtype (code {code}, bits {bits}, lanes "
                        f"{lanes}); fastnn.Tensor holds {_supported_names()}")
    return _check_dtype(np.dtype(f"{kind}{bits // 8}"), "from_dlpack")


def _parse_device(device: str) -> tuple[str, int]:
    """('cpu', 0) or ('cuda', index) from "cpu", "cuda", "cuda:N"; a CUDA device must exist."""
    if not isinstance(device, str):
        raise TypeError(f"device: expected a string such as 'cpu', 'cuda' or 'cuda:0', got "
                        f"{type(device).__name__}")
    d = device.strip().lower()
    if d == "cpu":
        return "cpu", 0
    if d == "cuda":
        index = 0
    elif d.startswith("cuda:") and d[5:].isdigit():
        index = int(d[5:])
    else:
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    _cuda_api._require()
    count = _cuda_api.device_count()
    if index >= count:
        raise ValueError(f"device: {device!r} does not exist; {count} CUDA device(s) available")
    _cuda_api._require_device(index)
    return "cuda", index


def _mod() -> ModuleType:
    return _cuda_api._require()


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, running = [], 1
    for n in reversed(shape):
        strides.append(running)
        running *= n
    return tuple(reversed(strides))


def _extent(shape: tuple[int, ...], strides: tuple[int, ...]) -> tuple[int, int] | None:
    """(lo, hi): the smallest and largest element offsets a view reaches (None when empty)."""
    if any(n == 0 for n in shape):
        return None
    lo = hi = 0
    for n, s in zip(shape, strides):
        span = (n - 1) * s
        if span < 0:
            lo += span
        else:
            hi += span
    return lo, hi


def _stream_arg(stream: int | None) -> int:
    """The DLPack stream argument as an int for the C++ side: -1 = no synchronisation."""
    if stream is None:
        return 1  # the spec's default for CUDA: the legacy default stream
    if isinstance(stream, bool) or not isinstance(stream, numbers.Integral):
        raise TypeError(f"stream: expected None or an integer, got {type(stream).__name__}")
    stream = int(stream)
    if stream == 0:
        raise ValueError("stream: 0 is ambiguous under DLPack; use 1 for the legacy default "
                         "stream, 2 for the per-thread default stream, or -1 for no "
                         "synchronisation")
    if stream < -1:
        raise ValueError(f"stream: expected -1, 1, 2 or a stream pointer, got {stream}")
    return stream


class Tensor:
    """An array in CPU or CUDA memory: ``.shape``, ``.dtype``, ``.device``, ``.numpy()``,
    ``.to(device)``, and the DLPack / CUDA Array Interface protocols.

    Make one with :func:`fastnn.asarray` or :func:`fastnn.from_dlpack`.
    """

    __slots__ = ("_array", "_storage", "_offset", "_shape", "_strides", "_dtype", "_index",
                 "__weakref__")
    _array: Any  # a CPU tensor's NumPy array; None on a GPU
    _storage: Any  # a CUDA tensor's fastnn._cuda.Storage; None on the CPU
    _offset: int
    _shape: tuple[int, ...]
    _strides: Any  # a CUDA tensor's element strides (a tuple); None on the CPU
    _dtype: np.dtype[Any]
    _index: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("use fastnn.asarray(obj, device=...) or fastnn.from_dlpack(obj) to make a "
                        "Tensor")

    # ------------------------------------------------------------------ construction (internal)
    @classmethod
    def _wrap_numpy(cls, array: NDArray[Any]) -> Tensor:
        t = object.__new__(cls)
        t._array = array
        t._storage = None
        t._offset = 0
        t._shape = array.shape
        t._strides = None
        t._dtype = array.dtype
        t._index = 0
        return t

    @classmethod
    def _wrap_storage(cls, storage: Any, offset: int, shape: Sequence[int], strides: Sequence[int],
                      dtype: np.dtype[Any], index: int) -> Tensor:
        t = object.__new__(cls)
        t._array = None
        t._storage = storage
        t._offset = int(offset)
        t._shape = tuple(int(n) for n in shape)
        t._strides = tuple(int(s) for s in strides)
        t._dtype = dtype
        t._index = int(index)
        return t

    @classmethod
    def _empty_cuda(cls, shape: tuple[int, ...], dtype: np.dtype[Any], index: int) -> Tensor:
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        storage = _mod().empty(nbytes, index)
        return cls._wrap_storage(storage, 0, shape, _contiguous_strides(shape), dtype, index)

    @classmethod
    def _upload(cls, array: ArrayLike, index: int) -> Tensor:
        array = np.asarray(array, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        t = cls._empty_cuda(array.shape, array.dtype, index)
        if array.size:
            _mod().copy_from_host(t._storage, 0, array)
        return t

    # ------------------------------------------------------------------ properties
    # A CPU tensor reads shape and dtype from its array, which NumPy lets a user reshape in place.
    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape if self._array is None else self._array.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype if self._array is None else self._array.dtype

    @property
    def device(self) -> str:
        return "cpu" if self._storage is None else f"cuda:{self._index}"

    @property
    def is_cuda(self) -> bool:
        return self._storage is not None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides in bytes, as in NumPy."""
        if self._storage is None:
            return self._array.strides
        return tuple(s * self._dtype.itemsize for s in self._strides)

    def data_ptr(self) -> int:
        """Address of the first element (a device address for CUDA tensors)."""
        if self._storage is None:
            return self._array.ctypes.data
        return self._storage.ptr + self._offset

    def is_contiguous(self) -> bool:
        if self._storage is None:
            return self._array.flags.c_contiguous
        expected = _contiguous_strides(self._shape)
        return self.size == 0 or all(
            n == 1 or s == e for n, s, e in zip(self._shape, self._strides, expected))

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # ------------------------------------------------------------------ copies
    def numpy(self) -> NDArray[Any]:
        """The data as a NumPy array: a copy to host for a CUDA tensor; for a CPU tensor the
        wrapped array itself (shared memory, as with ``torch.Tensor.numpy``)."""
        if self._storage is None:
            return self._array
        out = np.empty(self._shape, dtype=self._dtype)
        ext = _extent(self._shape, self._strides)
        if ext is None:
            return out
        if self.is_contiguous():
            _mod().copy_to_host(self._storage, self._offset, out)
            return out
        # A strided view (imported through DLPack): fetch the span it reaches, gather on the host.
        lo, hi = ext
        item = self._dtype.itemsize
        span = np.empty(hi - lo + 1, dtype=self._dtype)
        _mod().copy_to_host(self._storage, self._offset + lo * item, span)
        view = np.lib.stride_tricks.as_strided(span[-lo:], shape=self._shape,
                                               strides=self.strides, writeable=False)
        out[...] = view
        return out

    def to(self, device: str, dtype: DTypeLike | None = None) -> Tensor:
        """This tensor on `device` ("cpu", "cuda", "cuda:N"), converted to `dtype` if given.
        Returns self when nothing changes. Conversions of CUDA tensors go through the host."""
        kind, index = _parse_device(device)
        dt = self.dtype if dtype is None else _check_dtype(dtype)
        same_device = (kind == "cpu") == (self._storage is None) and (
            kind == "cpu" or index == self._index)
        if same_device and dt == self.dtype:
            return self
        if kind == "cpu":
            host = self.numpy()
            return Tensor._wrap_numpy(host if dt == host.dtype else host.astype(dt))
        if self._storage is None or dt != self._dtype or not self.is_contiguous():
            host = self.numpy()
            return Tensor._upload(host if dt == host.dtype else host.astype(dt), index)
        # Contiguous CUDA tensor to another CUDA device: a peer copy.
        t = Tensor._empty_cuda(self._shape, self._dtype, index)
        if self.nbytes:
            _mod().copy_device(t._storage, 0, self._storage, self._offset, self.nbytes)
        return t

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, index: int = 0) -> Tensor:
        return self.to(f"cuda:{int(index)}")

    def astype(self, dtype: DTypeLike) -> Tensor:
        """A copy converted to `dtype`, on the same device (self when the dtype already matches)."""
        return self.to(self.device, dtype)

    def copy(self) -> Tensor:
        """A contiguous copy on the same device."""
        if self._storage is None:
            return Tensor._wrap_numpy(self._array.copy())
        if not self.is_contiguous():
            return Tensor._upload(self.numpy(), self._index)
        t = Tensor._empty_cuda(self._shape, self._dtype, self._index)
        if self.nbytes:
            _mod().copy_device(t._storage, 0, self._storage, self._offset, self.nbytes)
        return t

    # ------------------------------------------------------------------ protocols
    def __dlpack_device__(self) -> tuple[int, int]:
        return (_DL_CPU, 0) if self._storage is None else (_DL_CUDA, self._index)

    def __dlpack__(self, *, stream: int | None = None, max_version: tuple[int, int] | None = None,
                   dl_device: tuple[int, int] | None = None, copy: bool | None = None) -> Any:
        """A DLPack capsule viewing this tensor (zero-copy unless `copy` or `dl_device` asks
        otherwise). For a CUDA tensor, `stream` is the consumer's stream (None: the legacy
        default stream; -1: no synchronisation): it is made to wait for fastnn's stream."""
        if self._storage is None:
            kwargs: dict[str, Any] = {"stream": stream}
            for key, value in (("max_version", max_version), ("dl_device", dl_device),
                               ("copy", copy)):
                if value is not None:
                    kwargs[key] = value
            return self._array.__dlpack__(**kwargs)
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            if tuple(dl_device)[0] == _DL_CPU and copy is not False:
                return self.to("cpu").__dlpack__(max_version=max_version, copy=False)
            raise BufferError(f"__dlpack__: cannot export a {self.device} tensor to DLPack device "
                              f"{tuple(dl_device)}" + (" without a copy" if copy is False else ""))
        consumer = _stream_arg(stream)
        src = self.copy() if copy else self
        code = _KIND_TO_CODE[src._dtype.kind]
        # DLPack >= 1.0 capsules when the consumer can read them (they carry read-only/copied).
        versioned = max_version is not None and int(tuple(max_version)[0]) >= 1
        return _mod().export_dlpack(src._storage, src._offset, list(src._shape),
                                    list(src._strides), code, src._dtype.itemsize * 8, consumer,
                                    versioned, bool(copy))

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        """CUDA Array Interface v3 (CUDA tensors only). "stream" is fastnn's stream: consumers
        synchronise with it before touching the data."""
        if self._storage is None:
            raise AttributeError("__cuda_array_interface__: only CUDA tensors have it (this one is "
                                 "on the cpu)")
        empty = self.size == 0
        return {
            "shape": self._shape,
            "typestr": self._dtype.str,
            "descr": [("", self._dtype.str)],
            "data": (0 if empty else self.data_ptr(), False),
            "strides": None if self.is_contiguous() else self.strides,
            "version": 3,
            "stream": int(_mod().stream(self._index)),
        }

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> NDArray[Any]:
        if self._storage is not None:
            raise TypeError(f"a {self.device} tensor does not convert to NumPy implicitly; call "
                            f".numpy() for a host copy")
        if copy:
            return np.array(self._array, dtype=dtype, copy=True)
        if dtype is None or np.dtype(dtype) == self._array.dtype:
            return self._array
        if copy is False:
            raise ValueError("__array__: a dtype conversion needs a copy")
        return self._array.astype(dtype)

    def __repr__(self) -> str:
        device = "" if self._storage is None else f", device='{self.device}'"
        if self.size <= 100:
            body = np.array2string(self.numpy(), separator=", ", prefix="Tensor(")
            return f"Tensor({body}, dtype={self.dtype}{device})"
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, device='{self.device}')"


def _as_host_array(obj: Any, dtype: DTypeLike | None) -> NDArray[Any]:
    """A NumPy array from NumPy input or nested lists/scalars. Python floats become float32 (the
    working type) unless `dtype` says otherwise; NumPy input keeps its dtype."""
    is_numpy = isinstance(obj, (np.ndarray, np.generic))
    try:
        arr = np.asarray(obj) if dtype is None else np.asarray(obj, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"asarray: cannot convert {type(obj).__name__} to an array "
                        f"({exc})") from None
    if dtype is None and not is_numpy and arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    dt = _check_dtype(arr.dtype, "asarray")
    if arr.dtype != dt:  # non-native byte order
        arr = arr.astype(dt)
    return arr


def asarray(obj: Any, device: str = "cpu", dtype: DTypeLike | None = None) -> Tensor:
    """`obj` as a Tensor on `device` ("cpu", "cuda", "cuda:N"), converted to `dtype` if given.

    `obj` may be a Tensor, a NumPy array, anything with ``__dlpack__`` (PyTorch, CuPy, JAX), or
    nested lists and scalars. No copy is made when the data already sits on `device` with the
    right dtype (a CPU tensor then shares memory with the NumPy array, as ``np.asarray`` does).
    """
    _parse_device(device)
    dt = None if dtype is None else _check_dtype(dtype)
    if isinstance(obj, Tensor):
        t = obj
    elif isinstance(obj, (np.ndarray, np.generic)) or not hasattr(obj, "__dlpack__"):
        t = Tensor._wrap_numpy(_as_host_array(obj, dt))
    else:
        t = from_dlpack(obj)
    return t.to(device, dtype=dt)


def from_dlpack(obj: Any) -> Tensor:
    """A Tensor sharing memory with `obj` (anything with ``__dlpack__`` and
    ``__dlpack_device__``: PyTorch, CuPy, JAX, NumPy, fastnn). CPU data becomes a CPU tensor
    (a NumPy array underneath); CUDA data a CUDA tensor, with the producer's pending work ordered
    before fastnn's stream."""
    if isinstance(obj, Tensor):
        return obj
    if not (hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__")):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ and __dlpack_device__, "
                        f"got {type(obj).__name__}")
    dev_type, dev_id = (int(v) for v in obj.__dlpack_device__())
    if dev_type in (_DL_CPU, _DL_CUDA_HOST):
        try:
            arr = np.from_dlpack(obj)
        except (RuntimeError, BufferError) as exc:
            if "dtype" in str(exc).lower():  # e.g. bfloat16, which NumPy cannot hold
                raise TypeError(f"from_dlpack: {exc}; fastnn.Tensor holds "
                                f"{_supported_names()}") from None
            raise
        _check_dtype(arr.dtype, "from_dlpack")
        return Tensor._wrap_numpy(arr)
    if dev_type != _DL_CUDA:
        raise ValueError(f"from_dlpack: unsupported DLPack device type {dev_type} (fastnn takes "
                         f"CPU (1) and CUDA (2) memory)")
    mod = _mod()
    if dev_id >= _cuda_api.device_count():
        raise ValueError(f"from_dlpack: the data is on cuda:{dev_id}, which this process cannot "
                         f"see")
    _cuda_api._require_device(dev_id)
    # The producer orders its pending writes before fastnn's stream (DLPack stream handshake).
    stream = int(mod.stream(dev_id))
    try:
        capsule = obj.__dlpack__(stream=stream, max_version=(1, 0))
    except TypeError:  # a producer that predates DLPack 1.0
        capsule = obj.__dlpack__(stream=stream)
    storage, shape, strides, (code, bits, lanes), offset = mod.import_dlpack(capsule)
    dtype = _dtype_from_dlpack(code, bits, lanes)
    return Tensor._wrap_storage(storage, offset, shape, strides, dtype, storage.device_id)
