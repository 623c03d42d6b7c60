"""Fused fastnn.ops.linear(..., activation="relu") against the NumPy expression."""

from __future__ import annotations

import numpy as np

from fastnn import ops

from bench.suites._common import (MLP_SHAPES, THREAD_COUNTS, Context, check_cell,
                                  columns, compare, random_f32)
from bench.table import Table

NAME = "linear"
DESCRIPTION = "fastnn.ops.linear(relu) vs numpy maximum(x @ w + b, 0), GFLOP/s"

SHAPES = tuple(MLP_SHAPES) + ((1024, 1024, 1024),)


def run(ctx: Context) -> dict:
    # Bias and ReLU add only M*N flops; counting them would flatter neither side.
    notes = ["GFLOP/s counts the 2*M*K*N matmul flops only"]
    for note in notes:
        print(note)

    table = Table(columns(with_peak=False))
    table.header()
    rng = np.random.default_rng(1)
    rows = []
    for m, k, n in SHAPES:
        x = random_f32(rng, m, k)
        w = random_f32(rng, k, n)
        b = random_f32(rng, n)
        for threads in THREAD_COUNTS:
            row = compare(ctx, m, k, n, threads,
                          lambda: ops.linear(x, w, b, activation="relu"),
                          lambda: np.maximum(x @ w + b, 0))
            row["check"] = check_cell(row)
            table.row(row)
            rows.append(row)
    return {"rows": rows, "notes": notes}
