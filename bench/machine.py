"""What the numbers were measured on."""

from __future__ import annotations

import platform

import numpy as np

import fastnn

# Per core per cycle: 2 FMA pipes x 16 fp32 lanes (512-bit) x 2 flops per FMA.
FLOPS_PER_CYCLE = 2 * 16 * 2


def cpu_info() -> dict:
    model = None
    mhz: list[float] = []
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "cpu MHz":
                    try:
                        mhz.append(float(value))
                    except ValueError:
                        pass
    except OSError:
        pass
    return {
        "model": model or platform.processor() or platform.machine(),
        # The current clock varies per core; the highest one is the closest
        # thing to the frequency the kernels actually ran at.
        "mhz": max(mhz) if mhz else None,
    }


def peak_gflops(threads: int, ghz: float | None) -> float | None:
    if not ghz:
        return None
    return threads * ghz * FLOPS_PER_CYCLE


def describe(blas_mechanism: str) -> dict:
    cpu = cpu_info()
    return {
        "fastnn": fastnn.show_config(print_out=False),
        "cpu_model": cpu["model"],
        "cpu_mhz": cpu["mhz"],
        "numpy": np.__version__,
        "blas_thread_control": blas_mechanism,
        "platform": platform.platform(),
    }
