"""Wall-clock timing of zero-argument callables, alone or interleaved with their peers.

Method (the one every suite and RESULTS.md table uses):
  1. warm-up calls (page faults, thread-pool start-up, lazy dispatch, caches);
  2. calibration: the smallest power-of-two number of calls whose batch lasts ``min_sample_s``
     (sub-microsecond calls would otherwise measure perf_counter and loop overhead);
  3. samples: ``time.sleep(quiet_s)`` and then one timed batch of ``number`` calls, repeated. The
     quiet gap matters on a 2-core machine: OpenBLAS's, OpenMP's and fastnn's pool threads spin
     for a while after a call returns, and whatever runs next shares the cores with them; without
     the gap one engine's spinning slows its peer's next sample (issue 14 measured 1.86x for a
     training ratio that is 0.93x-1.22x with the gap). The result is the median of the samples.

Repeats and total time: at least ``min_repeats`` samples; more only while the samples are longer
than the gap (then the gap does not dominate the row's time) and the timed time is below
``min_total_s`` and the row's wall time, gaps included, below ``max_total_s``. A row of fast calls
therefore costs about ``min_repeats x (quiet_s + min_sample_s)`` (5 x 0.31 s in FULL), and a row of
slow calls (a training epoch) stops at 3 samples once it has used ``max_total_s``.

``measure_interleaved`` takes one sample of each callable per round (fastnn, then its peers, then
fastnn again...), so load that other processes put on the machine for a few seconds hits every
engine alike instead of one engine's whole row.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, asdict


@dataclass(frozen=True)
class TimerConfig:
    warmup: int = 3
    # Sleep before each timed sample so the previous call's spinning threads have gone to sleep.
    quiet_s: float = 0.3
    # A single sample must last at least this long; sub-microsecond ops would
    # otherwise be dominated by perf_counter granularity and loop overhead.
    min_sample_s: float = 10e-3
    min_repeats: int = 5
    # Past min_repeats, keep sampling (slow ops only) until this much time has been timed.
    min_total_s: float = 0.5
    max_repeats: int = 200
    # Caps slow ops (2048^3 at one thread, a training epoch) so one row cannot eat the run;
    # counts the quiet gaps too.
    max_total_s: float = 5.0


FULL = TimerConfig()
QUICK = TimerConfig(warmup=1, quiet_s=0.05, min_sample_s=1e-3, min_repeats=3,
                    min_total_s=0.05, max_repeats=50, max_total_s=0.5)


@dataclass(frozen=True)
class Timing:
    median_s: float
    min_s: float
    max_s: float
    repeats: int       # number of samples
    number: int        # calls per sample
    total_s: float     # wall time of the sampling phase, quiet gaps included

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


class _Sampler:
    """The samples of one callable and the rule that says when it has enough."""

    def __init__(self, fn, cfg: TimerConfig):
        self.fn = fn
        self.cfg = cfg
        for _ in range(cfg.warmup):
            fn()
        self.number = _calibrate(fn, cfg.min_sample_s)
        self.samples: list[float] = []
        self.wall = 0.0

    def sample(self) -> None:
        t_start = time.perf_counter()
        time.sleep(self.cfg.quiet_s)
        t0 = time.perf_counter()
        for _ in range(self.number):
            self.fn()
        t1 = time.perf_counter()
        self.samples.append((t1 - t0) / self.number)
        self.wall += t1 - t_start

    def done(self) -> bool:
        cfg, n = self.cfg, len(self.samples)
        if n >= cfg.max_repeats:
            return True
        # A median of fewer than three samples is just one noisy sample.
        if n >= 3 and self.wall >= cfg.max_total_s:
            return True
        if n < cfg.min_repeats:
            return False
        sample_s = self.number * statistics.median(self.samples)
        if sample_s < cfg.quiet_s:  # the gap dominates: more samples would mostly be sleep
            return True
        return self.number * sum(self.samples) >= cfg.min_total_s

    def timing(self) -> Timing:
        return Timing(median_s=statistics.median(self.samples), min_s=min(self.samples),
                      max_s=max(self.samples), repeats=len(self.samples), number=self.number,
                      total_s=self.wall)


def measure_interleaved(fns: dict, cfg: TimerConfig = FULL) -> dict:
    """Median per-call time of each callable in ``fns`` (name -> fn), sampled in rounds.

    Every callable is warmed up and calibrated first; then each round takes one sample of each
    callable that still needs samples, in the dict's order, each after its quiet gap.
    """
    samplers = {name: _Sampler(fn, cfg) for name, fn in fns.items()}
    while True:
        pending = [s for s in samplers.values() if not s.done()]
        if not pending:
            break
        for s in pending:
            s.sample()
    return {name: s.timing() for name, s in samplers.items()}


def measure(fn, cfg: TimerConfig = FULL) -> Timing:
    """Median per-call time of ``fn`` after warm-up, a quiet gap before each sample."""
    return measure_interleaved({0: fn}, cfg)[0]
