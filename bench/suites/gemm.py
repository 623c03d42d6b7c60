"""fastnn.ops.matmul against NumPy's ``a @ b`` (float32)."""

from __future__ import annotations

import numpy as np

from fastnn import ops

from bench.machine import FLOPS_PER_CYCLE
from bench.suites._common import (MLP_SHAPES, THREAD_COUNTS, Context, check_cell,
                                  columns, compare, random_f32)
from bench.table import Table

NAME = "gemm"
DESCRIPTION = "fastnn.ops.matmul vs numpy a @ b, float32, GFLOP/s"

SQUARE = (128, 256, 512, 1024, 2048)
# 2048^3 alone takes seconds per repeat at one thread; the smoke run can't afford it.
SQUARE_QUICK = (128, 256, 512, 1024)


def shapes(quick: bool) -> list[tuple[int, int, int]]:
    sq = SQUARE_QUICK if quick else SQUARE
    return [(s, s, s) for s in sq] + list(MLP_SHAPES)


def run(ctx: Context) -> dict:
    notes = []
    if ctx.ghz:
        notes.append(
            f"peak = threads x {ctx.ghz:.2f} GHz x 2 FMA x 16 lanes x 2 = "
            f"{ctx.ghz * FLOPS_PER_CYCLE:.1f} GFLOP/s per thread "
            "(GHz from /proc/cpuinfo 'cpu MHz')")
    else:
        notes.append("peak unknown: no 'cpu MHz' in /proc/cpuinfo")
    for note in notes:
        print(note)

    table = Table(columns(with_peak=True))
    table.header()
    rng = np.random.default_rng(0)
    rows = []
    for m, k, n in shapes(ctx.quick):
        a = random_f32(rng, m, k)
        b = random_f32(rng, k, n)
        for threads in THREAD_COUNTS:
            row = compare(ctx, m, k, n, threads,
                          lambda: ops.matmul(a, b),
                          lambda: a @ b)
            row["check"] = check_cell(row)
            table.row(row)
            rows.append(row)
    return {"rows": rows, "notes": notes}
