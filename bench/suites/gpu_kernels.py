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
        ours = _gpu_timer(torch, lambda: cu.gemm_device_bf16(
            a.data_ptr(), b.data_ptr(), c.data_ptr(), m, n, k, k, n, n, stream=stream), repeats)
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
        ours = _gpu_timer(torch, lambda: cu.gemm_device_bf16(
            x.data_ptr(), w.data_ptr(), y.data_ptr(), m, n, k, k, n, n, bias=bias.data_ptr(),
            activation="relu", stream=stream), repeats)
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
    for row in _bf16_rows(torch, cu, repeats, ctx.quick):
        table.row(row)
        rows.append(row)
    for row in rows:
        row.setdefault("threads", 0)
    return {"rows": rows, "notes": notes}
