"""Pieces shared by the GEMM-shaped suites."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.machine import FLOPS_PER_CYCLE
from bench.table import Column
from bench.threads import BlasThreads, same_threads
from bench.timing import TimerConfig, measure

THREAD_COUNTS = (1, 2)

# (M, K, N) of the layers in the example MLPs.
MLP_SHAPES = ((256, 784, 1024), (128, 1024, 1024), (32, 64, 128))

# fp32 sums over K <= 2048 in a different order than OpenBLAS stay far below
# this; anything above means a broken kernel whose speed is meaningless.
REL_TOL = 1e-3


@dataclass
class Context:
    quick: bool
    timer: TimerConfig
    blas: BlasThreads
    ghz: float | None


def shape_label(m: int, k: int, n: int) -> str:
    return f"{m}x{k}x{n}"


def random_f32(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.max(np.abs(ref))) or 1.0
    return float(np.max(np.abs(np.asarray(got) - ref))) / scale


def compare(ctx: Context, m: int, k: int, n: int, threads: int, fast_fn, numpy_fn) -> dict:
    """Check fastnn against NumPy, then time both at ``threads`` threads."""
    flops = 2.0 * m * k * n
    with same_threads(ctx.blas, threads):
        err = rel_error(fast_fn(), numpy_fn())
        t_fast = measure(fast_fn, ctx.timer)
        t_np = measure(numpy_fn, ctx.timer)
    gf_fast = flops / t_fast.median_s / 1e9
    gf_np = flops / t_np.median_s / 1e9
    peak = threads * ctx.ghz * FLOPS_PER_CYCLE if ctx.ghz else None
    return {
        "shape": shape_label(m, k, n),
        "m": m, "k": k, "n": n,
        "threads": threads,
        "fastnn_gflops": gf_fast,
        "numpy_gflops": gf_np,
        "ratio": gf_fast / gf_np,
        "fastnn_peak_frac": gf_fast / peak if peak else None,
        "peak_gflops": peak,
        "max_rel_err": err,
        "ok": err <= REL_TOL,
        "fastnn_time": t_fast.to_dict(),
        "numpy_time": t_np.to_dict(),
    }


def columns(with_peak: bool) -> list[Column]:
    cols = [
        Column("shape", "shape (MxKxN)", width=14),
        Column("threads", "threads"),
        Column("fastnn_gflops", "fastnn GFLOP/s", ".1f"),
        Column("numpy_gflops", "numpy GFLOP/s", ".1f"),
        Column("ratio", "fastnn/numpy", ".2f"),
    ]
    if with_peak:
        cols.append(Column("fastnn_peak_frac", "fastnn %peak", ".1%"))
    # Flags rows whose numbers should not be trusted; blank when fine.
    cols.append(Column("check", "check", width=5))
    return cols


def check_cell(row: dict) -> str:
    return "" if row["ok"] else f"BAD err={row['max_rel_err']:.1e}"
