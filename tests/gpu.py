"""What the GPU tests share: which machine runs them, and device memory held in fastnn.Tensor
(no torch: a GPU test skips for want of a GPU, never for want of torch).

Two kinds of GPU test. Those of the CUDA kernels need the real fastnn._cuda on a device
(`needs_gpu`). Those of the glue from fastnn.ops / the engines to fastnn._cuda run on a real
device or, with FASTNN_CUDA_STANDIN=1, on the host stand-in (tests/_cuda_standin.py) that this
module installs once for the whole process (`needs_device`). Device-side calls below a public op
go through `fastnn._cuda.<fn>` with the arguments of `fastnn._C.<fn>`, CUDA Tensors in place of
NumPy arrays (the one-signature-per-op contract of the bindings).

FASTNN_CUDA_STANDIN=kernels also runs the kernel tests on the stand-in: the CPU kernels in place
of the CUDA ones, a check of a test's harness (its calls, poisoning, comparisons), not of CUDA."""

import os

import numpy as np
import pytest

import fastnn
from fastnn import cuda
from fastnn.tensor import Tensor

from check import poisoned

STANDIN = bool(os.environ.get("FASTNN_CUDA_STANDIN"))


def _real_gpu():
    """A device behind the real fastnn._cuda (asked before the stand-in can answer)."""
    if STANDIN:
        return False
    mod = cuda._load()
    try:
        return mod is not None and int(mod.device_count()) > 0
    except Exception:
        return False


REAL_GPU = _real_gpu()

if STANDIN:
    import _cuda_standin

    _cuda_standin.install()

HARNESS_CHECK = os.environ.get("FASTNN_CUDA_STANDIN") == "kernels"

needs_gpu = pytest.mark.skipif(
    not (REAL_GPU or HARNESS_CHECK),
    reason=f"needs a usable CUDA device and fastnn built with CUDA (compiled="
           f"{cuda.is_compiled()}; the host stand-in does not run CUDA kernels)")
needs_device = pytest.mark.skipif(
    not cuda.is_available(), reason=f"needs a usable CUDA device and fastnn built with CUDA, "
                                    f"or FASTNN_CUDA_STANDIN=1 (compiled={cuda.is_compiled()})")
needs_module = pytest.mark.skipif(not cuda.is_compiled(),
                                  reason="fastnn was built without its CUDA module")


def backend():
    """fastnn._cuda (or the stand-in in its place)."""
    return cuda._require()


def dev(a, device="cuda"):
    """A device copy of a host array (None stays None)."""
    return None if a is None else fastnn.asarray(np.ascontiguousarray(a), device=device)


def host(t):
    """A host copy of a device tensor (fastnn's stream is waited for)."""
    return t.numpy()


def poisoned_dev(shape, dtype):
    """A device output filled with NaN: an element the kernel leaves unwritten stays NaN."""
    return dev(poisoned(shape, dtype))


def view(base, offset, shape, strides=None):
    """A view of device tensor `base` starting `offset` elements in, with element `strides`
    (default contiguous): sub-tensors off a 16-byte boundary, padded leading dimensions."""
    if strides is None:
        strides = tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))
    item = base.dtype.itemsize
    return Tensor._wrap_storage(base._storage, base._offset + offset * item, shape, strides,
                                base.dtype, base._index)


def padded(a, fill=np.nan):
    """A device copy of the 2-D array `a` inside a buffer whose leading dimension is a multiple
    of 4 and at least 4 wider, the padding `fill` (NaN: a kernel that reads past a row's logical
    end poisons its result, one that writes there leaves a finite value). Returns (the view of
    the logical part, the buffer)."""
    rows, cols = a.shape
    ld = (cols + 3) // 4 * 4 + 4
    buf = np.full((rows, ld), fill, a.dtype)
    buf[:, :cols] = a
    base = dev(buf)
    return view(base, 0, (rows, cols), (ld, 1)), base


def misaligned(arrays):
    """Device copies of `arrays` as views into one buffer, each starting one element past a
    16-byte boundary (the kernels' scalar path instead of their 128-bit one)."""
    dtype = arrays[0].dtype
    step = 16 // dtype.itemsize
    starts, off = [], 1
    for a in arrays:
        starts.append(off)
        off = (off + a.size + step - 1) // step * step + 1  # the next offset of 1 (mod step)
    buf = np.zeros(off + step, dtype)
    for a, s in zip(arrays, starts):
        buf[s:s + a.size] = a.reshape(-1)
    base = dev(buf)
    out = [view(base, s, a.shape) for a, s in zip(arrays, starts)]
    assert all(t.data_ptr() % 16 != 0 for t in out)
    return out
