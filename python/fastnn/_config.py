"""Threads, SIMD path and the build/runtime description (`show_config`)."""

import platform

from fastnn import _C


def get_num_threads():
    """Number of CPU threads fastnn kernels use (default: the cores available to the process)."""
    return _C.get_num_threads()


def set_num_threads(n):
    """Set the number of CPU threads fastnn kernels use (an integer >= 1)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _C.set_num_threads(n)


def get_simd():
    """The SIMD kernel path in use: 'avx512', 'avx2' or 'scalar'."""
    return _C.get_simd()


def set_simd(name=None):
    """Pin the SIMD kernel path ('avx512', 'avx2', 'scalar'); None restores the best available.

    The environment variable FASTNN_SIMD does the same at start-up. Asking for a path this CPU
    does not support raises ValueError.
    """
    _C.set_simd(_C.best_simd() if name is None else str(name))


def show_config(print_out=False):
    """Describe this build and machine; returns a dict (and prints it when print_out is True)."""
    from fastnn import __version__, cuda

    info = {
        "version": __version__,
        "python": platform.python_version(),
        "compiler": _C.compiler,
        "machine": platform.machine(),
        "cpu_features": _C.cpu_features(),
        "simd": get_simd(),
        "simd_best": _C.best_simd(),
        "threads": get_num_threads(),
        "hardware_threads": _C.hardware_threads(),
        "cuda_compiled": cuda.is_compiled(),
        "cuda_available": cuda.is_available(),
    }
    info.update(cuda.describe())
    if print_out:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return info
