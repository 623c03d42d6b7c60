"""What this machine can do at best, measured in the run that uses it: fastnn's SGEMM rate and
the read bandwidth of a working set of a given size (the two physical floors of an MLP layer)."""

from __future__ import annotations

import numpy as np

from bench.timing import TimerConfig, measure

# Bytes one bandwidth call reads at least: a small buffer is read again and again (as repeated
# predict calls read the same weights), so that the call's start-up is amortized.
_STREAM_BYTES = 256 << 20

READ_METHOD = ("read bandwidth = bytes / best time of reading an fp32 buffer of the weights' size "
               "again and again (>= 256 MiB per call) on the suite's threads, each thread one "
               "contiguous slice (NumPy max over a zero-stride stack of its slice, which releases "
               "the GIL); best of the samples, since a floor is what the machine can do")


def sgemm_fn(m: int, k: int, n: int, seed: int = 0):
    """A zero-argument fastnn.ops.matmul of (m, k) @ (k, n) and its flop count."""
    from fastnn import ops

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    return (lambda: ops.matmul(a, b, out=out)), 2.0 * m * k * n


def sgemm_gflops(cfg: TimerConfig, m: int, k: int, n: int) -> float:
    fn, flops = sgemm_fn(m, k, n)
    return flops / measure(fn, cfg).median_s / 1e9


def read_gbps(cfg: TimerConfig, nbytes: int, threads: int) -> float:
    """Bytes/s of reading an fp32 buffer of about ``nbytes`` on ``threads`` threads (see
    READ_METHOD). Every pass reads the same buffer, so the working set stays at ``nbytes``, as
    the weights do between predict calls. It replaces OpenBLAS sgemv / batched matmul, whose own thread choices and start-up made
    the 23 MB figure read 52 GB/s in one run and 29 GB/s in the next."""
    from concurrent.futures import ThreadPoolExecutor

    n = max(16 * threads, nbytes // 4)
    buf = np.random.default_rng(0).random(n, dtype=np.float32)
    reps = max(1, _STREAM_BYTES // buf.nbytes)
    # One (reps, len) view per slice with a zero row stride: one NumPy call reads the slice reps
    # times, with no Python loop between passes.
    stacks = [np.lib.stride_tricks.as_strided(s, (reps, len(s)), (0, s.strides[0]))
              for s in np.array_split(buf, threads)]
    with ThreadPoolExecutor(threads) as pool:
        t = measure(lambda: list(pool.map(np.max, stacks)), cfg)
    return buf.nbytes * reps / t.min_s
