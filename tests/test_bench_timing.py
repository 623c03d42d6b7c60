"""bench/timing.py: a quiet gap before every timed sample, the median of the samples, the repeat
rule its docstring states, and interleaving of several callables; on a fake clock, so no test
depends on how fast this machine is."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ lives in the source tree, next to tests/
    sys.path.insert(0, str(ROOT))

from bench import timing  # noqa: E402
from bench.timing import TimerConfig, measure, measure_interleaved  # noqa: E402


class FakeClock:
    """perf_counter and sleep on a clock that only the fake calls and sleeps advance."""

    def __init__(self, monkeypatch):
        self.now = 0.0
        self.sleeps = []
        self.log = []
        monkeypatch.setattr(timing.time, "perf_counter", lambda: self.now)
        monkeypatch.setattr(timing.time, "sleep", self.sleep)

    def sleep(self, s):
        self.sleeps.append(s)
        self.log.append("sleep")
        self.now += s

    def op(self, name, durations):
        """A callable whose successive calls last the given durations (the last one repeats)."""
        durations = list(durations)

        def fn():
            self.log.append(name)
            self.now += durations.pop(0) if len(durations) > 1 else durations[0]
        return fn


CFG = TimerConfig(warmup=2, quiet_s=0.3, min_sample_s=0.01, min_repeats=5, min_total_s=0.5,
                  max_repeats=200, max_total_s=5.0)


def test_quiet_gap_before_every_sample_and_median(monkeypatch):
    clock = FakeClock(monkeypatch)
    # warm-up (2 calls) and calibration (1 call lasts >= min_sample_s) then samples of 1 call
    fn = clock.op("f", [1.0, 1.0, 1.0, 0.02, 0.05, 0.03, 0.04, 0.01, 0.02])
    t = measure(fn, CFG)
    assert t.number == 1
    # fast calls: the gap dominates, so the row stops at min_repeats
    assert t.repeats == CFG.min_repeats
    assert clock.sleeps == [CFG.quiet_s] * t.repeats
    # each timed call comes right after a sleep
    timed = clock.log[3:]
    assert timed == ["sleep", "f"] * t.repeats
    assert t.median_s == pytest.approx(0.03)
    assert t.min_s == pytest.approx(0.01) and t.max_s == pytest.approx(0.05)
    # total_s counts the gaps
    assert t.total_s == pytest.approx(5 * 0.3 + 0.15)


def test_calibration_batches_short_calls(monkeypatch):
    clock = FakeClock(monkeypatch)
    t = measure(clock.op("f", [0.001]), CFG)
    assert t.number == 16          # smallest power of two with 16 ms >= 10 ms
    assert t.median_s == pytest.approx(0.001)
    assert len(clock.sleeps) == t.repeats == CFG.min_repeats


def test_slow_calls_sample_until_min_total_and_cap(monkeypatch):
    clock = FakeClock(monkeypatch)
    # 0.4 s calls are longer than the gap: past min_repeats they would continue until
    # min_total_s, which 5 samples already exceed
    t = measure(clock.op("f", [0.4]), CFG)
    assert t.repeats == 5
    # 2 s calls: the wall-time cap stops the row at 3 samples (never fewer)
    clock = FakeClock(monkeypatch)
    t = measure(clock.op("g", [2.0]), CFG)
    assert t.repeats == 3


def test_medium_calls_past_min_repeats(monkeypatch):
    clock = FakeClock(monkeypatch)
    cfg = TimerConfig(warmup=0, quiet_s=0.05, min_sample_s=0.01, min_repeats=3,
                      min_total_s=1.0, max_repeats=200, max_total_s=100.0)
    t = measure(clock.op("f", [0.1]), cfg)   # longer than the gap: sample to 1.0 s timed
    assert t.repeats == 10


def test_interleaved_rounds(monkeypatch):
    clock = FakeClock(monkeypatch)
    times = measure_interleaved({"a": clock.op("a", [0.02]), "b": clock.op("b", [0.04])}, CFG)
    assert set(times) == {"a", "b"}
    assert times["a"].median_s == pytest.approx(0.02)
    assert times["b"].median_s == pytest.approx(0.04)
    samples = [x for x in clock.log[clock.log.index("sleep"):] if x != "sleep"]
    # after warm-up and calibration: one sample of each per round, in order
    assert samples == ["a", "b"] * CFG.min_repeats


def test_quick_config_is_smaller():
    assert timing.QUICK.quiet_s < timing.FULL.quiet_s
    assert timing.QUICK.min_repeats <= timing.FULL.min_repeats
    assert timing.FULL.quiet_s == pytest.approx(0.3)
