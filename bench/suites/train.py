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

from bench.suites._common import Context
from bench.table import Column, Table
from bench.threads import same_threads
from bench.timing import measure

NAME = "train"
DESCRIPTION = "training samples/s and inference latency vs PyTorch CPU; digits vs scikit-learn"

# name, layer widths, batch size, optimizer, samples (full / quick)
CONFIGS = (
    ("small 64-128-10", (64, 128, 10), 32, "sgd", 32768, 4096),
    ("medium 784-256-256-10", (784, 256, 256, 10), 128, "adam", 16384, 2048),
    ("wide 784-2048-2048-10", (784, 2048, 2048, 10), 256, "adam", 4096, 512),
)
THREADS = 2


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _data(widths, n, seed=0):
    rng = np.random.default_rng(seed)
    c = widths[-1]
    centers = rng.standard_normal((c, widths[0])).astype(np.float32)
    y = rng.integers(0, c, n)
    X = (centers[y] + rng.standard_normal((n, widths[0]), dtype=np.float32))
    return X.astype(np.float32), y.astype(np.int64)


def _fastnn_model(widths, opt):
    layers = [Dense(w, "relu") for w in widths[1:-1]] + [Dense(widths[-1])]
    model = fastnn.Sequential(layers, input_dim=widths[0], seed=0)
    model.compile("softmax_cross_entropy",
                  optim.SGD(lr=0.01, momentum=0.9) if opt == "sgd" else optim.Adam(lr=1e-3))
    return model


def _torch_model(torch, widths, opt):
    mods = []
    for a, b in zip(widths[:-2], widths[1:-1]):
        mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    mods.append(torch.nn.Linear(widths[-2], widths[-1]))
    model = torch.nn.Sequential(*mods)
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


def _throughput_rows(ctx: Context, torch):
    rows = []
    for name, widths, bs, opt, n_full, n_quick in CONFIGS:
        n = n_quick if ctx.quick else n_full
        X, y = _data(widths, n)
        with same_threads(ctx.blas, THREADS):
            model = _fastnn_model(widths, opt)
            model.fit(X, y, epochs=1, batch_size=bs, verbose=0)  # warm-up
            t = measure(lambda: model.fit(X, y, epochs=1, batch_size=bs, verbose=0), ctx.timer)
            fast = n / t.median_s
            row = {"shape": name, "threads": THREADS, "batch": bs, "fastnn": fast,
                   "loss": model.evaluate(X, y)["loss"], "ok": True}
            if torch is not None:
                torch.set_num_threads(THREADS)
                tm, to = _torch_model(torch, widths, opt)
                Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
                gen = torch.Generator().manual_seed(0)
                _torch_epoch(torch, tm, to, Xt, yt, bs, gen)
                tt = measure(lambda: _torch_epoch(torch, tm, to, Xt, yt, bs, gen), ctx.timer)
                row["torch"] = n / tt.median_s
                row["ratio"] = fast / row["torch"]
        rows.append(row)
    return rows


def _inference_rows(ctx: Context, torch):
    rows = []
    for name, widths, _, opt, _, _ in CONFIGS:
        model = _fastnn_model(widths, opt)
        for batch in (1, 1024):
            X, _ = _data(widths, batch, seed=1)
            with same_threads(ctx.blas, THREADS):
                t = measure(lambda: model.predict(X, batch_size=batch), ctx.timer)
                row = {"shape": f"{name} predict", "threads": THREADS, "batch": batch,
                       "fastnn_us": t.median_s * 1e6, "ok": True}
                if torch is not None:
                    tm, _ = _torch_model(torch, widths, opt)
                    Xt = torch.from_numpy(X)

                    def run():
                        with torch.inference_mode():
                            return torch.softmax(tm(Xt), dim=1)

                    tt = measure(run, ctx.timer)
                    row["torch_us"] = tt.median_s * 1e6
                    row["ratio"] = tt.median_s / t.median_s
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


def run(ctx: Context) -> dict:
    torch = _torch()
    notes = [f"{THREADS} threads for fastnn, PyTorch ({'present' if torch else 'not installed'}) "
             "and OpenBLAS; samples/s = samples per epoch / median epoch time (after one "
             "warm-up epoch); PyTorch runs the usual loop (randperm, slice, zero_grad, forward, "
             "cross_entropy, backward, step)"]
    print(notes[0])
    rows = []
    table = Table([Column("shape", "training", width=24), Column("batch", "batch"),
                   Column("fastnn", "fastnn samples/s", ",.0f"),
                   Column("torch", "torch samples/s", ",.0f"), Column("ratio", "fastnn/torch", ".2f")])
    table.header()
    for row in _throughput_rows(ctx, torch):
        table.row(row)
        rows.append(row)
    print()
    table = Table([Column("shape", "inference", width=32), Column("batch", "batch"),
                   Column("fastnn_us", "fastnn us", ",.1f"), Column("torch_us", "torch us", ",.1f"),
                   Column("ratio", "torch/fastnn", ".2f")])
    table.header()
    for row in _inference_rows(ctx, torch):
        table.row(row)
        rows.append(row)
    print()
    row = _digits_row(ctx)
    rows.append(row)
    table = Table([Column("shape", "vs scikit-learn", width=36), Column("fastnn_s", "fastnn s", ".2f"),
                   Column("sklearn_s", "sklearn s", ".2f"), Column("ratio", "sklearn/fastnn", ".1f"),
                   Column("fastnn_acc", "fastnn acc", ".4f"), Column("sklearn_acc", "sklearn acc", ".4f")])
    table.header()
    table.row(row)
    print()
    table = Table([Column("shape", "process", width=16), Column("import_ms", "import ms", ".1f"),
                   Column("peak_mib", "peak MiB", ".1f")])
    table.header()
    for row in _process_rows():
        table.row(row)
        rows.append(row)
    for r in rows:
        r.setdefault("threads", THREADS)
    return {"rows": rows, "notes": notes}
