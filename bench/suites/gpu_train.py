"""Training throughput on the GPU (issue 6 part 5): fastnn.Sequential(device=DEVICE) against
PyTorch on the same GPU, in the same run: eager (nn.Sequential + Adam(foreach=True)), the same
step under torch.compile(mode="reduce-overhead"), and eager with Adam(fused=True); in fp32,
tf32 and bf16, for the issue's networks. Needs a CUDA GPU, PyTorch with CUDA and fastnn built
with CUDA; otherwise it prints why and records nothing.

Every variant trains the same network (ReLU hidden layers, Adam lr 1e-3) on the same synthetic
data (fixed seed, generated on the GPU) for the same number of epochs, shuffled each epoch.
samples/s = epochs x samples / the wall time of those epochs, after one warm-up epoch (which
pays for torch.compile, CUDA-graph capture, the allocators), ending with a device sync.
fastnn trains with `fit`, its data given twice: already on the GPU (the torch tensors, through
DLPack, no copy) and as NumPy arrays (fit copies them to the GPU, inside the timed call)."""

from __future__ import annotations

import contextlib
import time

from bench.suites import _gpu
from bench.suites._common import Context
from bench.table import Column, Table, markdown

NAME = "gpu-train"
DESCRIPTION = ("GPU training samples/s, fastnn vs PyTorch eager / compiled / fused Adam, "
               "fp32 tf32 bf16 (needs a GPU)")

# network, layer widths, batch size, loss, samples (full, quick): sample counts are multiples
# of the batch size (no short last batch, so torch.compile sees one shape) and give PyTorch
# eager epochs of roughly 0.05-0.3 s on an H100.
# Rows with a target against compiled PyTorch come first: with a short time budget the costly
# torch.compile variants are measured where the targets need them.
CONFIGS = (
    ("784-256-256-10", (784, 256, 256, 10), 128, "softmax_cross_entropy", 32768, 8192),
    ("64-64-64-64-16", (64, 64, 64, 64, 16), 16384, "mse", 1 << 20, 1 << 17),
    ("784-4096-4096-10", (784, 4096, 4096, 10), 4096, "softmax_cross_entropy", 32768, 8192),
    ("784-256-256-10", (784, 256, 256, 10), 4096, "softmax_cross_entropy", 262144, 32768),
)
PRECISIONS = ("fp32", "tf32", "bf16")   # outer loop: with a short budget fp32 comes first
EPOCHS, EPOCHS_QUICK = 3, 1
LR = 1e-3
NEED_S = 15           # a variant starts only with this much of the time budget left
NEED_COMPILE_S = 60   # torch.compile: compiling alone can take this long

VARIANTS = ("fastnn", "eager", "fused", "compiled", "fastnn_numpy")

# Where the data, the models and the training live. Tests set "cpu" to run the loops on the host
# with tiny data (the plumbing, not the speed).
DEVICE = "cuda"

COLUMNS = [
    Column("network", "network", width=16),
    Column("batch", "batch"),
    Column("precision", "prec"),
    Column("fastnn", "fastnn", ",.0f"),
    Column("fastnn_numpy", "fastnn (NumPy in)", ",.0f"),
    Column("eager", "torch eager", ",.0f"),
    Column("fused", "torch fused Adam", ",.0f"),
    Column("compiled", "torch compiled", ",.0f"),
    Column("vs_eager", "/eager", ".2f"),
    Column("vs_compiled", "/compiled", ".2f"),
    Column("vs_fused", "/fused", ".2f"),
    Column("target", "issue-6 target"),
]


# ---------------------------------------------------------------------------- data and models
def _sync(torch):
    """Wait for all queued GPU work (torch's and fastnn's streams: a device-wide sync)."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _data(torch, widths, n, loss, seed=0):
    """Gaussian clusters (classification) or a smooth random map (regression), on the GPU."""
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    d, c = widths[0], widths[-1]
    if loss == "mse":
        X = torch.randn(n, d, device=DEVICE, generator=g)
        proj = torch.randn(d, c, device=DEVICE, generator=g) / d ** 0.5
        y = torch.tanh(X.double() @ proj.double()).float()
    else:
        centers = torch.randn(c, d, device=DEVICE, generator=g)
        y = torch.randint(0, c, (n,), device=DEVICE, generator=g)
        X = centers[y] + torch.randn(n, d, device=DEVICE, generator=g)
    return X.contiguous(), y.contiguous()


@contextlib.contextmanager
def _torch_precision(torch, precision):
    """tf32: cuBLAS may use TF32 tensor cores for float32 matmuls; fp32 and bf16: it may not
    (bf16 is autocast in the step: bf16 GEMMs, fp32 master weights and Adam state)."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _torch_model(torch, widths):
    torch.manual_seed(0)
    mods = []
    for a, b in zip(widths[:-2], widths[1:-1]):
        mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    mods.append(torch.nn.Linear(widths[-2], widths[-1]))
    return torch.nn.Sequential(*mods).to(DEVICE)


def _torch_step(torch, model, opt, loss, precision):
    """What a PyTorch user writes: forward (autocast for bf16), loss, backward, step."""
    lossf = (torch.nn.functional.cross_entropy if loss == "softmax_cross_entropy"
             else torch.nn.functional.mse_loss)
    bf16 = precision == "bf16"

    def step(xb, yb):
        with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=bf16):
            out = lossf(model(xb), yb)   # autocast runs both losses in float32
        out.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out

    return step


def _torch_epochs(torch, step, X, y, batch, epochs, gen, mark=None):
    """Shuffle on the GPU, slice batches, step; returns the last batch's loss (synchronized)."""
    n = X.shape[0]
    last = None
    for _ in range(epochs):
        perm = torch.randperm(n, device=DEVICE, generator=gen)
        Xs, ys = X[perm], y[perm]
        for i in range(0, n, batch):
            if mark is not None:
                mark()
            last = step(Xs[i:i + batch], ys[i:i + batch])
    loss = float(last.detach())
    _sync(torch)
    return loss


def _time_torch(torch, variant, widths, loss, precision, X, y, batch, epochs, compile_what="step"):
    """(samples/s, last loss, warm-up seconds) for one PyTorch variant. "compiled" compiles the
    whole step (forward, loss, backward, Adam; Dynamo splits it at backward) or, with
    compile_what="model", the model alone (Adam eager)."""
    model = _torch_model(torch, widths)
    if variant == "fused":
        opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=LR, foreach=True)
    mark = None
    if variant == "compiled":
        torch._dynamo.reset()
        if compile_what == "step":
            step = torch.compile(_torch_step(torch, model, opt, loss, precision),
                                 mode="reduce-overhead")
        else:
            step = _torch_step(torch, torch.compile(model, mode="reduce-overhead"), opt, loss,
                               precision)
        compiler = getattr(torch, "compiler", None)
        mark = getattr(compiler, "cudagraph_mark_step_begin", None)
    else:
        step = _torch_step(torch, model, opt, loss, precision)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    try:
        with _torch_precision(torch, precision):
            _sync(torch)
            t0 = time.perf_counter()
            _torch_epochs(torch, step, X, y, batch, 1, gen, mark)
            warm = time.perf_counter() - t0
            t0 = time.perf_counter()
            last = _torch_epochs(torch, step, X, y, batch, epochs, gen, mark)
            dt = time.perf_counter() - t0
    finally:
        if variant == "compiled":
            torch._dynamo.reset()
    return _gpu.samples_per_s(epochs * X.shape[0], dt), last, warm


def _fastnn_model(widths, loss, precision):
    import fastnn
    from fastnn.layers import Dense

    layers = [Dense(w, activation="relu") for w in widths[1:-1]] + [Dense(widths[-1])]
    model = fastnn.Sequential(layers, input_dim=widths[0], seed=0, device=DEVICE,
                              precision=precision)
    model.compile(loss, fastnn.optim.Adam(lr=LR))
    return model


def _time_fastnn(torch, widths, loss, precision, X, y, batch, epochs):
    """(samples/s, last epoch's mean loss, warm-up seconds) for fastnn's fit on X, y (fastnn
    Tensors on the GPU, or NumPy arrays)."""
    model = _fastnn_model(widths, loss, precision)
    _sync(torch)
    t0 = time.perf_counter()
    model.fit(X, y, epochs=1, batch_size=batch, verbose=0)
    _sync(torch)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    hist = model.fit(X, y, epochs=epochs, batch_size=batch, verbose=0)
    _sync(torch)
    dt = time.perf_counter() - t0
    losses = getattr(hist, "history", {}).get("loss") or [None]
    n = X.shape[0]
    return _gpu.samples_per_s(epochs * n, dt), losses[-1], warm


# ---------------------------------------------------------------------------- the suite
def _variant(torch, variant, cfg, precision, data, epochs):
    """samples/s of one variant, or "n/a (...)"; extra facts go in ``info``."""
    network, widths, batch, loss, _, _ = cfg
    X, y, host = data
    info = {}
    need = NEED_COMPILE_S if variant == "compiled" else NEED_S
    if _gpu.out_of_time(need):
        return "n/a (time budget spent)", info
    try:
        if variant in ("fastnn", "fastnn_numpy"):
            import fastnn

            if variant == "fastnn":
                Xd, yd = fastnn.from_dlpack(X), fastnn.from_dlpack(y)
            else:
                if host[0] is None:
                    host[0], host[1] = X.cpu().numpy(), y.cpu().numpy()
                Xd, yd = host
            sps, last, warm = _time_fastnn(torch, widths, loss, precision, Xd, yd, batch, epochs)
        elif variant == "compiled":
            try:
                sps, last, warm = _time_torch(torch, variant, widths, loss, precision, X, y,
                                              batch, epochs)
            except Exception as exc:  # then the model alone, the other common recipe
                info["step_error"] = _gpu.error_text(exc)
                if _gpu.out_of_time(NEED_COMPILE_S):
                    raise
                sps, last, warm = _time_torch(torch, variant, widths, loss, precision, X, y,
                                              batch, epochs, compile_what="model")
                info["compiled"] = "model only"
        else:
            sps, last, warm = _time_torch(torch, variant, widths, loss, precision, X, y, batch,
                                          epochs)
    except Exception as exc:
        return _gpu.error_text(exc), info
    finally:
        with contextlib.suppress(Exception):  # a sticky CUDA error is reported by the next row
            _sync(torch)
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
    info.update(loss=last, warmup_s=warm)
    return sps, info


def run(ctx: Context) -> dict:
    torch, why = _gpu.why_not()
    if torch is None:
        print(why)
        return {"rows": [], "notes": [why], "markdown": why + "\n"}
    epochs = EPOCHS_QUICK if ctx.quick else EPOCHS
    notes = [f"device: {_gpu.device_name(torch, DEVICE)}, PyTorch {torch.__version__}; samples/s = "
             f"{epochs} epoch(s) x samples / their wall time after a 1-epoch warm-up, ending "
             "with a device sync; Adam lr 1e-3, ReLU hidden layers, data shuffled each epoch on "
             "the GPU; 'fastnn' = fit on GPU-resident data (the torch tensors via DLPack), "
             "'fastnn (NumPy in)' = fit on NumPy arrays (the copy to the GPU is timed); "
             "/eager, /compiled, /fused = fastnn over that PyTorch variant (> 1: fastnn faster); "
             "PyTorch tf32 = set_float32_matmul_precision('high'), bf16 = "
             "autocast(bfloat16) with fp32 weights; compiled = torch.compile(step, "
             "mode='reduce-overhead') with Adam(foreach=True)"]
    print(notes[0])
    table = Table(COLUMNS)
    table.header()
    rows, problems = [], []
    datasets = {}
    for precision in PRECISIONS:
        for cfg in CONFIGS:
            network, widths, batch, loss, n_full, n_quick = cfg
            n = n_quick if ctx.quick else n_full
            key = (widths, n, loss)
            if key not in datasets:
                datasets.clear()   # one data set on the GPU at a time
                if DEVICE == "cuda":
                    torch.cuda.empty_cache()
                X, y = _data(torch, widths, n, loss)
                datasets[key] = (X, y, [None, None])
            samples, infos = {}, {}
            for variant in VARIANTS:
                samples[variant], infos[variant] = _variant(torch, variant, cfg, precision,
                                                            datasets[key], epochs)
            row = _gpu.train_row(network, batch, precision, samples)
            row["samples"] = n
            row["epochs"] = epochs
            row["info"] = infos
            table.row(row)
            rows.append(row)
            problems += [f"{row['shape']}: {note}" for note in row["notes"]]
            if infos["compiled"].get("compiled") == "model only":
                problems.append(f"{row['shape']}: compiled = torch.compile(model) with eager "
                                f"Adam: the whole step did not compile "
                                f"({infos['compiled']['step_error']})")
    datasets.clear()
    _sync(torch)
    if problems:
        print("\nnot measured:")
        for p in problems:
            print(f"  {p}")
    md = [markdown(COLUMNS, rows, "Training samples/s on the GPU (higher is better)"), notes[0]]
    if problems:
        md.append("\nNot measured:\n\n" + "\n".join(f"- {p}" for p in problems))
    return {"rows": rows, "notes": notes + problems, "markdown": "\n".join(md) + "\n"}
