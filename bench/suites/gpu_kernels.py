"""GPU kernels against PyTorch on the same GPU, in the same run (issue 5): the device's copy
bandwidth and cuBLAS as ceilings, our FP32 GEMM against `torch.matmul` with TF32 off, the fused
bias + ReLU GEMM against `addmm` + `relu_`, and each memory-bound kernel the CUDA module offers
against its PyTorch counterpart. Needs a CUDA GPU, PyTorch with CUDA and fastnn built with CUDA;
otherwise it says why and records nothing."""

from __future__ import annotations

from dataclasses import dataclass

from bench.suites import _gpu
from bench.suites._common import Context
from bench.table import Column, Table, markdown

NAME = "gpu-kernels"
DESCRIPTION = "CUDA kernels vs PyTorch/cuBLAS on the same GPU (needs a GPU)"


def _gpu_timer(torch, fn, repeats):
    """Median milliseconds per call from CUDA events, after warm-up."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def _why_not():
    """(torch, None) when both PyTorch and fastnn see a GPU, else (None, "skipped: ...")."""
    return _gpu.why_not()


def _gemm_rows(torch, cu, repeats, quick):
    rows = []
    stream = torch.cuda.current_stream().cuda_stream
    sizes = [(1024, 1024, 1024)] if quick else [(4096, 4096, 4096), (2048, 2048, 2048)]
    mlp = [(128, 784, 256), (4096, 784, 4096), (4096, 4096, 4096)] if not quick else [(128, 784, 256)]
    torch.backends.cuda.matmul.allow_tf32 = False
    for m, k, n in sizes:
        a = torch.randn(m, k, device="cuda")
        b = torch.randn(k, n, device="cuda")
        c = torch.empty(m, n, device="cuda")
        ours = _gpu_timer(torch, lambda: cu.gemm_device(a.data_ptr(), b.data_ptr(), c.data_ptr(),
                                                        m, n, k, k, n, n, stream=stream), repeats)
        ref = torch.matmul(a, b)
        err = float((c - ref).abs().max() / ref.abs().max())
        theirs = _gpu_timer(torch, lambda: torch.matmul(a, b, out=c), repeats)
        flops = 2.0 * m * n * k
        rows.append({"shape": f"sgemm {m}x{k}x{n}", "fastnn_ms": ours, "torch_ms": theirs,
                     "fastnn_tflops": flops / ours / 1e9, "torch_tflops": flops / theirs / 1e9,
                     "ratio": theirs / ours, "max_rel_err": err, "ok": err < 1e-3})
        # The general kernel (v1) on the same operands: what the fast path (v2) gains.
        v1 = _gpu_timer(torch, lambda: cu.gemm_device(a.data_ptr(), b.data_ptr(), c.data_ptr(),
                                                      m, n, k, k, n, n, stream=stream,
                                                      variant="v1"), repeats)
        rows.append({"shape": f"sgemm v1 {m}x{k}x{n}", "fastnn_ms": v1, "torch_ms": theirs,
                     "fastnn_tflops": flops / v1 / 1e9, "torch_tflops": flops / theirs / 1e9,
                     "ratio": theirs / v1, "ok": True})
        # TF32 tensor cores, against cuBLAS with TF32 allowed.
        ours32 = _gpu_timer(torch, lambda: cu.gemm_device(
            a.data_ptr(), b.data_ptr(), c.data_ptr(), m, n, k, k, n, n, stream=stream,
            variant="tf32"), repeats)
        err32 = float((c - ref).abs().max() / ref.abs().max())
        torch.backends.cuda.matmul.allow_tf32 = True
        theirs32 = _gpu_timer(torch, lambda: torch.matmul(a, b, out=c), repeats)
        torch.backends.cuda.matmul.allow_tf32 = False
        rows.append({"shape": f"tf32 {m}x{k}x{n}", "fastnn_ms": ours32, "torch_ms": theirs32,
                     "fastnn_tflops": flops / ours32 / 1e9, "torch_tflops": flops / theirs32 / 1e9,
                     "ratio": theirs32 / ours32, "max_rel_err": err32, "ok": err32 < 1e-2})
    for m, k, n in mlp:
        x = torch.randn(m, k, device="cuda")
        w = torch.randn(k, n, device="cuda") / k ** 0.5
        bias = torch.randn(n, device="cuda")
        y = torch.empty(m, n, device="cuda")
        ours = _gpu_timer(torch, lambda: cu.gemm_device(
            x.data_ptr(), w.data_ptr(), y.data_ptr(), m, n, k, k, n, n, bias=bias.data_ptr(),
            activation="relu", stream=stream), repeats)
        ref = torch.relu(torch.addmm(bias, x, w))
        err = float((y - ref).abs().max() / ref.abs().max())

        def torch_fn():
            torch.addmm(bias, x, w, out=y)
            y.relu_()

        theirs = _gpu_timer(torch, torch_fn, repeats)
        flops = 2.0 * m * n * k
        rows.append({"shape": f"linear+relu {m}x{k}x{n}", "fastnn_ms": ours, "torch_ms": theirs,
                     "fastnn_tflops": flops / ours / 1e9, "torch_tflops": flops / theirs / 1e9,
                     "ratio": theirs / ours, "max_rel_err": err, "ok": err < 1e-3})
    return rows


# ---------------------------------------------------------------- sampled softmax (issue 5)
def _sampled_rows(torch, repeats, quick):
    """fastnn.ops.sampled_softmax_cross_entropy on CUDA tensors (loss + dh + dW/db of the touched
    columns, the whole Python call: label download, host sampling, plan, kernels, the loss read
    back) against the same computation in PyTorch on the same sample: gather the touched columns
    of W and b, true and sampled logits, log-Q correction, accidental hits masked,
    cross_entropy, autograd for h and the gathered columns. The sample and the index tensors are
    built once outside the timed torch call (the comparison favours torch there)."""
    import math

    import numpy as np

    import fastnn
    from fastnn import _C

    n, d, c, s = (256, 128, 20_000, 64) if quick else (1024, 256, 100_000, 64)
    seed = 5
    gen = torch.Generator(device="cuda").manual_seed(0)
    h = torch.randn(n, d, device="cuda", generator=gen)
    W = torch.randn(d, c, device="cuda", generator=gen) / d ** 0.5
    b = 0.1 * torch.randn(c, device="cuda", generator=gen)
    rng = np.random.default_rng(0)
    labels_np = np.minimum(rng.zipf(1.3, n) - 1, c - 1).astype(np.int64)
    labels = torch.from_numpy(labels_np).cuda()
    fh, fW, fb, fy = (fastnn.from_dlpack(t) for t in (h, W, b, labels))

    def ours():
        return fastnn.ops.sampled_softmax_cross_entropy(fh, fW, fb, fy, s, seed)

    ids, expected, tries = _C.sample_candidates(s, c, seed, "log_uniform", True)
    cols = np.unique(np.concatenate([ids, labels_np]))
    p_y = np.log1p(1.0 / (labels_np + 1.0)) / math.log(c + 1.0)
    logq_y = torch.from_numpy(np.log(-np.expm1(tries * np.log1p(-p_y)))).float().cuda()
    logq_s = torch.from_numpy(np.log(expected)).float().cuda()
    cols_t = torch.from_numpy(cols).cuda()
    slot_s = torch.from_numpy(np.searchsorted(cols, ids)).cuda()
    slot_y = torch.from_numpy(np.searchsorted(cols, labels_np)).cuda()
    hit = slot_y[:, None] == slot_s[None, :]
    target = torch.zeros(n, dtype=torch.long, device="cuda")
    F = torch.nn.functional

    def theirs():
        hg = h.detach().requires_grad_()
        Wg = W.index_select(1, cols_t).requires_grad_()
        bg = b.index_select(0, cols_t).requires_grad_()
        zt = (hg * Wg[:, slot_y].T).sum(1) + bg[slot_y] - logq_y
        zs = (hg @ Wg[:, slot_s] + bg[slot_s] - logq_s).masked_fill(hit, float("-inf"))
        loss = F.cross_entropy(torch.cat([zt[:, None], zs], 1), target)
        return (loss,) + torch.autograd.grad(loss, (hg, Wg, bg))

    loss, dh, _, dW_cols, db_cols = ours()
    t_loss, t_dh, t_dW, t_db = theirs()
    err = max(abs(loss - float(t_loss)) / max(1.0, abs(float(t_loss))),
              float((torch.from_dlpack(dh) - t_dh).abs().max() / t_dh.abs().max()),
              float((torch.from_dlpack(dW_cols) - t_dW).abs().max() / t_dW.abs().max()),
              float((torch.from_dlpack(db_cols) - t_db).abs().max() / t_db.abs().max()))
    ms_ours = _gpu_timer(torch, ours, repeats)
    ms_theirs = _gpu_timer(torch, theirs, repeats)
    flops = 3 * 2.0 * n * s * d  # logits, dh, dW of the sampled columns
    return [{"shape": f"sampled softmax {n}x{d} C={c} S={s}", "fastnn_ms": ms_ours,
             "torch_ms": ms_theirs, "fastnn_tflops": flops / ms_ours / 1e9,
             "torch_tflops": flops / ms_theirs / 1e9, "ratio": ms_theirs / ms_ours,
             "max_rel_err": err, "ok": err < 1e-3}]


def _bf16_rows(torch, cu, repeats, quick):
    """The BF16 tensor-core GEMM (FP32 operands rounded to bf16 as the kernel stages them) against
    cuBLAS BF16 (torch.matmul on bf16 tensors, converted once outside the timing), plus torch
    with the conversion in the timed call (the same FP32-in, FP32-out contract as ours)."""
    rows = []
    stream = torch.cuda.current_stream().cuda_stream
    shapes = [(1024, 1024, 1024)] if quick else [(4096, 4096, 4096)]
    for m, k, n in shapes:
        a = torch.randn(m, k, device="cuda")
        b = torch.randn(k, n, device="cuda")
        c = torch.empty(m, n, device="cuda")
        a16, b16 = a.bfloat16(), b.bfloat16()
        c16 = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
        ours = _gpu_timer(torch, lambda: cu.gemm_device(
            a.data_ptr(), b.data_ptr(), c.data_ptr(), m, n, k, k, n, n, stream=stream,
            variant="bf16"), repeats)
        ref = (a16.double() @ b16.double()).float()
        err = float((c - ref).abs().max() / ref.abs().max())
        theirs = _gpu_timer(torch, lambda: torch.matmul(a16, b16, out=c16), repeats)
        cast = _gpu_timer(torch, lambda: torch.matmul(a.bfloat16(), b.bfloat16()).float(), repeats)
        flops = 2.0 * m * n * k
        rows.append({"shape": f"bf16 {m}x{k}x{n}", "fastnn_ms": ours, "torch_ms": theirs,
                     "fastnn_tflops": flops / ours / 1e9, "torch_tflops": flops / theirs / 1e9,
                     "ratio": theirs / ours, "max_rel_err": err, "ok": err < 1e-4})
        rows.append({"shape": f"bf16 {m}x{k}x{n} torch+casts", "fastnn_ms": ours,
                     "torch_ms": cast, "fastnn_tflops": flops / ours / 1e9,
                     "torch_tflops": flops / cast / 1e9, "ratio": cast / ours, "ok": True})
    mlp = [(128, 784, 256)] if quick else [(128, 784, 256), (4096, 784, 4096)]
    for m, k, n in mlp:
        x = torch.randn(m, k, device="cuda")
        w = torch.randn(k, n, device="cuda") / k ** 0.5
        bias = torch.randn(n, device="cuda")
        y = torch.empty(m, n, device="cuda")
        x16, w16, bias16 = x.bfloat16(), w.bfloat16(), bias.bfloat16()
        y16 = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
        ours = _gpu_timer(torch, lambda: cu.gemm_device(
            x.data_ptr(), w.data_ptr(), y.data_ptr(), m, n, k, k, n, n, bias=bias.data_ptr(),
            activation="relu", stream=stream, variant="bf16"), repeats)
        ref = torch.relu(x16.double() @ w16.double() + bias.double()).float()
        err = float((y - ref).abs().max() / ref.abs().max())

        def torch_fn():
            torch.addmm(bias16, x16, w16, out=y16)
            y16.relu_()

        theirs = _gpu_timer(torch, torch_fn, repeats)
        flops = 2.0 * m * n * k
        rows.append({"shape": f"bf16 linear+relu {m}x{k}x{n}", "fastnn_ms": ours,
                     "torch_ms": theirs, "fastnn_tflops": flops / ours / 1e9,
                     "torch_tflops": flops / theirs / 1e9, "ratio": theirs / ours,
                     "max_rel_err": err, "ok": err < 1e-4})
    return rows


# ---------------------------------------------------------------- dense backward (issue 5)
def _dense_backward_rows(torch, cu, repeats, quick):
    """The fused dense backward (one launch: dZ = dY * relu'(Z) formed while the dW and dX tiles
    are staged, db summed by dW's first tile row) against (a) its own two GEMMs alone on a dZ
    already in memory -- the floor the fusion aims at -- (b) the composed path (gate kernel,
    two GEMMs, column sums) and (c) PyTorch: relu mask, two matmuls and a sum, TF32 off."""
    rows = []
    stream = torch.cuda.current_stream().cuda_stream
    shapes = [(128, 784, 256)] if quick else [(128, 784, 256), (4096, 1024, 1024)]
    torch.backends.cuda.matmul.allow_tf32 = False
    for m, k, n in shapes:  # batch, in_features, out_features
        x = torch.randn(m, k, device="cuda")
        w = torch.randn(k, n, device="cuda") / k ** 0.5
        z = torch.randn(m, n, device="cuda")
        dy = torch.randn(m, n, device="cuda")
        dw = torch.empty(k, n, device="cuda")
        db = torch.empty(n, device="cuda")
        dx = torch.empty(m, k, device="cuda")
        ws = torch.empty(int(cu.dense_backward_workspace_bytes(m, n, k)), dtype=torch.uint8,
                         device="cuda")

        def ours(path):
            return lambda: cu.dense_backward_device(
                dy.data_ptr(), x.data_ptr(), w.data_ptr(), z.data_ptr(), "relu", 0.0, False,
                dw.data_ptr(), db.data_ptr(), dx.data_ptr(), m, k, n, n, k, n, n, k, False,
                ws.data_ptr(), ws.numel(), stream, "fp32", path)

        fused = _gpu_timer(torch, ours("fused"), repeats)
        dz = dy * (z > 0)
        err = max(float((dw - x.T @ dz).abs().max() / (x.T @ dz).abs().max()),
                  float((dx - dz @ w.T).abs().max() / (dz @ w.T).abs().max()),
                  float((db - dz.sum(0)).abs().max() / dz.sum(0).abs().max()))
        composed = _gpu_timer(torch, ours("composed"), repeats)

        def gemms():  # dW = X^T dZ, dX = dZ W^T on a stored dZ
            cu.gemm_device(x.data_ptr(), dz.data_ptr(), dw.data_ptr(), k, n, m, k, n, n,
                           trans_a=True, stream=stream)
            cu.gemm_device(dz.data_ptr(), w.data_ptr(), dx.data_ptr(), m, k, n, n, n, k,
                           trans_b=True, stream=stream)

        two = _gpu_timer(torch, gemms, repeats)

        def torch_fn():
            g = dy * (z > 0)
            torch.matmul(x.T, g, out=dw)
            torch.matmul(g, w.T, out=dx)
            torch.sum(g, 0, out=db)

        theirs = _gpu_timer(torch, torch_fn, repeats)
        flops = 4.0 * m * n * k
        shape = f"{m}x{k}x{n}"
        for label, ms in (("dense bwd fused", fused), ("dense bwd composed", composed),
                          ("  its two GEMMs", two)):
            fused_row = label.endswith("fused")
            rows.append({"shape": f"{label} {shape}", "fastnn_ms": ms, "torch_ms": theirs,
                         "fastnn_tflops": flops / ms / 1e9, "torch_tflops": flops / theirs / 1e9,
                         "ratio": theirs / ms, "max_rel_err": err if fused_row else None,
                         "ok": err < 1e-3})
        rows[-3]["fused_over_gemms"] = fused / two
    return rows


# ----------------------------------------------------------------------------------------------
# Ceilings (copy bandwidth, cuBLAS) and the memory-bound kernels (issue 5 part 4): each fastnn op,
# called through fastnn.ops on fastnn.Tensor views of torch's CUDA tensors (DLPack, no copy),
# against its PyTorch counterpart on the same data, same GPU, same run.

CE_CLASSES = 1024      # softmax cross-entropy rows: (n / 1024, 1024)
BN_FEATURES = 4096     # batch norm: (n / 4096, 4096)
OPT_TENSORS = 8        # optimizer steps and global norm: n parameters in 8 tensors of n / 8
# Where the cases put their data. Tests set "cpu" to run the cases' set-up and checks on the
# host (fastnn then works on NumPy views of torch's CPU tensors): the glue and the semantics
# (each fastnn op against its PyTorch counterpart), not the speed.
DEVICE = "cuda"
MEM_SIZES = (1 << 24, 1 << 26)     # float32 elements: 16M and 64M
MEM_SIZES_QUICK = (1 << 22,)


def _ceilings(torch, timer, quick):
    """The device's copy bandwidth (what a memory-bound kernel can reach) and cuBLAS FP32, TF32
    and BF16 throughput (what a GEMM can reach), measured here, now."""
    rows = []
    n = (1 << 24) if quick else (1 << 26)  # float32 elements: 64 / 256 MiB
    x = torch.empty(n, device=DEVICE).normal_()
    y = torch.empty_like(x)
    ms = _gpu.event_ms(torch, lambda: y.copy_(x), repeats=timer.repeats, warmup=timer.warmup)
    rows.append({"shape": f"device-to-device copy, {4 * n >> 20} MiB", "torch_ms": ms,
                 "value": _gpu.gbps(8 * n, ms), "unit": "GB/s, bytes read + written"})
    x = y = None  # 512 MiB back before the GEMMs
    s = 2048 if quick else 4096
    before = torch.backends.cuda.matmul.allow_tf32
    for name, dtype, tf32 in (("FP32", torch.float32, False), ("TF32", torch.float32, True),
                              ("BF16", torch.bfloat16, False)):
        a = torch.randn(s, s, device=DEVICE).to(dtype)
        b = torch.randn(s, s, device=DEVICE).to(dtype)
        c = torch.empty(s, s, device=DEVICE, dtype=dtype)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            ms = _gpu.event_ms(torch, lambda: torch.matmul(a, b, out=c), repeats=timer.repeats,
                               warmup=timer.warmup)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = before
        rows.append({"shape": f"cuBLAS {name} {s}x{s}x{s} (torch.matmul)", "torch_ms": ms,
                     "value": _gpu.tflops(2.0 * s ** 3, ms), "unit": "TFLOP/s"})
    cols = [Column("shape", "ceiling", width=40), Column("torch_ms", "ms", ".3f"),
            Column("value", "value", ",.1f"), Column("unit", "unit")]
    table = Table(cols)
    table.header()
    for row in rows:
        row.update(threads=0, ok=True)
        table.row(row)
    return rows, markdown(cols, rows, "Ceilings, measured in this run")


@dataclass
class _Case:
    nbytes: float          # least traffic: inputs read once, outputs written once
    fast: object           # () -> None, fastnn.ops on fastnn.Tensor (runs on fastnn's stream)
    ref: object            # () -> None, the PyTorch counterpart (torch's current stream)
    check: object          # () -> relative error of fastnn's result against PyTorch's
    tol: float


def _rel(torch, got, ref):
    """max |got - ref| / max |ref| over two torch tensors; inf for a shape mismatch."""
    if tuple(got.shape) != tuple(ref.shape):
        return float("inf")
    scale = float(ref.abs().max()) or 1.0
    return float((got.float() - ref.float()).abs().max()) / scale


def _views(torch):
    import fastnn

    if DEVICE == "cpu":
        return (lambda t: t.numpy()), torch.as_tensor

    def fa(t):  # torch CUDA tensor -> fastnn.Tensor on the same memory
        return fastnn.from_dlpack(t)

    def tt(t):  # fastnn CUDA tensor -> torch tensor on the same memory
        return torch.from_dlpack(t)

    return fa, tt


def _act_case(torch, n, name):
    from fastnn import ops
    F = torch.nn.functional
    fa, tt = _views(torch)
    x = torch.randn(n, device=DEVICE)
    xf = fa(x)
    ref = {"relu": F.relu, "sigmoid": torch.sigmoid, "gelu": F.gelu}[name]
    op = getattr(ops, name)
    return _Case(8.0 * n, lambda: op(xf), lambda: ref(x),
                 lambda: _rel(torch, tt(op(xf)), ref(x)), 1e-5)


def _act_grad_case(torch, n, name):
    """dy * act'(x): fastnn.ops.activation_grad against the kernel torch's autograd runs."""
    from fastnn import ops
    fa, tt = _views(torch)
    x = torch.randn(n, device=DEVICE)
    dy = torch.randn(n, device=DEVICE)
    xf, dyf = fa(x), fa(dy)
    aten = torch.ops.aten
    if name == "relu":
        ref = lambda: aten.threshold_backward(dy, x, 0.0)   # noqa: E731 (relu's backward)
    elif name == "sigmoid":
        y = torch.sigmoid(x)                                 # autograd keeps the output
        ref = lambda: aten.sigmoid_backward(dy, y)           # noqa: E731
    else:
        ref = lambda: aten.gelu_backward(dy, x)              # noqa: E731
    return _Case(12.0 * n, lambda: ops.activation_grad(name, dyf, xf), ref,
                 lambda: _rel(torch, tt(ops.activation_grad(name, dyf, xf)), ref()), 1e-5)


def _dropout_case(torch, n, rate=0.5, seed=1234):
    from fastnn import ops
    F = torch.nn.functional
    fa, tt = _views(torch)
    x = torch.randn(n, device=DEVICE)
    xf = fa(x)

    def check():
        y, mask = ops.dropout(xf, rate, seed)
        m = tt(mask)
        keep = float(m.float().mean())
        if abs(keep - (1 - rate)) > 5 * (rate * (1 - rate) / n) ** 0.5:  # 5 sigma
            return float("inf")
        return _rel(torch, tt(y), x * m / (1 - rate))

    # x read, y written, one byte of mask written per element (torch's bool mask too).
    return _Case(9.0 * n, lambda: ops.dropout(xf, rate, seed),
                 lambda: F.dropout(x, rate, training=True), check, 1e-6)


def _dropout_grad_case(torch, n, rate=0.5, seed=1234):
    from fastnn import ops
    fa, tt = _views(torch)
    x = torch.randn(n, device=DEVICE)
    dy = torch.randn(n, device=DEVICE)
    dyf = fa(dy)
    _, mask = ops.dropout(fa(x), rate, seed)
    tmask = torch.native_dropout(x, rate, True)[1]
    scale = 1.0 / (1.0 - rate)
    return _Case(9.0 * n, lambda: ops.dropout_grad(dyf, mask, rate),
                 lambda: torch.ops.aten.native_dropout_backward(dy, tmask, scale),
                 lambda: _rel(torch, tt(ops.dropout_grad(dyf, mask, rate)),
                              dy * tt(mask) * scale), 1e-6)


def _xent_case(torch, n):
    """Loss and gradient: fastnn's one fused pass against F.cross_entropy + autograd."""
    from fastnn import ops
    F = torch.nn.functional
    fa, tt = _views(torch)
    rows = n // CE_CLASSES
    logits = torch.randn(rows, CE_CLASSES, device=DEVICE)
    labels = torch.randint(0, CE_CLASSES, (rows,), device=DEVICE)
    lf, yf = fa(logits), fa(labels)
    lt = logits.detach().requires_grad_(True)

    def ref():
        loss = F.cross_entropy(lt, labels)
        return loss, torch.autograd.grad(loss, lt)[0]

    def check():
        loss, grad = ops.softmax_cross_entropy(lf, yf)
        tloss, tgrad = ref()
        tloss = tloss.item()
        return max(_rel(torch, tt(grad), tgrad), abs(loss - tloss) / max(abs(tloss), 1e-30))

    # logits read, gradient written, int64 labels read (the loss is 4 bytes).
    return _Case(8.0 * rows * CE_CLASSES + 8.0 * rows, lambda: ops.softmax_cross_entropy(lf, yf),
                 ref, check, 1e-4)


def _optim_case(torch, n, kind):
    """One step over n parameters in OPT_TENSORS tensors: fastnn's multi-tensor kernel against
    torch.optim (Adam fused=True; SGD momentum foreach=True), from the same start."""
    from fastnn import ops
    fa, tt = _views(torch)
    m = n // OPT_TENSORS
    start = [torch.randn(m, device=DEVICE) for _ in range(OPT_TENSORS)]
    grads = [torch.randn(m, device=DEVICE) for _ in range(OPT_TENSORS)]
    pf = [fa(p.clone()) for p in start]
    gf = [fa(g) for g in grads]
    pt = [torch.nn.Parameter(p.clone()) for p in start]
    for p, g in zip(pt, grads):
        p.grad = g
    count = [0]
    if kind == "adam":
        sf = [fa(torch.zeros(m, device=DEVICE)) for _ in range(OPT_TENSORS)]
        vf = [fa(torch.zeros(m, device=DEVICE)) for _ in range(OPT_TENSORS)]
        opt = torch.optim.Adam(pt, lr=1e-3, fused=True)

        def fast():
            count[0] += 1
            ops.adam_step(pf, gf, sf, vf, step=count[0], lr=1e-3)

        nbytes = 28.0 * n   # p, g, m, v read; p, m, v written
    else:
        bf = [fa(torch.zeros(m, device=DEVICE)) for _ in range(OPT_TENSORS)]
        opt = torch.optim.SGD(pt, lr=1e-2, momentum=0.9, foreach=True)

        def fast():
            count[0] += 1
            ops.sgd_step(pf, gf, lr=1e-2, momentum=0.9, momentum_buffers=bf, step=count[0])

        nbytes = 20.0 * n   # p, g, buf read; p, buf written

    def check():  # the first step of each, from the same parameters
        fast()
        opt.step()
        if not any(bool((b.detach() != s).any()) for b, s in zip(pt, start)):
            return float("inf")  # nothing moved: the comparison would prove nothing
        return max(_rel(torch, tt(a), b.detach()) for a, b in zip(pf, pt))

    return _Case(nbytes, fast, opt.step, check, 1e-5)


def _bn_case(torch, n):
    from fastnn import ops
    F = torch.nn.functional
    fa, tt = _views(torch)
    x = torch.randn(n // BN_FEATURES, BN_FEATURES, device=DEVICE)

    def const(value):  # gamma, beta and the running statistics, one set per library
        return torch.full((BN_FEATURES,), value, device=DEVICE)

    g, b, rm, rv = const(1.0), const(0.0), const(0.0), const(1.0)
    xf, gf, bf, rmf, rvf = fa(x), fa(const(1.0)), fa(const(0.0)), fa(const(0.0)), fa(const(1.0))

    def fast():
        return ops.batch_norm(xf, gf, bf, rmf, rvf, training=True, momentum=0.1, eps=1e-5)

    def ref():
        return F.batch_norm(x, rm, rv, g, b, training=True, momentum=0.1, eps=1e-5)

    # x read once and y written: the floor; a two-pass kernel reads x twice.
    return _Case(8.0 * n, fast, ref, lambda: _rel(torch, tt(fast()[0]), ref()), 1e-4)


def _norm_case(torch, n):
    from fastnn import ops
    fa, _ = _views(torch)
    m = n // OPT_TENSORS
    ts = [torch.randn(m, device=DEVICE) for _ in range(OPT_TENSORS)]
    tf = [fa(t) for t in ts]
    if hasattr(torch.nn.utils, "get_total_norm"):
        ref = lambda: torch.nn.utils.get_total_norm(ts)   # noqa: E731
    else:
        ref = lambda: torch.linalg.vector_norm(torch.stack(torch._foreach_norm(ts)))  # noqa: E731

    def check():
        want = float(ref())
        return abs(ops.global_norm(tf) - want) / want

    # fastnn returns a Python float (a device-to-host read and a sync per call); torch a tensor.
    return _Case(4.0 * n, lambda: ops.global_norm(tf), ref, check, 1e-4)


MEM_CASES = (
    ("relu", lambda t, n: _act_case(t, n, "relu")),
    ("sigmoid", lambda t, n: _act_case(t, n, "sigmoid")),
    ("gelu", lambda t, n: _act_case(t, n, "gelu")),
    ("relu grad", lambda t, n: _act_grad_case(t, n, "relu")),
    ("sigmoid grad", lambda t, n: _act_grad_case(t, n, "sigmoid")),
    ("gelu grad", lambda t, n: _act_grad_case(t, n, "gelu")),
    ("dropout p=0.5", _dropout_case),
    ("dropout grad", _dropout_grad_case),
    ("softmax xent + grad", _xent_case),
    ("adam step (8 tensors)", lambda t, n: _optim_case(t, n, "adam")),
    ("sgd momentum (8 tensors)", lambda t, n: _optim_case(t, n, "sgd")),
    ("batch norm train fwd", _bn_case),
    ("global norm (8 tensors)", _norm_case),
)

MEM_COLUMNS = [
    Column("shape", "kernel, elements", width=34),
    Column("fastnn_ms", "fastnn ms", ".4f"),
    Column("torch_ms", "torch ms", ".4f"),
    Column("fastnn_call_ms", "fastnn 1-call ms", ".4f"),
    Column("fastnn_gbps", "fastnn GB/s", ",.0f"),
    Column("torch_gbps", "torch GB/s", ",.0f"),
    Column("ratio", "torch/fastnn", ".2f"),
    Column("copy_frac", "fastnn/copy", ".2f"),
    Column("target", ">=0.8 copy"),
    Column("check", "check"),
]


def _size_label(n, case_name):
    if case_name.startswith("softmax"):
        return f"{n // CE_CLASSES}x{CE_CLASSES}"
    if case_name.startswith("batch norm"):
        return f"{n // BN_FEATURES}x{BN_FEATURES}"
    return f"{n >> 20}M" if n >= 1 << 20 else str(n)


def _measure(torch, build, n, timer, stream):
    """(bytes, measurements) for one case at one size: loop and 1-call ms of both libraries,
    fastnn's error and its tolerance, and "n/a (...)" for a side that raised."""
    out = {"fastnn_ms": None, "fastnn_call_ms": None, "torch_ms": None, "torch_call_ms": None,
           "err": None, "tol": None, "fastnn_error": None, "torch_error": None}
    try:
        case = build(torch, n)
    except Exception as exc:  # the setup uses fastnn ops (dropout's mask) and DLPack
        out["fastnn_error"] = _gpu.error_text(exc)
        return 0.0, out
    try:
        out["err"], out["tol"] = case.check(), case.tol
        out["fastnn_ms"] = _gpu.event_ms(torch, case.fast, stream, calls=timer.loop,
                                         repeats=timer.repeats, warmup=timer.warmup)
        out["fastnn_call_ms"] = _gpu.event_ms(torch, case.fast, stream, calls=1,
                                              repeats=timer.repeats, warmup=1)
    except Exception as exc:
        out["fastnn_error"] = _gpu.error_text(exc)
    try:
        out["torch_ms"] = _gpu.event_ms(torch, case.ref, calls=timer.loop, repeats=timer.repeats,
                                        warmup=timer.warmup)
        out["torch_call_ms"] = _gpu.event_ms(torch, case.ref, calls=1, repeats=timer.repeats,
                                             warmup=1)
    except Exception as exc:
        out["torch_error"] = _gpu.error_text(exc)
    return case.nbytes, out


def _memory_bound(torch, timer, quick, copy_gbps):
    import fastnn

    sizes = MEM_SIZES_QUICK if quick else MEM_SIZES
    stream = _gpu.fastnn_stream(torch) if DEVICE == "cuda" else None
    notes = [f"memory-bound kernels: 'ms' = median per-call time of {timer.loop} back-to-back "
             f"calls between two CUDA events ({timer.repeats} samples; the kernel time when it "
             "outlasts the host's per-call Python and launch overhead, that overhead otherwise); "
             "'1-call ms' = one call between the events (overhead + kernel, what a synchronous "
             "caller waits); GB/s from the least traffic (inputs read once, outputs written "
             "once), the same byte count for both; fastnn/copy = fastnn GB/s over the measured "
             f"copy bandwidth (issue 5 target >= {_gpu.COPY_TARGET}); softmax xent and global "
             "norm return a Python float in fastnn (a device-to-host read and a sync per call)"]
    print()
    print(notes[0])
    table = Table(MEM_COLUMNS)
    table.header()
    rows = []
    for n in sizes:
        for name, build in MEM_CASES:
            label = _size_label(n, name)
            if _gpu.out_of_time(15):
                nbytes, m = 0.0, {"fastnn_ms": None, "fastnn_call_ms": None, "torch_ms": None,
                                  "torch_call_ms": None, "err": None, "tol": None,
                                  "fastnn_error": "n/a (time budget spent)", "torch_error": None}
            else:
                nbytes, m = _measure(torch, build, n, timer, stream)
            row = _gpu.mem_row(name, label, nbytes, fastnn_ms=m["fastnn_ms"],
                               fastnn_call_ms=m["fastnn_call_ms"], torch_ms=m["torch_ms"],
                               torch_call_ms=m["torch_call_ms"], copy_gbps=copy_gbps,
                               err=m["err"], tol=m["tol"], fastnn_error=m["fastnn_error"],
                               torch_error=m["torch_error"])
            table.row(row)
            rows.append(row)
            if DEVICE == "cuda":  # each case's memory back before the next one's
                torch.cuda.synchronize()
                fastnn.cuda.synchronize()
                torch.cuda.empty_cache()
                fastnn.cuda.empty_cache()
    md = markdown(MEM_COLUMNS, rows, "Memory-bound kernels vs PyTorch (torch/fastnn > 1: "
                  "fastnn faster)") + "\n" + notes[0] + "\n"
    return rows, md, notes


# ---------------------------------------------------------------- fused MLP (issue 6)
def _fused_mlp_rows(torch, cu, repeats, quick):
    """One training step's forward + backward of a 64-wide 4-layer MLP (relu x3, linear) at
    batch 2^14: every activation, dZ, dW and db (not dX, which no layer needs). fastnn fused: the
    fused forward and backward kernels (2 launches) plus per layer the dW GEMM (X_l^T dZ_l) and
    the column sums for db. Against: PyTorch eager (autograd, layer by layer), torch.compile of
    the same module where it works, and fastnn's own layer-by-layer kernels (GEMM with the
    bias + relu epilogue, GEMM for dX_l, act_backward from the output, dW GEMM, column sums)."""
    rows = []
    M, width, depth = (1 << 12 if quick else 1 << 14), 64, 4
    widths = [width] * (depth + 1)
    acts = ["relu"] * (depth - 1) + [None]
    params = [0.0] * depth
    stream = torch.cuda.current_stream().cuda_stream
    dev = dict(device="cuda", dtype=torch.float32)
    X = torch.randn(M, width, **dev)
    dY = torch.randn(M, width, **dev) / M
    Ws = [torch.randn(width, width, **dev) / width ** 0.5 for _ in range(depth)]
    bs = [0.1 * torch.randn(width, **dev) for _ in range(depth)]
    outs = [torch.empty(M, width, **dev) for _ in range(depth)]
    dzs = [torch.empty(M, width, **dev) for _ in range(depth)]
    tmp = torch.empty(M, width, **dev)
    dWs = [torch.empty(width, width, **dev) for _ in range(depth)]
    dbs = [torch.empty(width, **dev) for _ in range(depth)]
    ws_bytes = int(cu.column_sums_workspace_bytes(M, width))
    workspace = torch.empty(max(ws_bytes, 4) // 4 + 1, **dev)
    ptr = lambda ts: [t.data_ptr() for t in ts]  # noqa: E731
    # Useful FLOPs: forward 2 M w^2 per layer, backward dW per layer and dX for layers 1..3.
    flops = 2.0 * M * width * width * (depth + depth + depth - 1)

    # dW_l = X_l^T dZ_l is a 64x64 result summed over 2^14 rows: one output tile, so a GEMM without
    # split-K runs it on one block. cuda::dense_backward (dense-backward branch) splits such sums
    # over blocks deterministically; with no gate and no dX it is exactly dW and db. Used when the
    # module has it (FP32 arithmetic), else gemm_device + sum_rows.
    dense_bwd = getattr(cu, "dense_backward", None)
    dense_ws = None
    if dense_bwd is not None:
        try:
            nbytes = int(cu.dense_backward_workspace_bytes(M, width, width))
            dense_ws = (torch.empty(nbytes // 4 + 64, **dev), nbytes)
        except TypeError:
            dense_bwd = None

    def weight_grads(variant):
        for l in range(depth):
            inp = X if l == 0 else outs[l - 1]
            if dense_bwd is not None:
                dense_bwd(dzs[l].data_ptr(), inp.data_ptr(), Ws[l].data_ptr(), 0, "none", 0.0,
                          False, dWs[l].data_ptr(), dbs[l].data_ptr(), 0, M, width, width, width,
                          width, width, width, width, False, dense_ws[0].data_ptr(), dense_ws[1],
                          stream)
                continue
            # dW_l (in, out) = inp^T (in, M) @ dZ_l (M, out)
            cu.gemm_device(inp.data_ptr(), dzs[l].data_ptr(), dWs[l].data_ptr(), width, width, M,
                           width, width, width, trans_a=True, stream=stream, variant=variant)
            cu.sum_rows_device(dzs[l].data_ptr(), M, width, dbs[l].data_ptr(), False,
                               workspace.data_ptr(), ws_bytes, stream)

    def fused_step(precision, variant):
        cu.fused_mlp_forward_device(X.data_ptr(), M, widths, ptr(Ws), ptr(bs), acts, params,
                                    ptr(outs), precision, stream)
        cu.fused_mlp_backward_device(M, widths, ptr(Ws), acts, params, ptr(outs), dY.data_ptr(),
                                     ptr(dzs), 0, precision, stream)
        weight_grads(variant)

    def layered_step(variant):
        h = X
        for l in range(depth):
            cu.gemm_device(h.data_ptr(), Ws[l].data_ptr(), outs[l].data_ptr(), M, width, width,
                           width, width, width, bias=bs[l].data_ptr(),
                           activation=acts[l] or "none", stream=stream, variant=variant)
            h = outs[l]
        dzs[-1].copy_(dY)  # linear last layer: dZ = dY
        for l in range(depth - 1, 0, -1):
            # dX_l (M, in) = dZ_l @ W_l^T, then dZ_{l-1} = dX_l * relu'(out_{l-1})
            cu.gemm_device(dzs[l].data_ptr(), Ws[l].data_ptr(), tmp.data_ptr(), M, width, width,
                           width, width, width, trans_b=True, stream=stream, variant=variant)
            cu.act_backward_device("relu", 0.0, tmp.data_ptr(), outs[l - 1].data_ptr(),
                                   dzs[l - 1].data_ptr(), M * width, stream, True)
        weight_grads(variant)

    model = torch.nn.Sequential(*[m for l in range(depth) for m in
                                  ([torch.nn.Linear(width, width)] +
                                   ([torch.nn.ReLU()] if acts[l] else []))]).cuda()
    with torch.no_grad():
        lin = [m for m in model if isinstance(m, torch.nn.Linear)]
        for m, w, b in zip(lin, Ws, bs):
            m.weight.copy_(w.T)
            m.bias.copy_(b)

    def torch_step(net, autocast=False):
        for q in model.parameters():
            q.grad = None
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            out = net(X)
        out.float().backward(dY)

    compiled, compile_note = None, None
    try:
        compiled = torch.compile(model)
        torch_step(compiled)
    except Exception as exc:  # no Triton, no compiler: report, keep going
        compiled, compile_note = None, f"torch.compile unavailable: {type(exc).__name__}"

    for precision in ("fp32", "tf32", "bf16"):
        variant = {"fp32": "auto", "tf32": "tf32", "bf16": "bf16"}[precision]
        try:
            weight_grads(variant)
        except ValueError:  # the BF16 GEMM is not built yet: the dW GEMMs fall back
            variant = "tf32"
        torch.backends.cuda.matmul.allow_tf32 = precision != "fp32"
        ours = _gpu_timer(torch, lambda: fused_step(precision, variant), repeats)
        # The two fused launches alone (no dW GEMMs, no column sums).
        kernels = _gpu_timer(torch, lambda: (
            cu.fused_mlp_forward_device(X.data_ptr(), M, widths, ptr(Ws), ptr(bs), acts, params,
                                        ptr(outs), precision, stream),
            cu.fused_mlp_backward_device(M, widths, ptr(Ws), acts, params, ptr(outs),
                                         dY.data_ptr(), ptr(dzs), 0, precision, stream)), repeats)
        # Check against PyTorch: activations and weight gradients of the same step.
        torch_step(model, autocast=precision == "bf16")
        ref_out = model(X)
        err = float((outs[-1] - ref_out).abs().max() / ref_out.abs().max())
        ref_dw = lin[0].weight.grad.T
        err = max(err, float((dWs[0] - ref_dw).abs().max() / ref_dw.abs().max()))
        layered = _gpu_timer(torch, lambda: layered_step(variant), repeats)
        eager = _gpu_timer(torch, lambda: torch_step(model, precision == "bf16"), repeats)
        row = {"shape": f"fused MLP {width}x{depth} {precision} 2^{M.bit_length() - 1}",
               "fastnn_ms": ours, "torch_ms": eager, "layered_ms": layered,
               "fused_kernels_ms": kernels,
               "fastnn_tflops": flops / ours / 1e9, "torch_tflops": flops / eager / 1e9,
               "ratio": eager / ours, "max_rel_err": err,
               "ok": err < {"fp32": 1e-4, "tf32": 1e-2, "bf16": 5e-2}[precision]}
        if compiled is not None:
            row["compiled_ms"] = _gpu_timer(torch, lambda: torch_step(compiled,
                                                                       precision == "bf16"),
                                            repeats)
            row["ratio_compiled"] = row["compiled_ms"] / ours
        rows.append(row)
        print(f"  {row['shape']}: fused step {ours:.3f} ms (the 2 fused launches {kernels:.3f} "
              f"ms), fastnn layer-by-layer {layered:.3f} ms, "
              f"torch eager {eager:.3f} ms" +
              (f", torch.compile {row['compiled_ms']:.3f} ms" if compiled is not None else "") +
              f", max rel err {err:.2g}")
    torch.backends.cuda.matmul.allow_tf32 = False
    if compile_note:
        print(f"  {compile_note}")
    print("  dW and db: " + ("cuda dense_backward (split-K, FP32)" if dense_bwd is not None else
                             "gemm_device + sum_rows (no split-K: one block per 64x64 dW)"))
    return rows


def run(ctx: Context) -> dict:
    torch, why = _why_not()
    if torch is None:
        print(why)
        return {"rows": [], "notes": [why], "markdown": why + "\n"}

    timer = _gpu.GPU_QUICK if ctx.quick else _gpu.GPU_FULL
    repeats = 5 if ctx.quick else 20
    notes = [f"device: {_gpu.device_name(torch, DEVICE)}; times are CUDA-event medians of "
             f"{repeats} calls after warm-up; TF32 off for the FP32 comparison"]
    print(notes[0])
    md = []
    rows, ceil_md = _ceilings(torch, timer, ctx.quick)
    md.append(ceil_md)
    copy_gbps = rows[0].get("value")
    # The memory-bound section runs before the GEMMs: a GEMM that fails cannot take its rows along.
    mem_rows, mem_md, mem_notes = _memory_bound(torch, timer, ctx.quick, copy_gbps)
    rows += mem_rows
    md.append(mem_md)
    notes += mem_notes
    gemm_cols = [Column("shape", "kernel", width=28), Column("fastnn_ms", "fastnn ms", ".3f"),
                 Column("torch_ms", "torch ms", ".3f"),
                 Column("fastnn_tflops", "fastnn TFLOP/s", ".1f"),
                 Column("torch_tflops", "torch TFLOP/s", ".1f"),
                 Column("ratio", "torch/fastnn", ".2f")]
    print()
    table = Table(gemm_cols)
    table.header()
    gemm = []
    # Each section's failure is recorded as a failed row; the rest of the suite still reports.
    def cuda_module():
        import importlib
        return importlib.import_module("fastnn._cuda")

    sections = (("GEMM", lambda: _gemm_rows(torch, cuda_module(), repeats, ctx.quick)),
                ("BF16 GEMM", lambda: _bf16_rows(torch, cuda_module(), repeats, ctx.quick)),
                ("dense backward",
                 lambda: _dense_backward_rows(torch, cuda_module(), repeats, ctx.quick)),
                ("sampled softmax", lambda: _sampled_rows(torch, repeats, ctx.quick)),
                ("fused MLP", lambda: _fused_mlp_rows(torch, cuda_module(), repeats, ctx.quick)))
    for name, section in sections:
        try:
            for row in section():
                table.row(row)
                gemm.append(row)
        except Exception as exc:
            gemm.append({"shape": f"{name} rows: {_gpu.error_text(exc)}", "ok": False})
            table.row(gemm[-1])
    rows += gemm
    md.append(markdown(gemm_cols, gemm, "GEMM and friends (torch/fastnn > 1: fastnn faster)"))
    for row in rows:
        row.setdefault("threads", 0)
        row.setdefault("ok", True)
    return {"rows": rows, "notes": notes,
            "markdown": f"Device: {_gpu.device_name(torch, DEVICE)}, PyTorch {torch.__version__}.\n\n"
                        + "\n".join(md)}


