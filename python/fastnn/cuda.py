"""The CUDA backend, loaded lazily: importing fastnn never needs a GPU, a driver or the CUDA
runtime. Without any of them, `is_available()` is False and `device_count()` is 0."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from fastnn import _cuda_arch

_module: ModuleType | None = None
_import_error: ImportError | None = None
_probed = False
_covered: set[int] = set()  # devices found to run this build's device code


def _load() -> ModuleType | None:
    """Import fastnn._cuda once; None when it was not built or cannot load."""
    global _module, _import_error, _probed
    if not _probed:
        _probed = True
        try:
            # import_module, not `from fastnn import _cuda`: for a module that was never built the
            # latter raises a plain ImportError ("cannot import name"), indistinguishable from a
            # module that exists but cannot load.
            _module = importlib.import_module("fastnn._cuda")
        except ModuleNotFoundError as exc:
            # fastnn._cuda itself missing is a CPU-only build ("not compiled"); any other missing
            # module is a real load failure worth reporting.
            if exc.name != "fastnn._cuda":
                _import_error = exc
        except ImportError as exc:  # built, but the module or the runtime could not be loaded
            _import_error = exc
    return _module


def is_compiled() -> bool:
    """True when this build of fastnn includes the CUDA backend."""
    return _load() is not None


def device_count() -> int:
    """Number of usable CUDA devices (0 with no GPU, no driver, or a driver that is too old)."""
    mod = _load()
    if mod is None:
        return 0
    try:
        return int(mod.device_count())
    except Exception:  # any driver error means "no usable device"
        return 0


def is_available() -> bool:
    """True when at least one CUDA device can be used."""
    return device_count() > 0


def describe() -> dict[str, Any]:
    """Runtime, driver and device names, for show_config()."""
    mod = _load()
    if mod is None:
        reason = "not compiled" if _import_error is None else f"not loaded ({_import_error})"
        return {"cuda_runtime": reason, "cuda_driver": None, "gpus": []}
    try:
        return dict(mod.describe())
    except Exception as exc:
        return {"cuda_runtime": f"error: {exc}", "cuda_driver": None, "gpus": []}


def _require() -> ModuleType:
    mod = _load()
    if mod is None:
        raise RuntimeError("fastnn was built without CUDA support"
                           if _import_error is None else f"fastnn._cuda failed to load: {_import_error}")
    if device_count() == 0:
        raise RuntimeError("no CUDA device is available (no GPU, no driver, or the driver is too old)")
    return mod


def _require_device(index: int) -> ModuleType:
    """_require(), and the check, at a device's first use, that this build holds GPU code that
    runs on it: RuntimeError naming its compute capability and the images compiled in, rather
    than a "no kernel image" error from the first kernel. `index` must be a valid device."""
    mod = _require()
    if index not in _covered:
        images = [str(a) for a in mod.compiled_architectures()]
        major, minor = mod.device_capability(int(index))
        message = _cuda_arch.coverage_error(f"cuda:{index}", (int(major), int(minor)), images)
        if message is not None:
            raise RuntimeError(message)
        _covered.add(index)
    return mod


def _fused_mlp_applies(widths: Sequence[int], activations: Sequence[str | None] | None = None,
                       precision: str = "fp32", act_params: Sequence[float] | None = None) -> bool:
    """Whether the fused MLP kernel takes a stack of widths [in, out_0, ..., out_{n-1}] with one
    activation (a name or None) per layer. Host-side only: needs the CUDA module, not a GPU."""
    mod = _load()
    if mod is None:
        return False
    n = len(widths) - 1
    acts = [None] * n if activations is None else list(activations)
    params = [0.0] * n if act_params is None else [float(p) for p in act_params]
    return bool(mod.fused_mlp_applies([int(w) for w in widths], acts, params, str(precision)))


# ---------------------------------------------------------------- device layer (fastnn.Tensor)

def memory_stats(device: int = 0) -> dict[str, int]:
    """The caching allocator's counters for `device`: bytes_in_use, peak_bytes_in_use,
    bytes_cached, num_allocs, num_cache_hits, num_cuda_malloc, num_cuda_free."""
    return dict(_require().memory_stats(int(device)))


def empty_cache(device: int | None = None) -> None:
    """Returns the cached (free) blocks of `device` (all devices when None) to the driver."""
    _require().empty_cache(-1 if device is None else int(device))


def synchronize(device: int = 0) -> None:
    """Waits until all fastnn work queued on `device` has finished."""
    _require().synchronize(int(device))


def current_stream(device: int = 0) -> int:
    """fastnn's stream on `device` as an integer cudaStream_t (all fastnn GPU work runs there)."""
    return int(_require().stream(int(device)))
