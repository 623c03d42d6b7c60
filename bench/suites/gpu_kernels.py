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
            return lambda: cu.dense_backward(
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


def _copy_row(torch, repeats, quick):
    n = (1 << 24) if quick else (1 << 26)
    x = torch.randn(n, device="cuda")
    y = torch.empty_like(x)
    ms = _gpu_timer(torch, lambda: y.copy_(x), repeats)
    return {"shape": f"device copy {4 * n >> 20} MiB", "torch_ms": ms,
            "gbps": 2 * 4 * n / ms / 1e6, "ok": True}


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
    for row in _dense_backward_rows(torch, cu, repeats, ctx.quick):
        table.row(row)
        rows.append(row)
    for row in rows:
        row.setdefault("threads", 0)
    return {"rows": rows, "notes": notes}
