"""Pieces shared by the GPU suites (gpu-kernels, gpu-train): whether they can run, timing with
CUDA events on the stream the work goes to, a time budget, and the derived numbers (GB/s,
ratios, fractions of the copy bandwidth, samples/s, the issues' targets). The arithmetic takes
plain numbers, so tests feed it fake timings; nothing here needs a GPU to import."""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass

# Every GPU suite prints this (then the reason) and records nothing when it cannot run.
SKIP = "skipped: no CUDA device"

# gpu_check.sh sets this (seconds since the epoch) so that a suite stops measuring in time to
# print and write its tables before the phase's timeout kills it.
DEADLINE_ENV = "FASTNN_BENCH_DEADLINE"

# The issue-5 target for memory-bound kernels: this fraction of the measured copy bandwidth.
COPY_TARGET = 0.8


def why_not() -> tuple[object | None, str | None]:
    """(torch, None) when PyTorch and fastnn both see a CUDA device, else (None, the reason)."""
    import fastnn

    try:
        import torch
    except ImportError:
        torch = None
    torch_gpu = torch is not None and torch.cuda.is_available()
    fastnn_gpu = fastnn.cuda.is_available()
    if torch_gpu and fastnn_gpu:
        return torch, None
    if torch is None:
        peer = "PyTorch is not installed"
    else:
        peer = f"PyTorch {torch.__version__} {'sees one' if torch_gpu else 'sees none'}"
    if fastnn_gpu:
        ours = "fastnn sees one"
    elif fastnn.cuda.is_compiled():
        ours = "fastnn sees none"
    else:
        ours = "fastnn was built without CUDA"
    if torch_gpu or fastnn_gpu:  # one of the two has a GPU: say what the other lacks
        return None, f"skipped: both PyTorch (with CUDA) and fastnn need a CUDA device ({peer}; {ours})"
    return None, f"{SKIP} ({peer}; {ours})"


# ------------------------------------------------------------------------- time budget
def seconds_left(now: float | None = None) -> float:
    """Seconds until the deadline gpu_check.sh gave (inf without one)."""
    raw = os.environ.get(DEADLINE_ENV)
    if not raw:
        return math.inf
    try:
        deadline = float(raw)
    except ValueError:
        return math.inf
    return deadline - (time.time() if now is None else now)


def out_of_time(need_s: float = 0.0) -> bool:
    """True when less than ``need_s`` seconds are left before the deadline."""
    return seconds_left() < need_s


# ------------------------------------------------------------------------- timing
@dataclass(frozen=True)
class GpuTimer:
    warmup: int = 3      # calls before the first sample (allocator, lazy module loads, clocks)
    repeats: int = 15    # samples; the median is reported
    loop: int = 20       # calls per sample in "loop" mode (one pair of events around them)


GPU_FULL = GpuTimer()
GPU_QUICK = GpuTimer(warmup=1, repeats=3, loop=5)


def event_ms(torch, fn, stream=None, calls: int = 1, repeats: int = 15, warmup: int = 3) -> float:
    """Median milliseconds per call of ``fn``: ``calls`` calls between two CUDA events recorded
    on ``stream`` (the stream ``fn``'s kernels go to: torch's current one by default; fastnn's
    own for fastnn ops), ``repeats`` samples after ``warmup`` calls.

    calls=1 times what a caller waits for one call (Python and launch overhead + kernels: the
    GPU idles between the start event and the first launch). calls=20 lets the host run ahead
    of the GPU, so when a kernel outlasts the host's per-call overhead the per-call figure is
    the kernel time; when it does not, it is that overhead."""
    if stream is None:
        stream = torch.cuda.current_stream()
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record(stream)
        for _ in range(calls):
            fn()
        end.record(stream)
        end.synchronize()
        samples.append(start.elapsed_time(end) / calls)
    return statistics.median(samples)


def device_name(torch, device: str = "cuda") -> str:
    """The GPU's name ("cpu" when a test runs a suite on the host)."""
    return torch.cuda.get_device_name() if device == "cuda" else device


def fastnn_stream(torch, device: int = 0):
    """fastnn's stream on ``device`` as a torch stream object, for recording events on it."""
    import fastnn

    return torch.cuda.ExternalStream(fastnn.cuda.current_stream(device))


def error_text(exc: BaseException, limit: int = 120) -> str:
    """``n/a (Type: message)`` on one line, short enough for a table note."""
    msg = " ".join(str(exc).split())
    if len(msg) > limit:
        msg = msg[:limit - 3] + "..."
    return f"n/a ({type(exc).__name__}: {msg})" if msg else f"n/a ({type(exc).__name__})"


# ------------------------------------------------------------------------- derived numbers
def gbps(nbytes: float, ms: float | None) -> float | None:
    """GB/s (1e9 bytes) moving ``nbytes`` in ``ms`` milliseconds."""
    if ms is None or ms <= 0:
        return None
    return nbytes / ms / 1e6


def tflops(flops: float, ms: float | None) -> float | None:
    if ms is None or ms <= 0:
        return None
    return flops / ms / 1e9


def ratio(num: float | None, den: float | None) -> float | None:
    """num / den, or None when either is missing (a failed or skipped measurement)."""
    if not isinstance(num, (int, float)) or not isinstance(den, (int, float)) or den <= 0:
        return None
    return num / den


def mem_row(kernel: str, size: str, nbytes: float, *, fastnn_ms: float | None,
            fastnn_call_ms: float | None, torch_ms: float | None, torch_call_ms: float | None,
            copy_gbps: float | None, err: float | None = None, tol: float | None = None,
            fastnn_error: str | None = None, torch_error: str | None = None) -> dict:
    """One memory-bound kernel at one size.

    ``*_ms``: per-call medians in loop mode (the kernel-time view); ``*_call_ms``: one call per
    pair of events (what a synchronous caller waits). ``nbytes``: the least traffic the
    operation needs (each input read once, each output written once), the same count for both
    libraries. ``err``: fastnn's error against the reference (relative to the reference's
    largest magnitude); the row is bad above ``tol``. ``*_error``: "n/a (...)" when that side
    could not be measured; fastnn failing is a bad row, running out of time budget is not."""
    fast_gbps = gbps(nbytes, fastnn_ms)
    torch_gbps = gbps(nbytes, torch_ms)
    copy_frac = ratio(fast_gbps, copy_gbps)
    budget = fastnn_error is not None and fastnn_error.startswith("n/a (time budget")
    bad_err = err is not None and tol is not None and not err <= tol  # NaN is bad too
    if fastnn_error:
        check = fastnn_error if budget else f"fastnn {fastnn_error}"
    elif bad_err:
        check = f"BAD err={err:.1e}"
    elif torch_error:
        check = f"torch {torch_error}"
    else:
        check = ""
    return {
        "shape": f"{kernel} {size}",
        "kernel": kernel,
        "size": size,
        "bytes": nbytes,
        "fastnn_ms": fastnn_ms,
        "fastnn_call_ms": fastnn_call_ms,
        "torch_ms": torch_ms,
        "torch_call_ms": torch_call_ms,
        "fastnn_gbps": fast_gbps,
        "torch_gbps": torch_gbps,
        "ratio": ratio(torch_ms, fastnn_ms),          # > 1: fastnn faster
        "copy_frac": copy_frac,
        "torch_copy_frac": ratio(torch_gbps, copy_gbps),
        "target": None if copy_frac is None else ("yes" if copy_frac >= COPY_TARGET else "no"),
        "max_rel_err": err,
        "tol": tol,
        "check": check,
        "threads": 0,
        "ok": budget or (fastnn_error is None and not bad_err),
    }


def samples_per_s(samples: int, seconds: float | None) -> float | None:
    if seconds is None or seconds <= 0:
        return None
    return samples / seconds


# Issue 6's targets, per (network, batch): (peer column, least ratio). "best" is the fastest
# PyTorch variant that ran (the same precision).
TRAIN_TARGETS = {
    ("784-256-256-10", 128): (("eager", 3.0), ("compiled", 1.5)),
    ("64-64-64-64-16", 16384): (("compiled", 2.0),),
    ("784-4096-4096-10", 4096): (("best", 0.9),),
}

TORCH_VARIANTS = ("eager", "compiled", "fused")


def train_row(network: str, batch: int, precision: str, samples: dict) -> dict:
    """Ratios and targets for one (network, batch, precision) from samples/s per variant:
    ``samples`` maps "fastnn", "fastnn_numpy", "eager", "compiled", "fused" to a number, or to
    an "n/a (...)" string when that variant could not run."""
    row = {"shape": f"{network} b{batch} {precision}", "network": network, "batch": batch,
           "precision": precision, "threads": 0, "ok": True}
    notes = []
    for key in ("fastnn", "fastnn_numpy") + TORCH_VARIANTS:
        value = samples.get(key)
        if isinstance(value, str):
            notes.append(f"{key}: {value}")
            row[key] = "n/a"
        else:
            row[key] = value
    fast = row["fastnn"] if not isinstance(row["fastnn"], str) else None
    for peer in TORCH_VARIANTS:
        row[f"vs_{peer}"] = ratio(fast, row[peer] if not isinstance(row[peer], str) else None)
    numbers = [row[p] for p in TORCH_VARIANTS if isinstance(row[p], (int, float))]
    row["best_torch"] = max(numbers) if numbers else None
    row["vs_best"] = ratio(fast, row["best_torch"])
    verdicts = []
    for peer, least in TRAIN_TARGETS.get((network, batch), ()):
        r = row[f"vs_{peer}"]
        if r is None:
            verdicts.append(f">={least:g}x {peer}: n/a")
        else:
            verdicts.append(f">={least:g}x {peer}: {'yes' if r >= least else 'no'}")
    row["target"] = "; ".join(verdicts) if verdicts else None
    row["notes"] = notes
    if isinstance(samples.get("fastnn"), str) and not samples["fastnn"].startswith("n/a (time budget"):
        row["ok"] = False
    return row
