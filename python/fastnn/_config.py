"""Threads, SIMD path and the build/runtime description (`show_config`)."""

from __future__ import annotations

import platform
from typing import Any

from fastnn import _C


def get_num_threads() -> int:
    """Number of CPU threads fastnn kernels use.

    Unless set_num_threads was called (threadpoolctl's limits call it too), the count comes from
    the environment variable FASTNN_NUM_THREADS, else OMP_NUM_THREADS (as joblib sets it in its
    workers), read when fastnn first needs it; else the CPUs this process may use: its CPU
    affinity (taskset), lowered by a cgroup CPU quota (a container's --cpus) rounded up.
    """
    return _C.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of CPU threads fastnn kernels use: an integer from 1 to 4 per CPU this
    process may run on (``fastnn.show_config()["max_threads"]``); ValueError outside that range.

    Threads beyond the cores only wait for one, and a mistaken huge count would exhaust the
    system's threads. An environment variable above the cap is clamped to it instead.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _C.set_num_threads(n)


def get_simd() -> str:
    """The SIMD kernel path in use: 'avx512', 'avx2' or 'scalar'."""
    return _C.get_simd()


def set_simd(name: str | None = None) -> None:
    """Pin the SIMD kernel path ('avx512', 'avx2', 'scalar'); None restores the best available.

    The environment variable FASTNN_SIMD does the same at start-up. Asking for a path this CPU
    does not support raises ValueError.
    """
    _C.set_simd(_C.best_simd() if name is None else str(name))


def show_config(print_out: bool = False) -> dict[str, Any]:
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
        # precision="bf16" on the CPU: "avx512_bf16 (vdpbf16ps)" or the fallback's description.
        "bf16_gemm": _C.bf16_kernel(),
        "threads": get_num_threads(),
        "hardware_threads": _C.hardware_threads(),
        "max_threads": _C.max_threads(),
        "cuda_compiled": cuda.is_compiled(),
        "cuda_available": cuda.is_available(),
    }
    info.update(cuda.describe())
    if print_out:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return info
