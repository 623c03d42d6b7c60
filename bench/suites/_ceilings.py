"""What this machine can do at best, measured in the run that uses it: fastnn's SGEMM rate and
the read bandwidth of a working set of a given size (the two physical floors of an MLP layer)."""

from __future__ import annotations

import numpy as np

from bench.timing import TimerConfig, measure

# Bytes one bandwidth sample reads at least: repeated reads of a small buffer amortize the call.
_STREAM_BYTES = 64 << 20

READ_METHOD = ("read bandwidth = best of (a) one OpenBLAS sgemv (np.dot with a ones vector) over "
               "an fp32 matrix of the weights' size and (b) np.matmul over a zero-stride stack of "
               "that matrix (the same buffer read again and again, >= 64 MiB per call); OpenBLAS "
               "limited to the suite's threads")


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


def read_gbps(cfg: TimerConfig, nbytes: int) -> float:
    """Bytes/s of reading an fp32 buffer of about ``nbytes`` (see READ_METHOD)."""
    cols = 256 if nbytes >= 256 * 4 * 16 else 16
    rows = max(1, nbytes // (4 * cols))
    w = np.random.default_rng(0).random((rows, cols), dtype=np.float32)
    ones = np.ones(cols, np.float32)
    reps = max(1, _STREAM_BYTES // w.nbytes)
    stack = np.lib.stride_tricks.as_strided(w, shape=(reps, rows, cols), strides=(0,) + w.strides)
    one = measure(lambda: np.dot(w, ones), cfg).median_s
    many = measure(lambda: np.matmul(stack, ones), cfg).median_s / reps
    return w.nbytes / min(one, many)
