"""A host-memory fake of fastnn._cuda: the GPU path of fastnn.ops and the GPU model's Python
plumbing run without a GPU (FASTNN_CUDA_STANDIN=1 runs the GPU tests on it; install(monkeypatch)
in a test). It checks the glue, not the CUDA kernels.

"Device" memory is host memory (one NumPy byte buffer per storage). fastnn._cuda has the same
kernels, names and arguments as fastnn._C, taking CUDA tensors where _C takes NumPy arrays: so
each kernel here is the _C function of that name run on NumPy views of the tensors' memory, its
NumPy results put back on the device as tensors. Besides the kernels, the storage and stream
functions that fastnn.Tensor needs, and the engines."""

import functools

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
        # What the default build holds (cmake/cuda_architectures.cmake), and an H100 per device.
        self.images = ["sm_80", "sm_86", "sm_89", "sm_90", "compute_90"]
        self.capability = (9, 0)

    # ------------------------------------------------------------ storage and streams
    def device_count(self):
        return self.devices

    def compiled_architectures(self):
        return list(self.images)

    def device_capability(self, device):
        assert 0 <= device < self.devices
        return self.capability

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

    # ------------------------------------------------------------ the engines (one interface, bind_engine.cpp)
    @functools.cached_property
    def Network32(self):
        return _standin_network(_C.Network32, self)

    @functools.cached_property
    def Network64(self):
        return _standin_network(_C.Network64, self)


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


def _standin_network(base, fake):
    """fastnn._cuda.Network32 / Network64 (the one engine binding, csrc/bindings/bind_engine.cpp)
    on the CPU engine of the same interface: the stand-in's CUDA tensors (host memory) are handed
    to it as NumPy views. Checks the Python plumbing (what is staged where, which device), not
    the GPU engine."""

    def on_device(self, a, name):
        if a is None:
            return None
        assert getattr(a, "is_cuda", False) and a.device == f"cuda:{self.device}", \
            f"{name}: the GPU engine takes tensors on cuda:{self.device}, got {a!r}"
        assert a.is_contiguous(), f"{name}: not contiguous"
        return _on_host(a)

    class StandInNetwork(base):
        def __init__(self, input_dim, layers, loss, optimizer, seed, sampled={}, options={}):
            o = {"device": -1, "precision": "fp32", "fused_mlp": True, "graphs": True, **options}
            assert 0 <= o["device"] < fake.devices and o["precision"] in ("fp32", "tf32", "bf16")
            if base is _C.Network64:
                raise ValueError("dtype: float64 models run on the CPU only")
            if loss == "sampled_softmax":
                raise ValueError("sampled softmax: not available on the GPU yet")
            super().__init__(input_dim, layers, loss, optimizer, seed, sampled)
            self._device = o["device"]
            self.calls = []
            fake.calls.append((base.__name__, o["device"], o["precision"], o["fused_mlp"],
                               o["graphs"]))

        device = property(lambda self: self._device)

        def check_labels(self, labels):
            super().check_labels(on_device(self, labels, "y"))

        def train_batches(self, X, labels, targets, batch_size, first, last, accumulate_steps,
                          clipnorm, sample_weight=None):
            self.calls.append(("train_batches",) + tuple(
                0 if a is None else a.data_ptr() for a in (X, labels, targets)))
            host = [on_device(self, a, n) for a, n in ((X, "X"), (labels, "y"), (targets, "y"),
                                                       (sample_weight, "sample_weight"))]
            return super().train_batches(*host[:3], batch_size, first, last, accumulate_steps,
                                         clipnorm, host[3])

        def evaluate(self, X, labels, targets, batch_size, sample_weight=None):
            host = [on_device(self, a, n) for a, n in ((X, "X"), (labels, "y"), (targets, "y"),
                                                       (sample_weight, "sample_weight"))]
            return super().evaluate(*host[:3], batch_size, host[3])

        def predict(self, X, out, batch_size):
            super().predict(on_device(self, X, "X"), on_device(self, out, "out"), batch_size)

    StandInNetwork.__name__ = StandInNetwork.__qualname__ = "StandIn" + base.__name__
    return StandInNetwork


def install(monkeypatch=None):
    """Makes fastnn.cuda hand out the stand-in (for the whole process when monkeypatch is None)."""
    from fastnn import cuda
    fake = StandIn()
    setattr_ = monkeypatch.setattr if monkeypatch else setattr
    setattr_(cuda, "_require", lambda: fake)
    setattr_(cuda, "device_count", lambda: fake.devices)
    setattr_(cuda, "is_available", lambda: True)
    return fake
