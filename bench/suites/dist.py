"""Data-parallel training over MPI on this machine, and a napkin model for N machines.

Each network trains under ``mpirun -n P`` (bench/suites/_dist_worker.py) in three set-ups on the
same global batch: 1 rank x 1 thread (the per-core baseline), 1 rank x all threads (what one
process gets from the cores), and 2 ranks x 1 thread (data-parallel on the same cores). The
set-ups alternate within each repeat; the median of the repeats is reported. Efficiency is the
2-rank speed over twice the 1-thread speed. The allreduce columns: the seconds per step in
DataParallel's hook (packing, reducing and waiting for the other rank) and a bare Allreduce of
the gradient's size.

The napkin model (markdown): a ring allreduce moves 2(N-1)/N x the gradient's bytes G per machine
per step; over a link of B bytes/s with a latency of ALPHA per message, communication per step is
2(N-1)/N x G / B + 2(N-1) x ALPHA, with no overlap with compute assumed. t_c is one machine's
step at the batch (QUIET_SAMPLES_PER_S). Strong scaling (the global batch fixed, each machine
computes t_c / N): communication dominates from the N where it exceeds t_c / N. Weak scaling
(each machine keeps the batch): communication tends to 2G/B per step, its share of the step to
2G/B / (2G/B + t_c). bf16 gradients halve G."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from bench.suites._common import Context
from bench.suites._mlp import NETWORKS
from bench.table import Column, Table, markdown

NAME = "dist"
DESCRIPTION = "data-parallel training, mpirun -n 2 vs 1 rank, allreduce time, N-machine model"

# network -> (global batch, steps per epoch, epochs): about a second of training per run.
PLAN = {
    "small 64-128-10": (32, 200, 40),
    "medium 784-256-256-10": (128, 100, 3),
    "wide 784-2048-2048-10": (256, 12, 1),
}
SETUPS = (("1x1", 1, 1), ("1xall", 1, None), ("2x1", 2, 1))
QUIET_S = 0.3
ALPHA_S = 5e-6  # per-message latency of a datacentre link, assumed
LINKS = {"10 Gbit/s": 10e9 / 8, "100 Gbit/s": 100e9 / 8}
# One machine's training speed at PLAN's batch on a quiet 2-core Zen 4 (bench/RESULTS.md, train
# suite of 2026-12-07, fp32): the napkin model's compute time per step is batch / this. This
# shared VM's own timings are too loaded to model machines with.
QUIET_SAMPLES_PER_S = {"small 64-128-10": 840e3, "medium 784-256-256-10": 65e3,
                       "wide 784-2048-2048-10": 4.9e3}


def _run(mpirun, network, ranks, threads, quick):
    batch, steps, epochs = PLAN[network]
    if quick:
        steps, epochs = max(4, steps // 4), 1
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))] +
        [p for p in [os.environ.get("PYTHONPATH")] if p]))
    time.sleep(QUIET_S)
    out = subprocess.run([mpirun, "-n", str(ranks), sys.executable, "-m",
                          "bench.suites._dist_worker", network, str(batch), str(steps),
                          str(epochs), str(threads)], capture_output=True, text=True,
                         timeout=600, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _napkin(rows) -> str:
    lines = ["| network | gradient | t_c | link | comm per step: N=2 / bandwidth term at large N | strong scaling: "
             "N where comm > compute, fp32 / bf16 | weak scaling: comm share at large N, "
             "fp32 / bf16 |", "|---" * 7 + "|"]
    for r in rows:
        g = r["grad_bytes"]
        batch = PLAN[r["shape"]][0]
        tc = batch / QUIET_SAMPLES_PER_S[r["shape"]]
        for link, bw in LINKS.items():
            def comm(n, nbytes):
                return 2 * (n - 1) / n * nbytes / bw + 2 * (n - 1) * ALPHA_S

            def crossover(nbytes):
                n = next((n for n in range(2, 100001) if comm(n, nbytes) > tc / n), None)
                return str(n) if n else "> 100000"

            def share(nbytes):  # N large, the latency term left out
                c = 2 * nbytes / bw
                return f"{c / (c + tc):.0%}"

            lines.append(f"| {r['shape']} | {g / 2**20:.2f} MiB | {tc * 1e3:.3f} ms | {link} | "
                         f"{comm(2, g) * 1e3:.3f} / {2 * g / bw * 1e3:.3f} ms | "
                         f"{crossover(g)} / {crossover(g / 2)} | {share(g)} / {share(g / 2)} |")
    return "\n".join(lines) + "\n"


def run(ctx: Context) -> dict:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return {"rows": [{"shape": "dist", "note": "mpi4py not installed (pip install "
                          "'fastnn[mpi]')", "ok": True, "threads": None}], "notes": []}
    mpirun = shutil.which("mpirun", path=os.path.dirname(sys.executable)) or \
        shutil.which("mpirun")
    if mpirun is None:
        return {"rows": [{"shape": "dist", "note": "mpirun not found", "ok": True,
                          "threads": None}], "notes": []}
    import fastnn

    all_threads = fastnn.get_num_threads()
    repeats = 1 if ctx.quick else 3
    notes = [f"global batch fixed per network {dict((k, v[0]) for k, v in PLAN.items())}; "
             f"set-ups 1 rank x 1 thread, 1 rank x {all_threads} threads, 2 ranks x 1 thread, "
             f"alternated; median of {repeats}; Adam; {QUIET_S} s quiet before each run"]
    print(notes[0])
    cols = [Column("shape", "network", width=24),
            Column("sps_1x1", "1x1 samples/s", ".0f"),
            Column("sps_1xall", f"1x{all_threads} samples/s", ".0f"),
            Column("sps_2x1", "2x1 samples/s", ".0f"),
            Column("efficiency", "2x1 / (2 x 1x1)", ".2f"),
            Column("step_2x1_ms", "2x1 step ms", ".3f"),
            Column("reduce_ms", "hook ms/step", ".3f"),
            Column("allreduce_ms", "Allreduce alone ms", ".3f")]
    table = Table(cols)
    table.header()
    rows = []
    for network in PLAN:
        runs = {name: [] for name, _, _ in SETUPS}
        for _ in range(repeats):
            for name, ranks, threads in SETUPS:
                runs[name].append(_run(mpirun, network, ranks, threads or all_threads,
                                       ctx.quick))

        def med(name, key):
            return statistics.median(r[key] for r in runs[name])

        row = {"shape": network, "threads": None, "ok": True,
               "grad_bytes": runs["2x1"][0]["grad_bytes"],
               "sps_1x1": med("1x1", "samples_per_s"),
               "sps_1xall": med("1xall", "samples_per_s"),
               "sps_2x1": med("2x1", "samples_per_s"),
               "step_1xall_s": med("1xall", "step_s"),
               "step_2x1_ms": med("2x1", "step_s") * 1e3,
               "reduce_ms": med("2x1", "reduce_step_s") * 1e3,
               "allreduce_ms": med("2x1", "allreduce_alone_s") * 1e3,
               "samples": runs}
        row["efficiency"] = row["sps_2x1"] / (2 * row["sps_1x1"])
        table.row(row)
        rows.append(row)
    md = markdown(cols, rows) + "\n" + _napkin(rows)
    print(_napkin(rows))
    return {"rows": rows, "notes": notes, "markdown": md}
