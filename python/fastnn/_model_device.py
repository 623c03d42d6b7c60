"""The device-specific half of fastnn.Sequential: the GPU engine (fastnn._cuda.CudaNetwork) behind
the same interface as the CPU engine, and the data movement around it.

- Data: NumPy inputs are validated on the host as on the CPU and uploaded once per fit / evaluate
  / predict call; inputs already on the model's GPU (fastnn.Tensor, or anything exposing
  ``__dlpack__`` / ``__cuda_array_interface__`` there: PyTorch, CuPy) are used without a copy
  when they have the engine's form (float32 C-contiguous (n, input_dim) features; int64 (n,)
  class labels, or float32 (n, outputs) targets), and copied through the host otherwise. GPU
  features are not scanned for NaN on the host (a NaN shows up as a non-finite loss); GPU labels
  are range-checked on the device once per call.
- predict returns NumPy for NumPy input and a CUDA fastnn.Tensor for GPU input.
- Weights, optimizer state and batch-norm buffers live on the device; params() and friends
  return host copies, push(kind) writes the last copies of `kind` back (set_weights, load).
"""

import numpy as np

from fastnn import cuda as _cuda_api


def parse_device(device):
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
    return index


PRECISIONS = ("fp32", "tf32", "bf16")


def check_precision(precision, index):
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "fp32" and index is None:
        raise ValueError(f"precision: {precision!r} needs device='cuda' (the CPU engine computes "
                         f"in fp32)")
    return precision


def on_gpu(obj):
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


def as_tensor(obj):
    """A fastnn.Tensor sharing memory with a GPU object."""
    from fastnn.tensor import Tensor, from_dlpack

    if isinstance(obj, Tensor):
        return obj
    if hasattr(obj, "__dlpack__"):
        return from_dlpack(obj)
    raise TypeError(f"{type(obj).__name__}: a GPU array without __dlpack__ is not supported; "
                    f"pass a fastnn.Tensor, a PyTorch or CuPy array")


def to_host(obj):
    """A NumPy copy of a GPU object (or the object itself when it is not on the GPU)."""
    return as_tensor(obj).numpy() if on_gpu(obj) else obj


def gpu_features(X, input_dim, index):
    """X as a CUDA tensor usable without a copy, or None (then go through the host)."""
    if not on_gpu(X):
        return None
    t = as_tensor(X)
    if (t.device == f"cuda:{index}" and t.dtype == np.float32 and t.ndim == 2
            and t.shape[1] == input_dim and t.is_contiguous()):
        return t
    return None


def gpu_targets(y, n, loss, outputs, index):
    """(labels, targets) as CUDA tensors usable without a copy, or None."""
    if not on_gpu(y):
        return None
    t = as_tensor(y)
    if t.device != f"cuda:{index}" or not t.is_contiguous() or len(t) != n:
        return None
    if loss in ("softmax_cross_entropy", "sampled_softmax"):
        if t.dtype == np.int64 and t.ndim == 1:
            return t, None
        return None
    if t.dtype == np.float32 and (t.shape == (n, outputs) or (outputs == 1 and t.shape == (n,))):
        return None, t
    return None


class DeviceNet:
    """fastnn._cuda.CudaNetwork with the CPU engine's interface (model.py calls either)."""

    def __init__(self, raw, index):
        self.raw = raw
        self.index = index
        self._copies = {}

    # ------------------------------------------------------------ state
    @property
    def step(self):
        return self.raw.step

    @step.setter
    def step(self, value):
        self.raw.step = int(value)

    @property
    def lr(self):
        return self.raw.lr

    @lr.setter
    def lr(self, value):
        self.raw.lr = float(value)

    @property
    def graph_replays(self):
        return self.raw.graph_replays

    def param_names(self):
        return self.raw.param_names()

    def locked(self, exclusive):
        """A context manager holding the network's mutex (the GPU engine runs one call at a
        time; readers take it whole too): set_weights holds it from reading the host copies to
        pushing them back, so that no call sees half of the change."""
        return self.raw.locked(bool(exclusive))

    def _read(self, kind):
        arrays = list(self.raw.read(kind))
        self._copies[kind] = arrays
        return arrays

    def params(self):
        return self._read("params")

    def grads(self):
        return self._read("grads")

    def optimizer_state(self):
        return self._read("state")

    def buffers(self):
        return self._read("buffers")

    def push(self, *kinds):
        """Writes the host copies last returned for each kind back to the device."""
        for kind in kinds:
            if kind in self._copies:
                self.raw.write(kind, self._copies.pop(kind))

    def take_diagnostics(self):
        return self.raw.take_diagnostics()

    # ------------------------------------------------------------ data
    def stage(self, a, dtype):
        """A CUDA tensor on this device holding `a` (None stays None; a tensor already there, of
        the right dtype and contiguous, is used as it is)."""
        from fastnn.tensor import Tensor

        if a is None:
            return None
        if isinstance(a, Tensor) and a.is_cuda:
            if a.device == f"cuda:{self.index}" and a.dtype == dtype and a.is_contiguous():
                return a
            return a.to(f"cuda:{self.index}", dtype=dtype)
        a = np.ascontiguousarray(a, dtype=dtype)
        t = Tensor._empty_cuda(a.shape, np.dtype(dtype), self.index)
        if a.size:
            self.raw.upload(t.data_ptr(), a)  # through pinned staging buffers
        return t

    @staticmethod
    def _ptr(t):
        return 0 if t is None or t.size == 0 else int(t.data_ptr())

    def check_labels(self, labels):
        if labels is not None:
            self.raw.check_labels(self._ptr(labels), len(labels))

    # ------------------------------------------------------------ engine calls
    def begin_epoch(self, n, epoch, shuffle):
        self.raw.begin_epoch(int(n), int(epoch), bool(shuffle))

    def _data(self, X, labels, targets, weights):
        X = self.stage(X, np.float32)
        labels = self.stage(labels, np.int64)
        targets = self.stage(targets, np.float32)
        weights = self.stage(weights, np.float32)
        return (X, labels, targets, weights)

    def train_batches(self, X, labels, targets, batch_size, first, last, accumulate_steps,
                      clipnorm, sample_weight=None):
        X, labels, targets, w = self._data(X, labels, targets, sample_weight)
        return self.raw.train_batches(self._ptr(X), self._ptr(labels), self._ptr(targets), len(X),
                                      batch_size, first, last, accumulate_steps, clipnorm,
                                      self._ptr(w))

    def evaluate(self, X, labels, targets, batch_size, sample_weight=None):
        X, labels, targets, w = self._data(X, labels, targets, sample_weight)
        return self.raw.evaluate(self._ptr(X), self._ptr(labels), self._ptr(targets), len(X),
                                 batch_size, self._ptr(w))

    def predict(self, X, batch_size):
        """A CUDA tensor (n, outputs)."""
        from fastnn.tensor import Tensor

        X = self.stage(X, np.float32)
        out = Tensor._empty_cuda((len(X), self.raw.output_dim), np.dtype(np.float32), self.index)
        if len(X):
            self.raw.predict(self._ptr(X), len(X), batch_size, self._ptr(out))
        return out


def make_net(model, specs, loss, optimizer, sampled_config):
    """The GPU engine for `model` (Sequential with a CUDA device)."""
    if loss == "sampled_softmax":
        raise NotImplementedError("the sampled softmax is not available on the GPU yet; train "
                                  "with device='cpu'")
    raw = _cuda_api._require().CudaNetwork(model.input_dim, specs, loss, optimizer, model.seed,
                                           model._device_index, model.precision,
                                           bool(model.fused_mlp), bool(model.graphs))
    return DeviceNet(raw, model._device_index)


def fit_data(model, X, y):
    """(X, labels, targets, gpu) for fit / evaluate on a GPU model: CUDA tensors used as they are
    where they have the engine's form, else the host path's NumPy arrays (gpu False)."""
    Xd = gpu_features(X, model.input_dim, model._device_index)
    if Xd is not None:
        yd = gpu_targets(y, len(Xd), model.loss, model.output_dim, model._device_index)
        if yd is not None:
            labels, targets = yd
            if targets is not None and targets.ndim == 1:
                targets = None if targets is None else _reshape_column(targets)
            return Xd, labels, targets, True
        labels, targets = model._y(to_host(y), len(Xd))
        return Xd, labels, targets, True
    X = model._x(to_host(X))
    labels, targets = model._y(to_host(y), len(X))
    return X, labels, targets, False


def _reshape_column(t):
    """(n,) CUDA tensor -> (n, 1) view of the same memory."""
    from fastnn.tensor import Tensor

    return Tensor._wrap_storage(t._storage, t._offset, (t.shape[0], 1), (1, 1), t.dtype, t._index)
