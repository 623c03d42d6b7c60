"""fastnn.Tensor, asarray, from_dlpack and the device layer.

CPU tensors and DLPack with NumPy (and PyTorch when importable) run everywhere. The C++ DLPack
code (capsule import/export, deleters) is device-agnostic and is exercised here with CPU
capsules whenever fastnn._cuda is compiled. Everything touching GPU memory needs a usable CUDA
device and is skipped without one.
"""

import gc
import weakref

import numpy as np
import pytest

import fastnn
from fastnn import cuda

needs_gpu = pytest.mark.skipif(
    not cuda.is_available(),
    reason="no usable CUDA device (fastnn built without CUDA, no GPU, or no/too-old driver)",
)
needs_cuda_module = pytest.mark.skipif(
    not cuda.is_compiled(), reason="fastnn built without CUDA: the C++ DLPack code is not compiled")

try:
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None
try:
    import cupy
except ImportError:  # pragma: no cover
    cupy = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
needs_torch_cuda = pytest.mark.skipif(
    torch is None or not torch.cuda.is_available() or not cuda.is_available(),
    reason="needs PyTorch with CUDA and a usable CUDA device")
needs_cupy = pytest.mark.skipif(cupy is None or not cuda.is_available(),
                                reason="needs CuPy and a usable CUDA device")

DTYPES = [np.float32, np.float64, np.int64, np.uint8, np.int32, np.float16, np.bool_]
SHAPES = [(), (0,), (3,), (2, 0, 4), (4, 5), (2, 3, 4), (1, 1, 1, 7)]


def _data(shape, dtype, rng):
    if np.dtype(dtype) == np.bool_:
        return np.asarray(rng.random(shape) > 0.5)
    if np.dtype(dtype).kind in "iu":
        return np.asarray(rng.integers(0, 100, size=shape), dtype=dtype)
    return np.asarray(rng.standard_normal(shape), dtype=dtype)


def _strided_views(rng):
    """Non-contiguous NumPy views: steps, transposes, negative strides, broadcast (stride 0)."""
    a = rng.standard_normal((6, 8)).astype(np.float32)
    return {
        "step": a[::2, 1::3],
        "transpose": a.T,
        "negative": a[::-1, ::-2],
        "broadcast": np.lib.stride_tricks.as_strided(np.arange(5, dtype=np.float32), (3, 5),
                                                     (0, 4)),
        "column": a[:, 3],
    }


def _dlpack_holder(capsule, device=(1, 0)):
    """A minimal DLPack producer handing out a prepared capsule."""

    class Holder:
        def __dlpack__(self, **kwargs):
            return capsule

        def __dlpack_device__(self):
            return device

    return Holder()


# ---------------------------------------------------------------- the package surface

def test_exports_and_import_stay_gpu_free():
    assert fastnn.Tensor is fastnn.tensor.Tensor
    assert callable(fastnn.asarray) and callable(fastnn.from_dlpack)
    for name in ("Tensor", "asarray", "from_dlpack"):
        assert name in fastnn.__all__
    # Making CPU tensors never needs the CUDA runtime.
    t = fastnn.asarray(np.ones(3, np.float32))
    assert t.device == "cpu"


def test_tensor_is_not_constructed_directly():
    with pytest.raises(TypeError, match="asarray"):
        fastnn.Tensor(np.ones(3))


# ---------------------------------------------------------------- CPU tensors

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cpu_tensor_wraps_numpy(shape, dtype, rng):
    a = _data(shape, dtype, rng)
    t = fastnn.asarray(a)
    assert t.shape == a.shape and t.dtype == a.dtype and t.device == "cpu"
    assert t.ndim == a.ndim and t.size == a.size and t.nbytes == a.nbytes
    assert t.strides == a.strides and t.is_contiguous() and not t.is_cuda
    assert t.numpy() is a  # no copy on the CPU
    assert np.asarray(t) is a
    assert t.__dlpack_device__() == (1, 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_dlpack_round_trip_with_numpy(shape, dtype, rng):
    a = _data(shape, dtype, rng)
    t = fastnn.from_dlpack(a)
    assert t.shape == a.shape and t.dtype == a.dtype
    b = np.from_dlpack(t)
    np.testing.assert_array_equal(b, a)
    assert b.shape == a.shape and b.dtype == a.dtype
    if a.size:
        assert b.ctypes.data == a.ctypes.data  # zero-copy both ways
        assert np.shares_memory(b, a)


@pytest.mark.parametrize("kind", ["step", "transpose", "negative", "broadcast", "column"])
def test_dlpack_keeps_strides(kind, rng):
    a = _strided_views(rng)[kind]
    t = fastnn.asarray(a)
    assert t.strides == a.strides and t.is_contiguous() == a.flags.c_contiguous
    b = np.from_dlpack(t)
    np.testing.assert_array_equal(b, a)
    assert b.strides == a.strides and b.ctypes.data == a.ctypes.data


def test_dlpack_of_a_read_only_array():
    # Legacy DLPack cannot say "read-only"; NumPy exports through the versioned protocol.
    a = np.broadcast_to(np.arange(5, dtype=np.float32), (3, 5))
    b = np.from_dlpack(fastnn.asarray(a))
    np.testing.assert_array_equal(b, a)
    assert b.strides == a.strides and not b.flags.writeable


def test_cpu_writes_are_shared(rng):
    a = np.zeros((3, 4), np.float32)
    t = fastnn.asarray(a)
    np.from_dlpack(t)[1, 2] = 7.0
    assert a[1, 2] == 7.0
    a[0, 0] = -1.0
    assert t.numpy()[0, 0] == -1.0


def test_cpu_tensor_follows_in_place_reshape():
    a = np.zeros(6, np.float32)
    t = fastnn.asarray(a)
    a.shape = (2, 3)
    assert t.shape == (2, 3) and t.ndim == 2 and len(t) == 2


def test_to_cpu_and_astype(rng):
    a = rng.standard_normal((3, 2)).astype(np.float32)
    t = fastnn.asarray(a)
    assert t.to("cpu") is t and t.to("CPU ") is t and t.cpu() is t
    t64 = t.to("cpu", dtype=np.float64)
    assert t64.dtype == np.float64 and t64.device == "cpu"
    np.testing.assert_array_equal(t64.numpy(), a.astype(np.float64))
    assert t.astype(np.int64).dtype == np.int64
    c = t.copy()
    assert not np.shares_memory(c.numpy(), a)
    np.testing.assert_array_equal(c.numpy(), a)


def test_asarray_on_lists_and_scalars():
    t = fastnn.asarray([[1.0, 2.0], [3.0, 4.0]])
    assert t.shape == (2, 2) and t.dtype == np.float32  # Python floats: the working type
    assert fastnn.asarray([1, 2, 3]).dtype == np.int64
    assert fastnn.asarray([True, False]).dtype == np.bool_
    assert fastnn.asarray(2.5).shape == () and fastnn.asarray(2.5).dtype == np.float32
    assert fastnn.asarray([]).shape == (0,)
    assert fastnn.asarray([1, 2], dtype=np.float64).dtype == np.float64
    assert fastnn.asarray([1.5], dtype="float64").numpy()[0] == 1.5
    # NumPy input keeps its dtype; NumPy scalars too.
    assert fastnn.asarray(np.array([1.0])).dtype == np.float64
    assert fastnn.asarray(np.float64(1.0)).dtype == np.float64
    np.testing.assert_array_equal(fastnn.asarray((1, 2)).numpy(), [1, 2])


def test_asarray_of_tensor_is_identity():
    t = fastnn.asarray(np.ones(3, np.float32))
    assert fastnn.asarray(t) is t
    assert fastnn.from_dlpack(t) is t
    assert fastnn.asarray(t, dtype=np.float64).dtype == np.float64


def test_asarray_non_native_byte_order():
    a = np.arange(4, dtype=">f4")
    t = fastnn.asarray(a)
    assert t.dtype == np.float32 and t.dtype.isnative
    np.testing.assert_array_equal(t.numpy(), [0, 1, 2, 3])


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:-1", "", "tpu:0", "cpu:0"])
def test_unknown_device_is_a_value_error(device):
    with pytest.raises(ValueError, match="device"):
        fastnn.asarray([1.0], device=device)
    with pytest.raises(ValueError, match="device"):
        fastnn.asarray([1.0]).to(device)


@pytest.mark.parametrize("device", [0, None, 1.5])
def test_device_must_be_a_string(device):
    with pytest.raises(TypeError, match="device"):
        fastnn.asarray([1.0], device=device)


@pytest.mark.skipif(cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA"):
        fastnn.asarray([1.0], device="cuda")
    with pytest.raises(RuntimeError, match="CUDA"):
        fastnn.asarray([1.0]).to("cuda:0")


@pytest.mark.skipif(cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_helpers_without_a_gpu_raise():
    for call in (cuda.memory_stats, cuda.empty_cache, cuda.synchronize, cuda.current_stream):
        with pytest.raises(RuntimeError, match="CUDA"):
            call()


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, object, "U3", "datetime64[s]",
                                   "not-a-dtype"])
def test_unsupported_dtypes_are_type_errors(dtype):
    with pytest.raises(TypeError, match="dtype"):
        fastnn.asarray([1], dtype=dtype)


def test_unsupported_input_dtypes_are_type_errors():
    with pytest.raises(TypeError, match="unsupported dtype"):
        fastnn.asarray(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="unsupported dtype"):
        fastnn.asarray(np.ones(2, np.complex64))
    with pytest.raises(TypeError):
        fastnn.asarray([[1, 2], [3]])  # ragged


def test_from_dlpack_rejects_non_producers():
    with pytest.raises(TypeError, match="__dlpack__"):
        fastnn.from_dlpack([1, 2, 3])
    with pytest.raises(ValueError, match="device type"):
        fastnn.from_dlpack(_dlpack_holder(None, device=(7, 0)))  # e.g. Vulkan


def test_cpu_protocol_details(rng):
    t = fastnn.asarray(rng.standard_normal(5).astype(np.float32))
    assert not hasattr(t, "__cuda_array_interface__")
    with pytest.raises(AttributeError):
        t.__cuda_array_interface__
    assert len(t) == 5
    with pytest.raises(TypeError):
        len(fastnn.asarray(1.0))
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert not np.shares_memory(np.array(t, copy=True), t.numpy())
    assert t.data_ptr() == t.numpy().ctypes.data
    # The versioned protocol (max_version) is passed through to NumPy.
    cap = t.__dlpack__(max_version=(1, 0))
    assert "dltensor" in repr(cap)


def test_repr():
    small = repr(fastnn.asarray([[1.0, 2.0]]))
    assert small.startswith("Tensor(") and "float32" in small and "1." in small
    big = repr(fastnn.asarray(np.zeros((300, 2), np.float64)))
    assert "shape=(300, 2)" in big and "float64" in big and "device='cpu'" in big


@needs_torch
def test_torch_cpu_zero_copy_both_ways(rng):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    t = fastnn.asarray(a)
    tt = torch.from_dlpack(t)
    assert tt.data_ptr() == a.ctypes.data and tuple(tt.shape) == a.shape
    tt[0, 0] = 42.0
    assert a[0, 0] == 42.0
    src = torch.arange(12, dtype=torch.int64).reshape(3, 4).T  # strided
    f = fastnn.from_dlpack(src)
    assert f.dtype == np.int64 and f.shape == (4, 3) and f.data_ptr() == src.data_ptr()
    np.testing.assert_array_equal(f.numpy(), src.numpy())
    assert fastnn.asarray(torch.ones(2, dtype=torch.float64)).dtype == np.float64


@needs_torch
def test_torch_unsupported_dtype_is_type_error():
    with pytest.raises(TypeError, match="dtype"):
        fastnn.from_dlpack(torch.ones(2, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="dtype"):
        fastnn.from_dlpack(torch.ones(2, dtype=torch.complex64))


# ---------------------------------------------------------------- the C++ DLPack code, CPU capsules

def _cpp():
    from fastnn import _cuda

    return _cuda


@needs_cuda_module
@pytest.mark.parametrize("kind", ["contiguous", "step", "transpose", "negative", "broadcast",
                                  "empty", "scalar"])
def test_cpp_dlpack_import_export_round_trip(kind, rng):
    views = _strided_views(rng)
    views["contiguous"] = rng.standard_normal((3, 5)).astype(np.float64)
    views["empty"] = np.zeros((0, 3), np.float32)
    views["scalar"] = np.array(3.5, np.float32)
    a = views[kind]
    m = _cpp()
    storage, shape, strides, (code, bits, lanes), offset = m.import_dlpack(a.__dlpack__())
    assert shape == a.shape and lanes == 1 and bits == 8 * a.itemsize and code == 2
    assert strides == tuple(s // a.itemsize for s in a.strides) or a.size <= 1
    assert storage.device_type == 1 and storage.device == "cpu" and not storage.cached
    if a.size:
        assert storage.ptr + offset == a.ctypes.data
        # The storage spans exactly the bytes the view reaches.
        lo = sum(min(0, (n - 1) * s) for n, s in zip(a.shape, a.strides))
        hi = sum(max(0, (n - 1) * s) for n, s in zip(a.shape, a.strides))
        assert storage.nbytes == hi - lo + a.itemsize and offset == -lo
    cap = m.export_dlpack(storage, offset, list(shape), list(strides), code, bits, -1)
    b = np.from_dlpack(_dlpack_holder(cap))
    np.testing.assert_array_equal(b, a)
    assert b.shape == a.shape
    if a.size:
        assert b.ctypes.data == a.ctypes.data


@needs_cuda_module
def test_cpp_dlpack_deleters_release_the_producer():
    m = _cpp()
    base = np.arange(10, dtype=np.float32)
    ref = weakref.ref(base)
    storage, shape, strides, (code, bits, _), offset = m.import_dlpack(base[2:8].__dlpack__())
    del base
    gc.collect()
    assert ref() is not None  # kept alive by the imported storage
    # An exported capsule nobody consumes releases its reference when it dies...
    cap = m.export_dlpack(storage, offset, list(shape), list(strides), code, bits, -1)
    del cap
    # ... and a consumed one when its consumer lets go.
    b = np.from_dlpack(_dlpack_holder(
        m.export_dlpack(storage, offset, list(shape), list(strides), code, bits, -1)))
    np.testing.assert_array_equal(b, np.arange(2, 8, dtype=np.float32))
    del storage
    gc.collect()
    assert ref() is not None  # b still views it
    del b
    gc.collect()
    assert ref() is None


@needs_cuda_module
@needs_torch
def test_cpp_dlpack_capsules_are_read_by_torch():
    # PyTorch asks for the versioned protocol (max_version) and must accept our legacy capsule.
    m = _cpp()
    a = np.arange(12, dtype=np.float32).reshape(3, 4)[:, 1:]
    ref = weakref.ref(a.base)
    storage, shape, strides, (code, bits, _), offset = m.import_dlpack(a.__dlpack__())
    cap = m.export_dlpack(storage, offset, list(shape), list(strides), code, bits, -1)
    t = torch.from_dlpack(_dlpack_holder(cap))
    assert t.data_ptr() == a.ctypes.data and tuple(t.stride()) == (4, 1)
    np.testing.assert_array_equal(t.numpy(), a)
    assert "used_dltensor" in repr(cap)
    del a, storage, cap
    gc.collect()
    assert ref() is not None
    del t
    gc.collect()
    assert ref() is None


@needs_cuda_module
@pytest.mark.parametrize("readonly", [False, True])
def test_cpp_dlpack_versioned_capsules(readonly, rng):
    m = _cpp()
    a = rng.standard_normal((4, 5)).astype(np.float32)[:, ::2]
    if readonly:
        a.flags.writeable = False
    cap = a.__dlpack__(max_version=(1, 0))
    assert "dltensor_versioned" in repr(cap)
    storage, shape, strides, (code, bits, _), offset = m.import_dlpack(cap)
    assert "used_dltensor_versioned" in repr(cap)
    assert storage.readonly == readonly and storage.ptr + offset == a.ctypes.data
    out = m.export_dlpack(storage, offset, list(shape), list(strides), code, bits, -1, True)
    assert "dltensor_versioned" in repr(out)
    b = np.from_dlpack(_dlpack_holder(out))
    np.testing.assert_array_equal(b, a)
    assert b.ctypes.data == a.ctypes.data and b.flags.writeable == (not readonly)
    if readonly:  # legacy capsules cannot say "read-only": refused
        with pytest.raises(BufferError, match="read-only"):
            m.export_dlpack(storage, offset, list(shape), list(strides), code, bits, -1, False)
    else:
        legacy = m.export_dlpack(storage, offset, list(shape), list(strides), code, bits, -1)
        assert "dltensor_versioned" not in repr(legacy)


@needs_cuda_module
@needs_torch
def test_cpp_versioned_capsules_are_read_by_torch():
    m = _cpp()
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    storage, shape, strides, (code, bits, _), offset = m.import_dlpack(a.__dlpack__())
    cap = m.export_dlpack(storage, offset, list(shape), list(strides), code, bits, -1, True)
    t = torch.from_dlpack(_dlpack_holder(cap))
    assert t.data_ptr() == a.ctypes.data and t.dtype == torch.int64
    assert "used_dltensor_versioned" in repr(cap)


@needs_cuda_module
def test_cpp_dlpack_bad_capsules():
    m = _cpp()
    a = np.ones(3, np.float32)
    cap = a.__dlpack__()
    m.import_dlpack(cap)
    with pytest.raises(ValueError, match="already consumed"):
        m.import_dlpack(cap)
    with pytest.raises(TypeError, match="capsule"):
        m.import_dlpack(a)
    cap_v = a.__dlpack__(max_version=(1, 0))
    m.import_dlpack(cap_v)
    with pytest.raises(ValueError, match="already consumed"):
        m.import_dlpack(cap_v)
    storage = m.import_dlpack(a.__dlpack__())[0]
    with pytest.raises(ValueError, match="outside the storage"):
        m.export_dlpack(storage, 0, [4], [1], 2, 32, -1)
    with pytest.raises(ValueError, match="shape and strides"):
        m.export_dlpack(storage, 0, [3], [], 2, 32, -1)
    with pytest.raises(ValueError, match="outside the storage"):
        m.export_dlpack(storage, -4, [3], [1], 2, 32, -1)


@needs_cuda_module
def test_cpp_size_classes():
    sc = _cpp().size_class
    assert sc(0) == 256 and sc(1) == 256 and sc(256) == 256 and sc(257) == 512
    for n in [300, 1000, 4097, 10**6, 3 * 2**20 + 1, 10**9]:
        c = sc(n)
        assert n <= c <= 1.25 * n + 256
        assert sc(c) == c  # a class is its own class


@needs_cuda_module
@pytest.mark.skipif(cuda.is_available(), reason="checks the no-GPU error")
def test_cpp_allocator_without_a_gpu_raises():
    m = _cpp()
    with pytest.raises(ValueError, match="no CUDA device"):
        m.empty(16, 0)
    with pytest.raises(ValueError, match="no CUDA device"):
        m.memory_stats(0)


# ---------------------------------------------------------------- GPU

@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cuda_round_trip(shape, dtype, rng):
    a = _data(shape, dtype, rng)
    t = fastnn.asarray(a, device="cuda")
    assert t.device == "cuda:0" and t.is_cuda and t.shape == a.shape and t.dtype == a.dtype
    assert t.__dlpack_device__() == (2, 0) and t.is_contiguous()
    h = t.numpy()
    np.testing.assert_array_equal(h, a)
    assert not np.shares_memory(h, a)
    back = t.to("cpu")
    assert back.device == "cpu"
    np.testing.assert_array_equal(back.numpy(), a)
    assert t.to("cuda") is t and t.to("cuda:0") is t


@needs_gpu
@pytest.mark.parametrize("kind", ["step", "transpose", "negative", "broadcast", "column"])
def test_cuda_upload_of_strided_views(kind, rng):
    a = _strided_views(rng)[kind]
    t = fastnn.asarray(a, device="cuda")
    assert t.is_contiguous()
    np.testing.assert_array_equal(t.numpy(), a)


@needs_gpu
def test_cuda_copies_and_dtype_conversion(rng):
    a = rng.standard_normal((33, 17)).astype(np.float32)
    t = fastnn.asarray(a, device="cuda")
    c = t.copy()
    assert c.data_ptr() != t.data_ptr()
    np.testing.assert_array_equal(c.numpy(), a)
    t64 = t.to("cuda", dtype=np.float64)
    assert t64.dtype == np.float64 and t64.device == "cuda:0"
    np.testing.assert_array_equal(t64.numpy(), a.astype(np.float64))
    assert fastnn.asarray([1, 2], device="cuda", dtype=np.uint8).numpy().tolist() == [1, 2]
    with pytest.raises(TypeError, match="implicitly"):
        np.asarray(t)
    assert "device='cuda:0'" in repr(t)


@needs_gpu
def test_cuda_device_index_out_of_range():
    with pytest.raises(ValueError, match="does not exist"):
        fastnn.asarray([1.0], device=f"cuda:{cuda.device_count()}")


@needs_gpu
def test_cuda_array_interface(rng):
    a = rng.standard_normal((4, 3)).astype(np.float32)
    t = fastnn.asarray(a, device="cuda")
    cai = t.__cuda_array_interface__
    assert cai["version"] == 3 and cai["shape"] == (4, 3) and cai["typestr"] == "<f4"
    assert cai["data"] == (t.data_ptr(), False) and cai["strides"] is None
    assert cai["stream"] == cuda.current_stream(0) and cai["stream"] not in (0, 1, 2)
    e = fastnn.asarray(np.zeros((0, 3), np.float32), device="cuda")
    assert e.__cuda_array_interface__["data"][0] == 0


@needs_gpu
def test_cuda_dlpack_stream_argument(rng):
    t = fastnn.asarray(rng.standard_normal(8).astype(np.float32), device="cuda")
    for stream in (None, -1, 1, 2, cuda.current_stream(0)):
        assert "dltensor" in repr(t.__dlpack__(stream=stream))
    with pytest.raises(ValueError, match="ambiguous"):
        t.__dlpack__(stream=0)
    with pytest.raises(TypeError):
        t.__dlpack__(stream="default")
    with pytest.raises(BufferError):
        t.__dlpack__(dl_device=(1, 0), copy=False)
    # A host copy on request (the DLPack 2023 dl_device/copy arguments).
    h = np.from_dlpack(_dlpack_holder(t.__dlpack__(dl_device=(1, 0))))
    np.testing.assert_array_equal(h, t.numpy())


@needs_gpu
def test_fastnn_dlpack_round_trip_on_the_gpu(rng):
    a = rng.standard_normal((5, 7)).astype(np.float32)
    t = fastnn.asarray(a, device="cuda")
    u = fastnn.from_dlpack(_dlpack_holder(t.__dlpack__(), device=(2, 0)))
    assert u.data_ptr() == t.data_ptr() and u.device == "cuda:0" and u.dtype == np.float32
    np.testing.assert_array_equal(u.numpy(), a)


@needs_gpu
def test_allocator_reuses_blocks():
    cuda.synchronize(0)
    before = cuda.memory_stats(0)
    for _ in range(200):
        t = fastnn.asarray(np.ones((256, 256), np.float32), device="cuda")
        del t
    after = cuda.memory_stats(0)
    # One size class, freed before the next request: at most one cudaMalloc for the whole loop.
    assert after["num_cuda_malloc"] - before["num_cuda_malloc"] <= 1
    assert after["num_cache_hits"] - before["num_cache_hits"] >= 199
    assert after["num_allocs"] - before["num_allocs"] == 200
    assert after["bytes_in_use"] == before["bytes_in_use"]
    assert after["bytes_cached"] >= 256 * 256 * 4
    cuda.empty_cache(0)
    emptied = cuda.memory_stats(0)
    assert emptied["bytes_cached"] == 0 and emptied["num_cuda_free"] > after["num_cuda_free"]


@needs_gpu
def test_allocator_in_use_accounting():
    cuda.empty_cache()
    s0 = cuda.memory_stats(0)
    ts = [fastnn.asarray(np.zeros(1000, np.float32), device="cuda") for _ in range(3)]
    s1 = cuda.memory_stats(0)
    assert s1["bytes_in_use"] - s0["bytes_in_use"] == 3 * 4096  # 4000 bytes -> class 4096
    assert s1["peak_bytes_in_use"] >= s1["bytes_in_use"]
    del ts
    s2 = cuda.memory_stats(0)
    assert s2["bytes_in_use"] == s0["bytes_in_use"] and s2["bytes_cached"] >= 3 * 4096


@needs_torch_cuda
def test_torch_cuda_zero_copy_both_ways(rng):
    a = rng.standard_normal((64, 33)).astype(np.float32)
    t = fastnn.asarray(a, device="cuda")
    tt = torch.from_dlpack(t)
    assert tt.is_cuda and tt.data_ptr() == t.data_ptr() and tuple(tt.shape) == a.shape
    tt.mul_(2.0)  # on torch's stream; t.numpy() must see it once torch's work is ordered first
    torch.cuda.synchronize()
    np.testing.assert_allclose(t.numpy(), 2 * a)
    # The block stays in use while torch holds it, and goes back to the cache afterwards.
    in_use = cuda.memory_stats(0)["bytes_in_use"]
    del t
    assert cuda.memory_stats(0)["bytes_in_use"] == in_use
    del tt
    assert cuda.memory_stats(0)["bytes_in_use"] < in_use

    src = torch.arange(24, dtype=torch.float32, device="cuda").reshape(4, 6)
    f = fastnn.from_dlpack(src)
    assert f.data_ptr() == src.data_ptr() and f.device == "cuda:0" and f.shape == (4, 6)
    np.testing.assert_array_equal(f.numpy(), src.cpu().numpy())
    g = fastnn.from_dlpack(src.T[1:, ::2])  # strided view
    np.testing.assert_array_equal(g.numpy(), src.T[1:, ::2].cpu().numpy())
    assert not g.is_contiguous()
    np.testing.assert_array_equal(g.to("cuda").numpy(), g.numpy())
    assert fastnn.asarray(src, device="cuda").data_ptr() == src.data_ptr()


@needs_torch_cuda
def test_torch_side_stream_sees_fastnn_writes(rng):
    a = rng.standard_normal(1 << 20).astype(np.float32)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        t = fastnn.asarray(a, device="cuda")
        tt = torch.from_dlpack(t)  # passes `side`: it must wait for fastnn's stream
        total = float(tt.double().sum())
    np.testing.assert_allclose(total, a.astype(np.float64).sum(), rtol=1e-6)


@needs_cupy
def test_cupy_zero_copy(rng):
    a = rng.standard_normal((10, 3)).astype(np.float32)
    t = fastnn.asarray(a, device="cuda")
    c = cupy.from_dlpack(t)
    assert c.data.ptr == t.data_ptr()
    np.testing.assert_array_equal(cupy.asnumpy(c), a)
    c2 = cupy.asarray(t)  # through __cuda_array_interface__
    assert c2.data.ptr == t.data_ptr()
    src = cupy.arange(12, dtype=cupy.float64).reshape(3, 4)
    f = fastnn.from_dlpack(src)
    assert f.data_ptr() == src.data.ptr
    np.testing.assert_array_equal(f.numpy(), cupy.asnumpy(src))


# ---------------------------------------------------------------- tensor.py's CUDA paths, on a fake
# A stand-in for fastnn._cuda that keeps "device" memory in host byte buffers, so that the Python
# logic of CUDA tensors (shapes, strides, offsets, gathers, conversions, protocol dicts) is checked
# on every machine. The real module is checked by the GPU tests above.

class _FakeStorage:
    def __init__(self, nbytes, device=0, buf=None):
        self.buf = np.zeros(max(nbytes, 1), np.uint8) if buf is None else buf
        self.nbytes = nbytes
        self.ptr = self.buf.ctypes.data if nbytes else 0
        self.device_type, self.device_id, self.cached = 2, device, buf is None


class _FakeCuda:
    STREAM = 0xABC0

    def __init__(self):
        self.exports = []

    def empty(self, nbytes, device):
        return _FakeStorage(nbytes, device)

    def copy_from_host(self, dst, off, src):
        assert src.flags.c_contiguous and off + src.nbytes <= dst.nbytes
        dst.buf[off:off + src.nbytes] = src.reshape(-1).view(np.uint8)

    def copy_to_host(self, src, off, dst):
        assert dst.flags.c_contiguous and 0 <= off and off + dst.nbytes <= src.nbytes
        dst.reshape(-1).view(np.uint8)[:] = src.buf[off:off + dst.nbytes]

    def copy_device(self, dst, doff, src, soff, n):
        dst.buf[doff:doff + n] = src.buf[soff:soff + n]

    def stream(self, device):
        return self.STREAM

    def synchronize(self, device):
        pass

    def export_dlpack(self, storage, offset, shape, strides, code, bits, stream, versioned=False,
                      copied=False):
        self.exports.append((storage, offset, tuple(shape), tuple(strides), code, bits, stream,
                             versioned, copied))
        return "capsule"

    def import_dlpack(self, capsule):
        return capsule  # the fake producer below hands over the parsed tuple


@pytest.fixture
def fake_cuda(monkeypatch):
    fake = _FakeCuda()
    monkeypatch.setattr(cuda, "_require", lambda: fake)
    monkeypatch.setattr(cuda, "device_count", lambda: 2)
    return fake


def _fake_device_producer(a):
    """A producer of CUDA memory (the fake's) viewing the same bytes as NumPy array `a`."""
    item = a.itemsize
    lo = sum(min(0, (n - 1) * s) for n, s in zip(a.shape, a.strides)) if a.size else 0
    hi = sum(max(0, (n - 1) * s) for n, s in zip(a.shape, a.strides)) if a.size else -item
    # Copy the reachable bytes into a buffer and describe `a` inside it.
    whole = np.zeros(hi - lo + item, np.uint8)
    if a.size:
        view = np.lib.stride_tricks.as_strided(whole[-lo:].view(a.dtype), a.shape, a.strides)
        view[...] = a
    storage = _FakeStorage(hi - lo + item if a.size else 0, 0, buf=whole)
    parsed = (storage, a.shape, tuple(s // item for s in a.strides),
              ({"f": 2, "i": 0, "u": 1, "b": 6}[a.dtype.kind], 8 * item, 1), -lo)
    calls = []

    class Producer:  # predates DLPack 1.0: no max_version argument
        def __dlpack__(self, stream=None):
            calls.append(stream)
            return parsed

        def __dlpack_device__(self):
            return (2, 0)

    return Producer(), calls


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_fake_cuda_round_trip(fake_cuda, shape, dtype, rng):
    a = _data(shape, dtype, rng)
    t = fastnn.asarray(a, device="cuda")
    assert t.device == "cuda:0" and t.shape == a.shape and t.dtype == a.dtype and t.is_cuda
    assert t.is_contiguous() and t.__dlpack_device__() == (2, 0)
    np.testing.assert_array_equal(t.numpy(), a)
    assert t.numpy().shape == a.shape
    np.testing.assert_array_equal(t.to("cpu").numpy(), a)
    assert t.to("cuda:0") is t
    np.testing.assert_array_equal(t.to("cuda:1").numpy(), a)
    assert t.to("cuda:1").device == "cuda:1"
    np.testing.assert_array_equal(t.copy().numpy(), a)


@pytest.mark.parametrize("kind", ["step", "transpose", "negative", "broadcast", "column"])
def test_fake_cuda_strided_import_and_gather(fake_cuda, kind, rng):
    a = _strided_views(rng)[kind]
    producer, calls = _fake_device_producer(a)
    t = fastnn.from_dlpack(producer)
    assert calls == [_FakeCuda.STREAM]  # told fastnn's stream, after a max_version TypeError
    assert t.shape == a.shape and t.strides == a.strides and t.device == "cuda:0"
    assert t.is_contiguous() == a.flags.c_contiguous
    np.testing.assert_array_equal(t.numpy(), a)
    np.testing.assert_array_equal(t.copy().numpy(), a)
    np.testing.assert_array_equal(t.to("cuda:1").numpy(), a)
    np.testing.assert_array_equal(t.astype(np.float64).numpy(), a.astype(np.float64))
    cai = t.__cuda_array_interface__
    assert cai["strides"] == (None if a.flags.c_contiguous else a.strides)


def test_fake_cuda_protocols(fake_cuda, rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    t = fastnn.asarray(a, device="cuda")
    cai = t.__cuda_array_interface__
    assert cai == {"shape": (3, 4), "typestr": "<f4", "descr": [("", "<f4")],
                   "data": (t.data_ptr(), False), "strides": None, "version": 3,
                   "stream": _FakeCuda.STREAM}
    assert t.__dlpack__() == "capsule"
    storage, offset, shape, strides, code, bits, stream, versioned, copied = fake_cuda.exports[-1]
    assert (offset, shape, strides, code, bits, stream) == (0, (3, 4), (4, 1), 2, 32, 1)
    assert storage is t._storage and not versioned and not copied
    t.__dlpack__(stream=-1)
    assert fake_cuda.exports[-1][6] == -1
    t.__dlpack__(stream=7777, max_version=(1, 2))
    assert fake_cuda.exports[-1][6:] == (7777, True, False)
    t.__dlpack__(max_version=(0, 8))
    assert fake_cuda.exports[-1][7] is False
    t.__dlpack__(copy=True)
    assert fake_cuda.exports[-1][0] is not t._storage and fake_cuda.exports[-1][8] is True
    for bad, err in ((0, ValueError), (-5, ValueError), ("s", TypeError), (1.0, TypeError),
                     (True, TypeError)):
        with pytest.raises(err):
            t.__dlpack__(stream=bad)
    with pytest.raises(BufferError):
        t.__dlpack__(dl_device=(1, 0), copy=False)
    h = np.from_dlpack(_dlpack_holder(t.__dlpack__(dl_device=(1, 0))))
    np.testing.assert_array_equal(h, a)
    with pytest.raises(TypeError, match="numpy"):
        np.asarray(t)
    assert "device='cuda:0'" in repr(t) and "shape=" not in repr(t)
    assert "shape=(300,)" in repr(fastnn.asarray(np.zeros(300, np.float32), device="cuda"))
    with pytest.raises(ValueError, match="does not exist"):
        fastnn.asarray(a, device="cuda:2")
    e = fastnn.asarray(np.zeros((0, 2), np.float32), device="cuda")
    assert e.__cuda_array_interface__["data"] == (0, False) and e.numpy().shape == (0, 2)


def test_fake_cuda_asarray_conversions(fake_cuda):
    t = fastnn.asarray([[1.0, 2.0]], device="cuda")
    assert t.dtype == np.float32 and t.device == "cuda:0"
    u = fastnn.asarray(t, device="cuda", dtype=np.float64)
    assert u.dtype == np.float64 and u.device == "cuda:0"
    np.testing.assert_array_equal(u.numpy(), [[1.0, 2.0]])
    assert fastnn.asarray(t, device="cpu").device == "cpu"
    assert fastnn.asarray(np.float64(2.0), device="cuda").numpy().shape == ()
