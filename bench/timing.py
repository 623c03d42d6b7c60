"""Wall-clock timing of a zero-argument callable."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, asdict


@dataclass(frozen=True)
class TimerConfig:
    warmup: int = 3
    # A single sample must last at least this long; sub-microsecond ops would
    # otherwise be dominated by perf_counter granularity and loop overhead.
    min_sample_s: float = 2e-3
    min_repeats: int = 5
    # Keep sampling until this much time has been spent, so fast ops collect
    # many samples and the median is stable.
    min_total_s: float = 0.5
    max_repeats: int = 200
    # Caps slow ops (2048^3 at one thread) so one row cannot eat the run.
    max_total_s: float = 5.0


FULL = TimerConfig()
QUICK = TimerConfig(warmup=1, min_sample_s=5e-4, min_repeats=3,
                    min_total_s=0.05, max_repeats=50, max_total_s=0.5)


@dataclass(frozen=True)
class Timing:
    median_s: float
    min_s: float
    max_s: float
    repeats: int       # number of samples
    number: int        # calls per sample
    total_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def _calibrate(fn, min_sample_s: float) -> int:
    """Smallest power-of-two call count whose batch lasts >= min_sample_s."""
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_sample_s or number >= 1 << 20:
            return number
        number *= 2


def measure(fn, cfg: TimerConfig = FULL) -> Timing:
    """Median per-call time of ``fn`` after warm-up."""
    # Warm-up pays for page faults, thread-pool start-up and lazy dispatch.
    for _ in range(cfg.warmup):
        fn()
    number = _calibrate(fn, cfg.min_sample_s)

    samples: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
        spent = time.perf_counter() - start
        if len(samples) >= cfg.max_repeats:
            break
        if len(samples) >= cfg.min_repeats and spent >= cfg.min_total_s:
            break
        # A median of fewer than three samples is just one noisy sample.
        if len(samples) >= 3 and spent >= cfg.max_total_s:
            break
    return Timing(
        median_s=statistics.median(samples),
        min_s=min(samples),
        max_s=max(samples),
        repeats=len(samples),
        number=number,
        total_s=time.perf_counter() - start,
    )
