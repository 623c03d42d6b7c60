"""Whole-model training and inference: fastnn.Sequential against PyTorch (CPU, same threads)
and scikit-learn's MLPClassifier, in the same run. PyTorch and scikit-learn are optional: rows
whose peer is missing say so."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

import fastnn
from fastnn import optim
from fastnn.layers import Dense

from bench.suites._ceilings import sgemm_fn
from bench.suites._common import Context
from bench.suites._engines import NOT_IN_BUILD
from bench.suites._mlp import NETWORKS, data, fastnn_model, torch_model, train_flops
from bench.table import Column, Table, markdown
from bench.threads import same_threads
from bench.timing import measure_interleaved

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


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


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


def _throughput_rows(ctx: Context, torch):
    """One interleaved measurement per network: fastnn fp32 epoch, fastnn bf16 epoch (when the
    build has it), the PyTorch epoch, and for the wide network the SGEMM shapes of its ceiling."""
    rows, ceiling = [], None
    for name, bs, opt, n_full, n_quick in CONFIGS:
        widths = NETWORKS[name]
        n = n_quick if ctx.quick else n_full
        X, y = data(widths, n)
        fns = {}
        with same_threads(ctx.blas, THREADS):
            model = _fastnn_model(widths, opt)
            fns["fastnn"] = lambda: model.fit(X, y, epochs=1, batch_size=bs, verbose=0)
            bf16, bf16_note = _fastnn_bf16(widths, opt, X, y, bs)
            if bf16 is not None:
                fns["bf16"] = lambda: bf16.fit(X, y, epochs=1, batch_size=bs, verbose=0)
            if torch is not None:
                torch.set_num_threads(THREADS)
                tm, to = _torch_model(torch, widths, opt)
                Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
                gen = torch.Generator().manual_seed(0)
                fns["torch"] = lambda: _torch_epoch(torch, tm, to, Xt, yt, bs, gen)
            sgemm_flops = {}
            if name.startswith("wide"):
                for shape in SGEMM_SHAPES_QUICK if ctx.quick else SGEMM_SHAPES:
                    fns[_sgemm_label(*shape)], sgemm_flops[_sgemm_label(*shape)] = sgemm_fn(*shape)
            times = measure_interleaved(fns, ctx.timer)
        flops = train_flops(widths) * n
        fast = n / times["fastnn"].median_s
        row = {"shape": name, "threads": THREADS, "batch": bs, "fastnn": fast,
               "gflops": flops / times["fastnn"].median_s / 1e9,
               "loss": model.evaluate(X, y)["loss"], "ok": True,
               "fastnn_time": times["fastnn"].to_dict()}
        if torch is not None:
            row["torch"] = n / times["torch"].median_s
            row["ratio"] = fast / row["torch"]
            row["torch_time"] = times["torch"].to_dict()
        if bf16 is not None:
            row["bf16"] = n / times["bf16"].median_s
            row["bf16_ratio"] = row["bf16"] / fast
            row["bf16_loss"] = bf16.evaluate(X, y)["loss"]
        else:
            row["bf16"], row["bf16_detail"] = NOT_IN_BUILD, bf16_note
        rows.append(row)
        if sgemm_flops:
            ceiling = {"shape": f"{name} training flop rate", "threads": THREADS, "ok": True,
                       "train_gflops": row["gflops"], "flops_per_sample": train_flops(widths)}
            for i, (label, f) in enumerate(sgemm_flops.items()):
                rate = f / times[label].median_s / 1e9
                ceiling[f"sgemm{i}_label"], ceiling[f"sgemm{i}"] = label, rate
                ceiling[f"ratio{i}"] = row["gflops"] / rate
    return rows, ceiling


def _inference_rows(ctx: Context, torch):
    rows = []
    for name, _, opt, _, _ in CONFIGS:
        widths = NETWORKS[name]
        model = _fastnn_model(widths, opt)
        if torch is not None:
            tm = torch_model(torch, widths, model.get_weights())
        for batch in (1, 1024):
            X, _ = data(widths, batch, seed=1)
            fns = {"fastnn": lambda: model.predict(X, batch_size=batch)}
            if torch is not None:
                Xt = torch.from_numpy(X)

                def run():
                    with torch.inference_mode():
                        return torch.softmax(tm(Xt), dim=1)

                fns["torch"] = run
            with same_threads(ctx.blas, THREADS):
                times = measure_interleaved(fns, ctx.timer)
            t = times["fastnn"]
            row = {"shape": f"{name} predict", "threads": THREADS, "batch": batch,
                   "fastnn_us": t.median_s * 1e6, "ok": True}
            if torch is not None:
                row["torch_us"] = times["torch"].median_s * 1e6
                row["ratio"] = times["torch"].median_s / t.median_s
            rows.append(row)
    return rows


def _digits_row(ctx: Context):
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return {"shape": "digits vs sklearn", "note": "scikit-learn not installed", "ok": True}
    import warnings

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    epochs, hidden = 100, (128, 64)
    with same_threads(ctx.blas, THREADS):
        t0 = time.perf_counter()
        model = fastnn.Sequential([Dense(hidden[0], "relu"), Dense(hidden[1], "relu"),
                                   Dense(10)], input_dim=64, seed=0)
        model.compile("softmax_cross_entropy", optim.Adam(lr=1e-3), metrics=["accuracy"])
        model.fit(Xtr, ytr, epochs=epochs, batch_size=200, verbose=0)
        t_fast = time.perf_counter() - t0
        acc_fast = model.evaluate(Xte, yte)["accuracy"]
        clf = MLPClassifier(hidden_layer_sizes=hidden, solver="adam", batch_size=200,
                            learning_rate_init=1e-3, max_iter=epochs, random_state=0,
                            n_iter_no_change=epochs + 1, tol=0.0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
            clf.fit(Xtr, ytr)
        t_sk = time.perf_counter() - t0
        acc_sk = clf.score(Xte, yte)
    return {"shape": f"digits 64-128-64-10, {epochs} epochs", "threads": THREADS,
            "fastnn_s": t_fast, "sklearn_s": t_sk, "ratio": t_sk / t_fast,
            "fastnn_acc": acc_fast, "sklearn_acc": acc_sk, "ok": acc_fast >= 0.9}


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
    torch = _torch()
    notes = [
        f"{THREADS} threads for fastnn, PyTorch ({'present' if torch else 'not installed'}) and "
        "OpenBLAS; samples/s = samples per epoch / median epoch time, engines interleaved, "
        "after warm-up epochs, a quiet gap before each (bench/timing.py); PyTorch runs the usual "
        "loop (randperm, slice, zero_grad, forward, cross_entropy, backward, step)",
        "training GFLOP/s counts 2*M*K*N per Dense layer forward, 2*M*K*N for dW and 2*M*K*N for "
        "dX backward, no dX for the first layer (wide: "
        f"{train_flops(NETWORKS['wide 784-2048-2048-10']) / 1e6:.1f} MFLOP per sample); "
        "bias, activations, loss and optimizer not counted",
        "ceiling: the same training flop rate / fastnn.ops.matmul GFLOP/s on SGEMM shapes "
        "measured interleaved with the epochs of the same run",
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
