"""A host-memory fake of fastnn._cuda: the GPU path of fastnn.ops and the GPU model's Python
plumbing run without a GPU (FASTNN_CUDA_STANDIN=1 runs the GPU tests on it; install(monkeypatch)
in a test). It checks the glue, not the CUDA kernels.

"Device" memory is host memory (one NumPy byte buffer per storage). fastnn._cuda has the same
kernels, names and arguments as fastnn._C, taking CUDA tensors where _C takes NumPy arrays: so
each kernel here is the _C function of that name run on NumPy views of the tensors' memory, its
NumPy results put back on the device as tensors. Besides the kernels, the storage and stream
functions that fastnn.Tensor needs, and the engines."""

import ctypes
import threading

import numpy as np

from fastnn import _C
from fastnn.tensor import Tensor


class Storage:
    def __init__(self, nbytes, device):
        self.buf = np.zeros(max(int(nbytes), 1), np.uint8)
        self.nbytes = int(nbytes)
        self.ptr = self.buf.ctypes.data
        self.device_id = device
        self.readonly = False
        self.cached = True


def _on_host(t):
    """A CUDA tensor of the stand-in as a NumPy view of its memory (writes go through)."""
    return np.ndarray(t._shape, t._dtype, buffer=t._storage.buf, offset=t._offset,
                      strides=t.strides)


class StandIn:
    def __init__(self, devices=2):
        self.devices = devices
        self.calls = []

    # ------------------------------------------------------------ storage and streams
    def device_count(self):
        return self.devices

    def empty(self, nbytes, device):
        assert 0 <= device < self.devices
        return Storage(nbytes, device)

    def copy_from_host(self, dst, off, src):
        src = np.ascontiguousarray(src)
        dst.buf[off:off + src.nbytes] = src.reshape(-1).view(np.uint8)

    def copy_to_host(self, src, off, dst):
        dst.reshape(-1).view(np.uint8)[...] = src.buf[off:off + dst.nbytes]

    def copy_device(self, dst, doff, src, soff, nbytes):
        dst.buf[doff:doff + nbytes] = src.buf[soff:soff + nbytes].copy()

    def stream(self, device):
        return 1000 + device

    def synchronize(self, device):
        pass

    # ------------------------------------------------------------ the engines
    Network32 = _C.Network32
    Network64 = _C.Network64

    def CudaNetwork(self, input_dim, layers, loss, optimizer, seed, device=0, precision="fp32",
                    fused_mlp=True, graphs=True):
        assert 0 <= device < self.devices
        assert precision in ("fp32", "tf32", "bf16")
        net = StandInNetwork(_C.Network32(input_dim, layers, loss, optimizer, seed, {}), device,
                             precision, fused_mlp, graphs)
        self.calls.append(("CudaNetwork", device, precision, fused_mlp, graphs))
        return net

    # ------------------------------------------------------------ every kernel of fastnn._C
    def __getattr__(self, name):
        kernel = getattr(_C, name)  # AttributeError for a name _C lacks, as the real module

        def run(*args, **kwargs):
            self.calls.append(name)
            devices = set()

            def to_host(a):
                if type(a) is list or type(a) is tuple:
                    return [to_host(x) for x in a]
                assert not isinstance(a, np.ndarray), f"{name}: a NumPy array reached the GPU"
                if type(a) is not Tensor:
                    return a
                assert a.is_cuda, f"{name}: a CPU tensor reached the GPU"
                devices.add(a._index)
                return _on_host(a)

            result = kernel(*map(to_host, args), **{k: to_host(v) for k, v in kwargs.items()})
            assert len(devices) == 1, f"{name}: tensors on devices {sorted(devices)}"
            return _to_device(result, devices.pop())

        return run


def _to_device(result, index):
    if isinstance(result, np.ndarray):
        return Tensor._upload(result, index)
    if isinstance(result, tuple):
        return tuple(_to_device(r, index) for r in result)
    return result  # a loss, a count, None


# ------------------------------------------------------------ the pointer-based GPU engine
# fastnn._cuda.CudaNetwork, as today's fastnn/_model_device.py drives it (raw device addresses);
# it goes once both engines share the _C interface (Network32/Network64 above).
def view(ptr, n, dtype):
    """n elements of dtype at host address ptr, as a writable array."""
    dtype = np.dtype(dtype)
    if n == 0:
        return np.empty(0, dtype)
    assert ptr, "null pointer for a non-empty array"
    raw = (ctypes.c_char * (n * dtype.itemsize)).from_address(ptr)
    return np.frombuffer(raw, dtype=dtype)


class StandInNetwork:
    """fastnn._cuda.CudaNetwork (csrc/bindings/cuda_engine.cpp) on the CPU engine: device
    addresses are host addresses of stand-in storages, viewed as arrays and handed to
    _C.Network32. It checks the Python plumbing (pointers, sizes, what is staged where), not the
    GPU engine."""

    def __init__(self, net, device, precision, fused_mlp, graphs):
        self.net = net
        self.device = device
        self.precision, self.fused_mlp, self.graphs = precision, fused_mlp, graphs
        self.graph_replays = 0
        self.calls = []
        self._mutex = threading.RLock()

    input_dim = property(lambda self: self.net.input_dim)
    output_dim = property(lambda self: self.net.output_dim)

    @property
    def step(self):
        return self.net.step

    @step.setter
    def step(self, v):
        self.net.step = v

    @property
    def lr(self):
        return self.net.lr

    @lr.setter
    def lr(self, v):
        self.net.lr = v

    def param_names(self):
        return self.net.param_names()

    def locked(self, exclusive):
        # The GPU engine's recursive mutex, taken whole by readers too; like the real engine,
        # each call below holds it too.
        return self._mutex

    def _views(self, kind):
        return {"params": self.net.params, "grads": self.net.grads,
                "state": self.net.optimizer_state, "buffers": self.net.buffers}[kind]()

    def read(self, kind):
        with self._mutex:
            return [np.array(v, copy=True) for v in self._views(kind)]

    def write(self, kind, arrays):
        with self._mutex:
            views = self._views(kind)
            assert len(arrays) == len(views)
            for v, a in zip(views, arrays):
                v[...] = np.asarray(a, np.float32).reshape(v.shape)

    def upload(self, dst, src):
        assert src.flags.c_contiguous
        view(dst, src.nbytes, np.uint8)[...] = src.reshape(-1).view(np.uint8)
        self.calls.append(("upload", dst, src.nbytes))

    def begin_epoch(self, n, epoch, shuffle):
        self.net.begin_epoch(n, epoch, shuffle)

    def check_labels(self, labels, n):
        lab = view(labels, n, np.int64)
        C = self.net.output_dim
        bad = (lab < 0) | (lab >= C)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"y: class labels must be in [0, {C}), got {lab[i]} at position {i}")

    def _data(self, X, labels, targets, n, w):
        assert X, "X: null device pointer"
        assert bool(labels) != bool(targets), "exactly one of labels / targets"
        D, C = self.net.input_dim, self.net.output_dim
        return (view(X, n * D, np.float32).reshape(n, D),
                view(labels, n, np.int64) if labels else None,
                view(targets, n * C, np.float32).reshape(n, C) if targets else None,
                view(w, n, np.float32) if w else None)

    def train_batches(self, X, labels, targets, n, batch_size, first, last, accumulate_steps,
                      clipnorm, sample_weight=0):
        self.calls.append(("train_batches", X, labels, targets, n))
        x, lab, t, w = self._data(X, labels, targets, n, sample_weight)
        with self._mutex:
            return self.net.train_batches(x, lab, t, batch_size, first, last, accumulate_steps,
                                          clipnorm, w)

    def evaluate(self, X, labels, targets, n, batch_size, sample_weight=0):
        x, lab, t, w = self._data(X, labels, targets, n, sample_weight)
        with self._mutex:
            return self.net.evaluate(x, lab, t, batch_size, w)

    def predict(self, X, n, batch_size, out):
        D, C = self.net.input_dim, self.net.output_dim
        x = view(X, n * D, np.float32).reshape(n, D)
        with self._mutex:
            view(out, n * C, np.float32)[...] = self.net.predict(x, batch_size).reshape(-1)

    def take_diagnostics(self):
        return self.net.take_diagnostics()


def install(monkeypatch=None):
    """Makes fastnn.cuda hand out the stand-in (for the whole process when monkeypatch is None)."""
    from fastnn import cuda
    fake = StandIn()
    setattr_ = monkeypatch.setattr if monkeypatch else setattr
    setattr_(cuda, "_require", lambda: fake)
    setattr_(cuda, "device_count", lambda: fake.devices)
    setattr_(cuda, "is_available", lambda: True)
    return fake
