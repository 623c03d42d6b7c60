"""GPU kernels against PyTorch on the same GPU, in the same run (issue 5): the device's copy
bandwidth and cuBLAS as ceilings, our FP32 GEMM against `torch.matmul` with TF32 off, the fused
bias + ReLU GEMM against `addmm` + `relu_`, and each memory-bound kernel the CUDA module offers
against its PyTorch counterpart. Needs a CUDA GPU, PyTorch with CUDA and fastnn built with CUDA;
otherwise it says why and records nothing."""

from __future__ import annotations

from bench.suites._common import Context
from bench.table import Column, Table

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
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, "no CUDA GPU visible to PyTorch"
    import fastnn

    if not fastnn.cuda.is_available():
        return None, "fastnn was built without CUDA or sees no GPU"
    return torch, None


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
        ours32 = _gpu_timer(torch, lambda: cu.gemm_device_tf32(
            a.data_ptr(), b.data_ptr(), c.data_ptr(), m, n, k, k, n, n, stream=stream), repeats)
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


def _copy_row(torch, repeats, quick):
    n = (1 << 24) if quick else (1 << 26)
    x = torch.randn(n, device="cuda")
    y = torch.empty_like(x)
    ms = _gpu_timer(torch, lambda: y.copy_(x), repeats)
    return {"shape": f"device copy {4 * n >> 20} MiB", "torch_ms": ms,
            "gbps": 2 * 4 * n / ms / 1e6, "ok": True}


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
            cu.sum_rows("float32", dzs[l].data_ptr(), M, width, dbs[l].data_ptr(), False,
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
            cu.act_backward("relu", 0.0, tmp.data_ptr(), outs[l - 1].data_ptr(),
                            dzs[l - 1].data_ptr(), M * width, "float32", stream, True)
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
        print(f"skipped: {why}")
        return {"rows": [], "notes": [f"skipped: {why}"]}
    from fastnn import _cuda as cu

    repeats = 5 if ctx.quick else 20
    notes = [f"device: {torch.cuda.get_device_name()}; times are CUDA-event medians of "
             f"{repeats} calls after warm-up; TF32 off for the FP32 comparison"]
    print(notes[0])
    rows = [_copy_row(torch, repeats, ctx.quick)]
    print(f"copy bandwidth: {rows[0]['gbps']:.0f} GB/s (the ceiling for memory-bound kernels)")
    table = Table([Column("shape", "kernel", width=28), Column("fastnn_ms", "fastnn ms", ".3f"),
                   Column("torch_ms", "torch ms", ".3f"),
                   Column("fastnn_tflops", "fastnn TFLOP/s", ".1f"),
                   Column("torch_tflops", "torch TFLOP/s", ".1f"),
                   Column("ratio", "torch/fastnn", ".2f")])
    table.header()
    for row in _gemm_rows(torch, cu, repeats, ctx.quick):
        table.row(row)
        rows.append(row)
    for row in _fused_mlp_rows(torch, cu, repeats, ctx.quick):
        table.row(row)
        rows.append(row)
    for row in rows:
        row.setdefault("threads", 0)
    return {"rows": rows, "notes": notes}
