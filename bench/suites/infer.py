"""Inference latency per predict call: fastnn (fp32, and bf16 / int8 where this build has them)
against ONNX Runtime (fp32 and dynamic int8) and PyTorch (fp32, bf16 autocast, dynamic int8
Linear), the same weights in every engine, the same threads, at batch 1, 32 and 1024, for the
three networks of issue 14; beside each batch-1 row the physical floor and the fraction of it
reached. Missing peers (onnx, onnxruntime, torch) and fastnn features not in this build give rows
that say so; they never fail the suite."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench.suites import _engines
from bench.suites._ceilings import READ_METHOD, read_gbps, sgemm_gflops
from bench.suites._child import ChildFailed, run_in_child, write_result
from bench.suites._common import Context
from bench.suites._mlp import NETWORKS, bias_count, fastnn_model, forward_flops, weight_count
from bench.table import Column, Table, markdown
from bench.threads import BlasThreads, same_threads
from bench.timing import FULL, QUICK, Timing, measure

NAME = "infer"
DESCRIPTION = ("predict latency, fastnn fp32/bf16/int8 vs ONNX Runtime and PyTorch, "
               "batch 1/32/1024, with the batch-1 physical floor")

THREADS = 2
BATCHES = (1, 32, 1024)
BATCHES_QUICK = (1, 32)
# fp32 engines summing in another order stay well below this on softmax probabilities.
FP32_TOL = 1e-5
REFERENCE = "fastnn fp32"

ROW_COLUMNS = [
    Column("network", "network", width=22), Column("batch", "batch"),
    Column("engine", "engine", width=20), Column("us", "us/call", ",.1f"),
    Column("vs_ort", "ORT fp32 / this", ".2f"), Column("floor_us", "floor us", ",.2f"),
    Column("floor_frac", "floor / this", ".0%"), Column("check", "check vs float64", width=30),
]
SUMMARY_COLUMNS = [
    Column("network", "network", width=22), Column("batch", "batch"),
    Column("vs_ort", "fastnn fp32 vs ORT fp32", ".2f"),
    Column("vs_torch", "fastnn fp32 vs torch fp32", ".2f"),
    Column("int8_vs_ort", "fastnn int8 vs ORT int8", ".2f"),
    Column("bf16_vs_fp32", "fastnn bf16 vs fastnn fp32", ".2f"),
]


def _reference(weights, X) -> np.ndarray:
    """The same network in float64 NumPy: the oracle every engine's output is checked against."""
    h = X.astype(np.float64)
    pairs = list(zip(weights[0::2], weights[1::2]))
    for i, (w, b) in enumerate(pairs):
        h = h @ w.astype(np.float64) + b
        if i < len(pairs) - 1:
            h = np.maximum(h, 0.0)
    h = np.exp(h - h.max(axis=1, keepdims=True))
    return h / h.sum(axis=1, keepdims=True)


def _check(engine: _engines.Engine, out: np.ndarray, ref: np.ndarray) -> tuple[str, bool]:
    out = np.asarray(out, dtype=np.float64)
    if out.shape != ref.shape or not np.all(np.isfinite(out)):
        return f"BAD output shape {out.shape} or not finite", False
    diff = float(np.max(np.abs(out - ref)))
    if engine.exact:
        return (f"max|d|={diff:.1e}", True) if diff <= FP32_TOL else (f"BAD max|d|={diff:.1e}", False)
    agree = int(np.sum(out.argmax(axis=1) == ref.argmax(axis=1)))
    return f"max|d|={diff:.1e} argmax {agree}/{len(ref)}", True


def _floor_s(ctx: Context, engine: _engines.Engine, widths, gemm_gflops: float, bw_cache: dict):
    """Batch-1 floor: max(weight bytes / read bandwidth of a buffer that size, flops / GEMM rate)."""
    nbytes = int(engine.weight_bytes * weight_count(widths) + 4 * bias_count(widths))
    if nbytes not in bw_cache:
        bw_cache[nbytes] = read_gbps(ctx.timer, nbytes, THREADS)
    return max(nbytes / bw_cache[nbytes], forward_flops(widths) / (gemm_gflops * 1e9)), nbytes


def _inputs(widths, batch) -> np.ndarray:
    return np.random.default_rng(batch).standard_normal((batch, widths[0]), dtype=np.float32)


def measure_engine(name, widths, batches, quick, out_dir) -> None:
    """In a process of its own: build engine ``name`` from the seeded model's weights, time its
    predict at each batch size, and leave in out_dir the timings (result.json) and the outputs
    (<batch>.npy) for the parent to check."""
    cfg = QUICK if quick else FULL
    out = Path(out_dir)
    model = fastnn_model(widths)
    with tempfile.TemporaryDirectory() as tmp, same_threads(BlasThreads(), THREADS):
        e = _engines.build(name, model, widths, model.get_weights(), tmp, THREADS)
        result = {"note": e.note, "detail": e.detail, "exact": e.exact,
                  "weight_bytes": e.weight_bytes, "times": {}}
        if e.predict is not None:
            for batch in batches:
                X = _inputs(widths, batch)
                result["times"][str(batch)] = measure(lambda: e.predict(X), cfg).to_dict()
                np.save(out / f"{batch}.npy", np.asarray(e.predict(X), dtype=np.float32))
    write_result(out, result)


def _engine_in_child(name, widths, batches, quick, out_dir) -> dict:
    """measure_engine in a fresh Python process (bench/suites/_child.py says why)."""
    try:
        return run_in_child("bench.suites.infer", "measure_engine",
                            [name, list(widths), list(batches), quick, str(out_dir)], out_dir)
    except ChildFailed as exc:
        return {"note": exc.args[0], "detail": exc.args[1], "exact": True, "weight_bytes": 4.0,
                "times": {}}


def _network_rows(ctx, name, widths, batches, gemm_gflops, bw_cache, tmp):
    weights = fastnn_model(widths).get_weights()
    results = {}
    for engine in _engines.ENGINE_NAMES:
        out_dir = Path(tmp) / f"{name}-{engine}".replace(" ", "_")
        out_dir.mkdir()
        results[engine] = (_engine_in_child(engine, widths, batches, ctx.quick, out_dir), out_dir)
    rows, summaries = [], []
    for batch in batches:
        ref = _reference(weights, _inputs(widths, batch))
        times = {n: Timing(**r["times"][str(batch)]) for n, (r, _) in results.items()
                 if str(batch) in r["times"]}
        ort_s = times["ORT fp32"].median_s if "ORT fp32" in times else None
        for engine, (r, out_dir) in results.items():
            e = _engines.Engine(engine, None, r["note"], r["detail"], r["exact"], r["weight_bytes"])
            row = {"shape": f"{name} b{batch} {engine}", "network": name, "batch": batch,
                   "engine": engine, "threads": THREADS, "ok": True}
            if engine not in times:
                row["check"], row["detail"] = e.note, e.detail
                rows.append(row)
                continue
            t = times[engine]
            row["check"], row["ok"] = _check(e, np.load(out_dir / f"{batch}.npy"), ref)
            row["us"] = t.median_s * 1e6
            row["time"] = t.to_dict()
            if ort_s is not None:
                row["vs_ort"] = ort_s / t.median_s
            if batch == 1:
                floor, nbytes = _floor_s(ctx, e, widths, gemm_gflops, bw_cache)
                row.update(floor_us=floor * 1e6, floor_frac=floor / t.median_s,
                           floor_bytes=nbytes, floor_gbps=bw_cache[nbytes] / 1e9)
            rows.append(row)
        summaries.append(_summary(name, batch, times))
    return rows, summaries


def _summary(name, batch, times) -> dict:
    def ratio(peer, ours):
        if peer in times and ours in times:
            return times[peer].median_s / times[ours].median_s
        return "n/a"

    return {"network": name, "batch": batch,
            "vs_ort": ratio("ORT fp32", REFERENCE), "vs_torch": ratio("torch fp32", REFERENCE),
            "int8_vs_ort": ratio("ORT int8", "fastnn int8"),
            "bf16_vs_fp32": ratio(REFERENCE, "fastnn bf16")}


def run(ctx: Context) -> dict:
    batches = BATCHES_QUICK if ctx.quick else BATCHES
    with same_threads(ctx.blas, THREADS):
        square = 1024 if ctx.quick else 2048
        gemm = sgemm_gflops(ctx.timer, square, square, square)
        notes = [
            f"{THREADS} threads everywhere: fastnn.set_num_threads, OpenBLAS, "
            f"torch.set_num_threads, ORT intra_op_num_threads={THREADS} inter_op_num_threads=1; "
            "the same weights (a seeded fastnn model's) in every engine; each engine timed in a "
            "Python process of its own (a peer's spinning worker threads would slow whatever "
            "runs next in the same process); us/call = median of samples after warm-up, a "
            "quiet gap before each (bench/timing.py)",
            "ORT fp32: onnx.helper graph MatMul/Add/Relu/Softmax; ORT int8: "
            "onnxruntime.quantization.quantize_dynamic, weight_type=QInt8 (uint8 activations x "
            "int8 weights, U8S8, ORT's default and its recommended format on x86-64), per tensor; "
            "torch int8: torch.ao.quantization.quantize_dynamic({Linear}, qint8), engine "
            f"{_engines.torch_qengine()}; torch runs under inference_mode",
            f"floor (batch 1) = max(weight bytes / read bandwidth, flops / GEMM rate); weight "
            f"bytes: 4 per weight for fp32 and autocast (its weights stay fp32), 2 for bf16, 1 for "
            f"int8, plus fp32 biases; GEMM rate = fastnn.ops.matmul {square}^3 = {gemm:.1f} "
            f"GFLOP/s in this run; {READ_METHOD}",
            f"check: max abs difference of the softmax outputs from a float64 NumPy forward pass "
            f"of the same weights (fp32 engines must stay <= {FP32_TOL:g}); for bf16 / int8 also "
            "how many rows keep the float64 argmax",
        ]
        for note in notes:
            print(note)
        table = Table(ROW_COLUMNS)
        table.header()
        rows, summaries, bw_cache = [], [], {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, widths in NETWORKS.items():
                r, s = _network_rows(ctx, name, widths, batches, gemm, bw_cache, tmp)
                for row in r:
                    table.row(row)
                rows += r
                summaries += s
    print()
    table = Table(SUMMARY_COLUMNS)
    table.header()
    for s in summaries:
        table.row(s)
    bw_note = ", ".join(f"{b / 1e6:.2f} MB: {g / 1e9:.0f} GB/s" for b, g in sorted(bw_cache.items()))
    print(f"read bandwidth measured: {bw_note}")
    md = (markdown(SUMMARY_COLUMNS, summaries, "Speed ratios (peer time / fastnn time)") + "\n"
          + markdown(ROW_COLUMNS, rows, "Latency per predict call") + "\n"
          + "".join(f"- {n}\n" for n in notes + [f"read bandwidth measured: {bw_note}"]))
    return {"rows": rows, "summary": summaries, "notes": notes, "gemm_gflops": gemm,
            "read_gbps": {str(b): g / 1e9 for b, g in bw_cache.items()}, "markdown": md}
