"""Whole-model training and inference: fastnn.Sequential against PyTorch (CPU, same threads)
and scikit-learn's MLPClassifier, in the same run. PyTorch and scikit-learn are optional: rows
whose peer is missing say so. Each engine runs in a Python process of its own (_child.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict

import numpy as np

import fastnn
from fastnn import optim
from fastnn.layers import Dense

from bench.suites._ceilings import sgemm_fn
from bench.suites._child import ChildFailed, run_in_child, write_result
from bench.suites._common import Context
from bench.suites._engines import NOT_IN_BUILD
from bench.suites._mlp import NETWORKS, data, fastnn_model, torch_model, train_flops
from bench.table import Column, Table, markdown
from bench.threads import BlasThreads, same_threads
from bench.timing import Timing, TimerConfig, measure, measure_interleaved

NAME = "train"
DESCRIPTION = "training samples/s and inference latency vs PyTorch CPU; digits vs scikit-learn"

# name, batch size, optimizer, samples per epoch (full / quick); widths from _mlp.NETWORKS
CONFIGS = (
    ("small 64-128-10", 32, "sgd", 32768, 4096),
    ("medium 784-256-256-10", 128, "adam", 16384, 2048),
    ("wide 784-2048-2048-10", 256, "adam", 4096, 512),
)
THREADS = 2
# The SGEMM rates the wide network's training flop rate is divided by: a large square and the
# step's biggest forward shape (batch x 2048 x 2048), both fastnn.ops.matmul in the same run.
SGEMM_SHAPES = ((2048, 2048, 2048), (256, 2048, 2048))
SGEMM_SHAPES_QUICK = ((1024, 1024, 1024), (256, 2048, 2048))


def _present(module: str) -> bool:
    """Whether an optional peer is installed, without importing it into this process."""
    return importlib.util.find_spec(module) is not None


def _fastnn_model(widths, opt, precision="fp32"):
    model = fastnn_model(widths, precision)
    model.compile("softmax_cross_entropy",
                  optim.SGD(lr=0.01, momentum=0.9) if opt == "sgd" else optim.Adam(lr=1e-3))
    return model


def _fastnn_bf16(widths, opt, X, y, bs):
    """A bf16 model that trains here, or the reason it cannot (feature-detected, as in infer)."""
    try:
        model = _fastnn_model(widths, opt, "bf16")
        model.fit(X[:bs], y[:bs], epochs=1, batch_size=bs, verbose=0)
    except (ValueError, TypeError, NotImplementedError, RuntimeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return model, ""


def _torch_model(torch, widths, opt):
    model = torch_model(torch, widths)
    o = (torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if opt == "sgd"
         else torch.optim.Adam(model.parameters(), lr=1e-3))
    return model, o


def _torch_epoch(torch, model, o, X, y, batch_size, gen):
    """The loop a PyTorch user writes: shuffle, slice, forward, loss, backward, step."""
    perm = torch.randperm(len(X), generator=gen)
    Xs, ys = X[perm], y[perm]
    for i in range(0, len(X), batch_size):
        o.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(Xs[i:i + batch_size]), ys[i:i + batch_size])
        loss.backward()
        o.step()


def _sgemm_label(m, k, n):
    return f"SGEMM {m}x{k}x{n}"


# ------------------------------------------------------------------ in the child processes
# Each function below runs in a process of its own (measure_engine) and returns what the parent
# needs, JSON-able: timings as Timing.to_dict(), or "note" when its engine cannot run here.

def _fastnn_throughput(cfg, widths, bs, opt, n, sgemm_shapes):
    """fp32 epoch, bf16 epoch (where this build trains bf16) and the SGEMM shapes of the
    ceiling, interleaved: all fastnn, so they cannot disturb each other's threads."""
    X, y = data(widths, n)
    model = _fastnn_model(widths, opt)
    fns = {"fastnn": lambda: model.fit(X, y, epochs=1, batch_size=bs, verbose=0)}
    bf16, bf16_note = _fastnn_bf16(widths, opt, X, y, bs)
    if bf16 is not None:
        fns["bf16"] = lambda: bf16.fit(X, y, epochs=1, batch_size=bs, verbose=0)
    sgemm_flops = {}
    for shape in sgemm_shapes:
        fns[_sgemm_label(*shape)], sgemm_flops[_sgemm_label(*shape)] = sgemm_fn(*shape)
    times = measure_interleaved(fns, cfg)
    out = {"times": {k: t.to_dict() for k, t in times.items()}, "sgemm_flops": sgemm_flops,
           "loss": model.evaluate(X, y)["loss"], "bf16_note": bf16_note}
    if bf16 is not None:
        out["bf16_loss"] = bf16.evaluate(X, y)["loss"]
    return out


def _torch_throughput(cfg, widths, bs, opt, n, sgemm_shapes):
    import torch

    X, y = data(widths, n)
    tm, to = _torch_model(torch, widths, opt)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)
    t = measure(lambda: _torch_epoch(torch, tm, to, Xt, yt, bs, gen), cfg)
    return {"times": {"torch": t.to_dict()}}


def _fastnn_predict(cfg, widths, opt, batches):
    model = _fastnn_model(widths, opt)
    return {str(b): measure(lambda: model.predict(X, batch_size=b), cfg).to_dict()
            for b in batches for X in [data(widths, b, seed=1)[0]]}


def _torch_predict(cfg, widths, opt, batches):
    import torch

    tm = torch_model(torch, widths, _fastnn_model(widths, opt).get_weights())
    out = {}
    for b in batches:
        Xt = torch.from_numpy(data(widths, b, seed=1)[0])

        def run():
            with torch.inference_mode():
                return torch.softmax(tm(Xt), dim=1)

        out[str(b)] = measure(run, cfg).to_dict()
    return out


DIGITS_EPOCHS, DIGITS_HIDDEN = 100, (128, 64)


def _digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def _fastnn_digits():
    Xtr, Xte, ytr, yte = _digits_split()
    t0 = time.perf_counter()
    model = fastnn.Sequential([Dense(DIGITS_HIDDEN[0], "relu"), Dense(DIGITS_HIDDEN[1], "relu"),
                               Dense(10)], input_dim=64, seed=0)
    model.compile("softmax_cross_entropy", optim.Adam(lr=1e-3), metrics=["accuracy"])
    model.fit(Xtr, ytr, epochs=DIGITS_EPOCHS, batch_size=200, verbose=0)
    return {"s": time.perf_counter() - t0, "acc": model.evaluate(Xte, yte)["accuracy"]}


def _sklearn_digits():
    import warnings

    from sklearn.neural_network import MLPClassifier

    Xtr, Xte, ytr, yte = _digits_split()
    clf = MLPClassifier(hidden_layer_sizes=DIGITS_HIDDEN, solver="adam", batch_size=200,
                        learning_rate_init=1e-3, max_iter=DIGITS_EPOCHS, random_state=0,
                        n_iter_no_change=DIGITS_EPOCHS + 1, tol=0.0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
        clf.fit(Xtr, ytr)
    return {"s": time.perf_counter() - t0, "acc": clf.score(Xte, yte)}


_PARTS = {
    ("throughput", "fastnn"): _fastnn_throughput, ("throughput", "torch"): _torch_throughput,
    ("predict", "fastnn"): _fastnn_predict, ("predict", "torch"): _torch_predict,
    ("digits", "fastnn"): _fastnn_digits, ("digits", "sklearn"): _sklearn_digits,
}


def measure_engine(part, engine, jobs, timer, out_dir) -> None:
    """In a process of its own: run ``part`` (throughput, predict, digits) of ``engine`` on each
    job (a list of arguments after the timer config) at the suite's threads, and leave the
    results in out_dir (bench/suites/_child.py)."""
    cfg = TimerConfig(**timer)
    fn = _PARTS[(part, engine)]
    with same_threads(BlasThreads(), THREADS):
        if engine == "torch":
            import torch
            torch.set_num_threads(THREADS)
        args = [[cfg, *job] if part != "digits" else [] for job in jobs]
        write_result(out_dir, {"results": [fn(*a) for a in args]})


def _in_child(ctx: Context, part, engine, jobs) -> list | str:
    """Each job's result from ``engine``'s own process, or a note saying why there is none."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return run_in_child("bench.suites.train", "measure_engine",
                                [part, engine, jobs, asdict(ctx.timer), tmp], tmp)["results"]
        except ChildFailed as exc:
            print(f"{engine} {part}: {exc.args[0]}\n{exc.args[1]}", file=sys.stderr)
            return exc.args[0]


# ------------------------------------------------------------------ in the parent
def _throughput_rows(ctx: Context, torch):
    """Per network, fastnn's epochs (fp32, bf16 when the build has it, and for the wide network
    the SGEMM shapes of its ceiling, interleaved) in one child process and the PyTorch epoch in
    another; ``torch``: whether PyTorch is present."""
    rows, ceiling = [], None
    jobs = []
    for name, bs, opt, n_full, n_quick in CONFIGS:
        shapes = (SGEMM_SHAPES_QUICK if ctx.quick else SGEMM_SHAPES) if name.startswith("wide") \
            else ()
        jobs.append([list(NETWORKS[name]), bs, opt, n_quick if ctx.quick else n_full,
                     [list(s) for s in shapes]])
    fast = _in_child(ctx, "throughput", "fastnn", jobs)
    peer = _in_child(ctx, "throughput", "torch", jobs) if torch else None
    if isinstance(fast, str):
        return [{"shape": name, "note": fast, "ok": False} for name, *_ in CONFIGS], None
    for i, (name, bs, opt, _, _) in enumerate(CONFIGS):
        widths, n = NETWORKS[name], jobs[i][3]
        r = fast[i]
        times = {k: Timing(**t) for k, t in r["times"].items()}
        flops = train_flops(widths) * n
        rate = n / times["fastnn"].median_s
        row = {"shape": name, "threads": THREADS, "batch": bs, "fastnn": rate,
               "gflops": flops / times["fastnn"].median_s / 1e9, "loss": r["loss"], "ok": True,
               "fastnn_time": times["fastnn"].to_dict()}
        if isinstance(peer, list):
            t = Timing(**peer[i]["times"]["torch"])
            row["torch"] = n / t.median_s
            row["ratio"] = rate / row["torch"]
            row["torch_time"] = t.to_dict()
        elif isinstance(peer, str):
            row["torch"] = peer
        if "bf16" in times:
            row["bf16"] = n / times["bf16"].median_s
            row["bf16_ratio"] = row["bf16"] / rate
            row["bf16_loss"] = r["bf16_loss"]
        else:
            row["bf16"], row["bf16_detail"] = NOT_IN_BUILD, r["bf16_note"]
        rows.append(row)
        if r["sgemm_flops"]:
            ceiling = {"shape": f"{name} training flop rate", "threads": THREADS, "ok": True,
                       "train_gflops": row["gflops"], "flops_per_sample": train_flops(widths)}
            for k, (label, f) in enumerate(r["sgemm_flops"].items()):
                gf = f / times[label].median_s / 1e9
                ceiling[f"sgemm{k}_label"], ceiling[f"sgemm{k}"] = label, gf
                ceiling[f"ratio{k}"] = row["gflops"] / gf
    return rows, ceiling


def _inference_rows(ctx: Context, torch):
    batches = (1, 1024)
    jobs = [[list(NETWORKS[name]), opt, list(batches)] for name, _, opt, _, _ in CONFIGS]
    fast = _in_child(ctx, "predict", "fastnn", jobs)
    peer = _in_child(ctx, "predict", "torch", jobs) if torch else None
    rows = []
    for i, (name, *_) in enumerate(CONFIGS):
        for batch in batches:
            row = {"shape": f"{name} predict", "threads": THREADS, "batch": batch, "ok": True}
            if isinstance(fast, str):
                row.update(note=fast, ok=False)
                rows.append(row)
                continue
            t = Timing(**fast[i][str(batch)])
            row["fastnn_us"] = t.median_s * 1e6
            if isinstance(peer, list):
                tp = Timing(**peer[i][str(batch)])
                row["torch_us"] = tp.median_s * 1e6
                row["ratio"] = tp.median_s / t.median_s
            elif isinstance(peer, str):
                row["torch_us"] = peer
            rows.append(row)
    return rows


def _digits_row(ctx: Context):
    if not _present("sklearn"):
        return {"shape": "digits vs sklearn", "note": "scikit-learn not installed", "ok": True}
    fast = _in_child(ctx, "digits", "fastnn", [[]])
    sk = _in_child(ctx, "digits", "sklearn", [[]])
    row = {"shape": f"digits 64-128-64-10, {DIGITS_EPOCHS} epochs", "threads": THREADS}
    if isinstance(fast, str) or isinstance(sk, str):
        return {**row, "note": fast if isinstance(fast, str) else sk, "ok": False}
    f, k = fast[0], sk[0]
    return {**row, "fastnn_s": f["s"], "sklearn_s": k["s"], "ratio": k["s"] / f["s"],
            "fastnn_acc": f["acc"], "sklearn_acc": k["acc"], "ok": f["acc"] >= 0.9}


def _process_rows():
    """Import time and peak memory of a fresh process, against importing torch."""
    # VmHWM (peak resident memory) restarts at exec, unlike getrusage's ru_maxrss, which a
    # child inherits from the process that started it.
    code = ("import time; t = time.perf_counter(); import {mod}; "
            "dt = time.perf_counter() - t; "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
            "print(dt, hwm)")
    rows = []
    for mod in ("fastnn", "torch"):
        samples = []
        for _ in range(5):
            out = subprocess.run([sys.executable, "-c", code.format(mod=mod)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                break
            dt, rss = out.stdout.split()
            samples.append((float(dt), int(rss)))
        if samples:
            rows.append({"shape": f"import {mod}", "import_ms": 1e3 * float(np.median([s[0] for s in samples])),
                         "peak_mib": samples[0][1] / 1024, "ok": True})
    return rows


TRAIN_COLUMNS = [
    Column("shape", "training", width=24), Column("batch", "batch"),
    Column("fastnn", "fastnn samples/s", ",.0f"), Column("gflops", "fastnn GFLOP/s", ".1f"),
    Column("torch", "torch samples/s", ",.0f"), Column("ratio", "fastnn/torch", ".2f"),
    Column("bf16", "fastnn bf16 samples/s", ",.0f"), Column("bf16_ratio", "bf16/fp32", ".2f"),
]
CEILING_COLUMNS = [
    Column("shape", "ceiling", width=40), Column("train_gflops", "training GFLOP/s", ".1f"),
    Column("sgemm0", "SGEMM GFLOP/s (0)", ".1f"), Column("ratio0", "training/SGEMM (0)", ".2f"),
    Column("sgemm1", "SGEMM GFLOP/s (1)", ".1f"), Column("ratio1", "training/SGEMM (1)", ".2f"),
]
INFER_COLUMNS = [
    Column("shape", "inference", width=32), Column("batch", "batch"),
    Column("fastnn_us", "fastnn us", ",.1f"), Column("torch_us", "torch us", ",.1f"),
    Column("ratio", "torch/fastnn", ".2f"),
]
DIGITS_COLUMNS = [
    Column("shape", "vs scikit-learn", width=36), Column("fastnn_s", "fastnn s", ".2f"),
    Column("sklearn_s", "sklearn s", ".2f"), Column("ratio", "sklearn/fastnn", ".1f"),
    Column("fastnn_acc", "fastnn acc", ".4f"), Column("sklearn_acc", "sklearn acc", ".4f"),
]
PROCESS_COLUMNS = [
    Column("shape", "process", width=16), Column("import_ms", "import ms", ".1f"),
    Column("peak_mib", "peak MiB", ".1f"),
]


def _print_table(columns, rows) -> None:
    table = Table(columns)
    table.header()
    for row in rows:
        table.row(row)
    print()


def run(ctx: Context) -> dict:
    torch = _present("torch")
    notes = [
        f"{THREADS} threads for fastnn, PyTorch ({'present' if torch else 'not installed'}) and "
        "OpenBLAS; each engine (fastnn, PyTorch, scikit-learn) timed in a Python process of its "
        "own (a peer's spinning worker threads slow whatever runs next in the same process); "
        "samples/s = samples per epoch / median epoch time after warm-up epochs, a quiet gap "
        "before each (bench/timing.py); PyTorch runs the usual "
        "loop (randperm, slice, zero_grad, forward, cross_entropy, backward, step)",
        "training GFLOP/s counts 2*M*K*N per Dense layer forward, 2*M*K*N for dW and 2*M*K*N for "
        "dX backward, no dX for the first layer (wide: "
        f"{train_flops(NETWORKS['wide 784-2048-2048-10']) / 1e6:.1f} MFLOP per sample); "
        "bias, activations, loss and optimizer not counted",
        "ceiling: the same training flop rate / fastnn.ops.matmul GFLOP/s on SGEMM shapes "
        "measured interleaved with fastnn's epochs, in its process",
    ]
    for note in notes:
        print(note)
    throughput, ceiling = _throughput_rows(ctx, torch)
    _print_table(TRAIN_COLUMNS, throughput)
    ceilings = [ceiling] if ceiling else []
    if ceiling:
        print("SGEMM (0) = " + ceiling["sgemm0_label"] + ", SGEMM (1) = " + ceiling["sgemm1_label"])
        _print_table(CEILING_COLUMNS, ceilings)
    inference = _inference_rows(ctx, torch)
    _print_table(INFER_COLUMNS, inference)
    digits = [_digits_row(ctx)]
    _print_table(DIGITS_COLUMNS, digits)
    process = _process_rows()
    _print_table(PROCESS_COLUMNS, process)
    rows = throughput + ceilings + inference + digits + process
    for r in rows:
        r.setdefault("threads", THREADS)
    sgemm_note = (f"SGEMM (0) = {ceiling['sgemm0_label']}, SGEMM (1) = {ceiling['sgemm1_label']}"
                  if ceiling else "")
    md = (markdown(TRAIN_COLUMNS, throughput, "Training throughput") + "\n"
          + markdown(CEILING_COLUMNS, ceilings, "Wide network: training flop rate vs SGEMM")
          + "\n" + markdown(INFER_COLUMNS, inference, "Inference (fastnn vs PyTorch)") + "\n"
          + markdown(DIGITS_COLUMNS, digits, "Digits vs scikit-learn") + "\n"
          + markdown(PROCESS_COLUMNS, process, "Process") + "\n"
          + "".join(f"- {n}\n" for n in notes + ([sgemm_note] if sgemm_note else [])))
    return {"rows": rows, "notes": notes, "markdown": md}
