"""The GPU bench suites (bench/suites/gpu_kernels.py, gpu_train.py, _gpu.py) and
bench/gpu_check.sh, without a GPU: the suites import and skip cleanly, the arithmetic behind
their tables (GB/s, ratios, fractions of the copy bandwidth, samples/s, the issues' targets) is
right on fake timings, the timer divides and takes medians as it says, and the cases and
training loops run on the host (torch CPU tensors, fastnn on NumPy views of them), which checks
their set-up and that each fastnn op means what its PyTorch counterpart means. The speed itself
needs an H100: bash bench/gpu_check.sh."""

import math
import os
import pathlib
import re
import subprocess
import sys

import pytest


ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ lives in the source tree, next to tests/
    sys.path.insert(0, str(ROOT))

from bench.run import SUITES  # noqa: E402
from bench.suites import _gpu, gpu_kernels, gpu_train  # noqa: E402
from bench.suites._common import Context  # noqa: E402
from bench.table import Column, markdown  # noqa: E402
from bench.timing import QUICK  # noqa: E402



def _torch_sees_gpu():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _torch():
    return pytest.importorskip("torch")


# ============================================================== registration and skipping
def test_suites_registered():
    assert SUITES["gpu-kernels"] is gpu_kernels
    assert SUITES["gpu-train"] is gpu_train
    for mod in (gpu_kernels, gpu_train):
        assert "needs a GPU" in mod.DESCRIPTION


def test_why_not_without_gpu():
    torch, why = _gpu.why_not()
    if torch is not None:
        pytest.skip("checks the no-GPU path; PyTorch and fastnn both see a GPU here")
    # Neither sees one ("no CUDA device"), or one of them does (FASTNN_CUDA_STANDIN=1 makes
    # fastnn see a stand-in device once tests/test_ops_gpu.py has installed it).
    assert why.startswith(_gpu.SKIP + " (") or why.startswith("skipped: both PyTorch"), why


@pytest.mark.skipif(_torch_sees_gpu(), reason="PyTorch sees a GPU: the suites would run, not skip")
def test_cli_skips_without_gpu(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "bench", "gpu-kernels", "gpu-train", "--json",
         str(tmp_path / "gpu.json"), "--markdown", str(tmp_path / "gpu.md")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    # fastnn's own GPU (or none) decides between the two messages; both skip and exit 0.
    skips = ("skipped: no CUDA device (", "skipped: both PyTorch (with CUDA) and fastnn")
    assert sum(out.stdout.count(s) for s in skips) == 2, out.stdout
    md = (tmp_path / "gpu.md").read_text()
    assert "## `gpu-kernels`" in md and "## `gpu-train`" in md
    assert sum(md.count(s) for s in skips) == 2
    assert (tmp_path / "gpu.json").exists()


# ============================================================== the arithmetic, fake timings
def test_mem_row_numbers():
    n = 1 << 24
    row = _gpu.mem_row("relu", "16M", 8.0 * n, fastnn_ms=0.05, fastnn_call_ms=0.07,
                       torch_ms=0.06, torch_call_ms=0.08, copy_gbps=3000.0, err=0.0, tol=1e-5)
    assert row["fastnn_gbps"] == pytest.approx(8.0 * n / 0.05e-3 / 1e9)
    assert row["torch_gbps"] == pytest.approx(8.0 * n / 0.06e-3 / 1e9)
    assert row["ratio"] == pytest.approx(1.2)          # torch time / fastnn time
    assert row["copy_frac"] == pytest.approx(row["fastnn_gbps"] / 3000.0)
    assert row["torch_copy_frac"] == pytest.approx(row["torch_gbps"] / 3000.0)
    assert row["target"] == "yes" and row["ok"] and row["check"] == ""
    assert row["shape"] == "relu 16M" and row["threads"] == 0
    slow = _gpu.mem_row("relu", "16M", 8.0 * n, fastnn_ms=0.2, fastnn_call_ms=None,
                        torch_ms=0.06, torch_call_ms=None, copy_gbps=3000.0)
    assert slow["target"] == "no" and slow["ok"]
    assert slow["ratio"] == pytest.approx(0.3)


def test_mem_row_failures():
    kw = dict(fastnn_call_ms=None, torch_ms=0.1, torch_call_ms=None, copy_gbps=3000.0)
    bad = _gpu.mem_row("gelu", "16M", 1e8, fastnn_ms=0.1, err=1e-2, tol=1e-5, **kw)
    assert not bad["ok"] and bad["check"].startswith("BAD err=")
    nan = _gpu.mem_row("gelu", "16M", 1e8, fastnn_ms=0.1, err=math.nan, tol=1e-5, **kw)
    assert not nan["ok"]
    failed = _gpu.mem_row("gelu", "16M", 1e8, fastnn_ms=None,
                          fastnn_error="n/a (RuntimeError: boom)", **kw)
    assert not failed["ok"] and failed["check"] == "fastnn n/a (RuntimeError: boom)"
    assert failed["fastnn_gbps"] is None and failed["ratio"] is None
    assert failed["copy_frac"] is None and failed["target"] is None
    budget = _gpu.mem_row("gelu", "16M", 0.0, fastnn_ms=None,
                          fastnn_error="n/a (time budget spent)", **kw)
    assert budget["ok"]
    no_torch = _gpu.mem_row("gelu", "16M", 1e8, fastnn_ms=0.1, err=0.0, tol=1e-5,
                            torch_error="n/a (AttributeError: x)",
                            **{**kw, "torch_ms": None})
    assert no_torch["ok"] and no_torch["ratio"] is None and no_torch["copy_frac"] is not None
    assert no_torch["check"].startswith("torch n/a")


def test_derived_helpers():
    assert _gpu.gbps(3e9, 1.0) == pytest.approx(3000.0)
    assert _gpu.gbps(1.0, None) is None and _gpu.gbps(1.0, 0.0) is None
    assert _gpu.tflops(2.0 * 4096 ** 3, 2.75) == pytest.approx(2.0 * 4096 ** 3 / 2.75e-3 / 1e12)
    assert _gpu.ratio(3.0, 2.0) == 1.5
    assert _gpu.ratio(None, 2.0) is None and _gpu.ratio(3.0, "n/a") is None
    assert _gpu.samples_per_s(1000, 0.5) == 2000.0
    assert _gpu.samples_per_s(1000, None) is None
    assert _gpu.error_text(ValueError("a\n  b")) == "n/a (ValueError: a b)"
    assert _gpu.error_text(RuntimeError()) == "n/a (RuntimeError)"
    assert len(_gpu.error_text(RuntimeError("x" * 500))) < 160


def test_train_row_ratios_and_targets():
    row = _gpu.train_row("784-256-256-10", 128, "fp32",
                         {"fastnn": 4e6, "fastnn_numpy": 3e6, "eager": 1e6, "compiled": 3e6,
                          "fused": 1.2e6})
    assert row["vs_eager"] == pytest.approx(4.0)
    assert row["vs_compiled"] == pytest.approx(4 / 3)
    assert row["vs_fused"] == pytest.approx(4 / 1.2)
    assert row["best_torch"] == 3e6 and row["vs_best"] == pytest.approx(4 / 3)
    assert row["target"] == ">=3x eager: yes; >=1.5x compiled: no"
    assert row["ok"] and row["notes"] == []

    na = _gpu.train_row("64-64-64-64-16", 16384, "bf16",
                        {"fastnn": 2e7, "fastnn_numpy": 1e7, "eager": 2e6,
                         "compiled": "n/a (RuntimeError: no triton)", "fused": 4e6})
    assert na["compiled"] == "n/a" and na["vs_compiled"] is None
    assert na["target"] == ">=2x compiled: n/a"
    assert na["notes"] == ["compiled: n/a (RuntimeError: no triton)"]
    assert na["best_torch"] == 4e6 and na["ok"]

    broken = _gpu.train_row("784-4096-4096-10", 4096, "tf32",
                            {"fastnn": "n/a (NotImplementedError: later)", "eager": 1e5,
                             "compiled": 1.1e5, "fused": 1.05e5, "fastnn_numpy": "n/a (x)"})
    assert not broken["ok"] and broken["vs_eager"] is None
    assert broken["target"] == ">=0.9x best: n/a"
    short = _gpu.train_row("784-256-256-10", 4096, "fp32",
                           {v: "n/a (time budget spent)" for v in ("fastnn", "fastnn_numpy")}
                           | {"eager": 1.0, "compiled": 1.0, "fused": 1.0})
    assert short["ok"] and short["target"] is None  # no target for this shape
    far = _gpu.train_row("784-4096-4096-10", 4096, "fp32",
                         {"fastnn": 95.0, "fastnn_numpy": 90.0, "eager": 100.0,
                          "compiled": 105.0, "fused": 101.0})
    assert far["vs_best"] == pytest.approx(95 / 105)
    assert far["target"] == ">=0.9x best: yes"


def test_markdown_table():
    cols = [Column("shape", "kernel"), Column("ms", "ms", ".3f"), Column("note", "note")]
    text = markdown(cols, [{"shape": "a|b", "ms": 1.23456, "note": "x"},
                           {"shape": "c", "ms": "n/a"}], "T")
    lines = text.splitlines()
    assert lines[0] == "### T" and lines[1] == ""
    assert lines[2] == "| kernel | ms | note |"
    assert lines[3] == "| --- | ---: | ---: |"
    assert lines[4] == "| a\\|b | 1.235 | x |"
    assert lines[5] == "| c | n/a | - |"      # strings pass a numeric format, None is "-"


# ============================================================== timer and budget
class _FakeCuda:
    """torch.cuda's Event / synchronize / current_stream on a fake clock that each call of
    the timed function advances by the next scripted duration (ms)."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.clock = 0.0
        self.calls = 0
        self.syncs = 0
        outer = self

        class Event:
            def __init__(self, enable_timing=False):
                assert enable_timing
                self.t = None

            def record(self, stream=None):
                assert stream == "stream"
                self.t = outer.clock

            def synchronize(self):
                pass

            def elapsed_time(self, end):
                return end.t - self.t

        self.Event = Event

    def synchronize(self):
        self.syncs += 1

    def current_stream(self):
        return "stream"

    def fn(self):
        self.calls += 1
        self.clock += self.durations.pop(0) if self.durations else 1.0


def test_event_ms_loop_and_median():
    class T:
        pass

    t = T()
    # 2 warm-up calls, then 3 samples of 4 calls: per-call means 1, 3, 2 -> median 2.
    t.cuda = _FakeCuda([100.0, 100.0] + [1.0] * 4 + [3.0] * 4 + [2.0] * 4)
    ms = _gpu.event_ms(t, t.cuda.fn, calls=4, repeats=3, warmup=2)
    assert ms == pytest.approx(2.0)
    assert t.cuda.calls == 2 + 12 and t.cuda.syncs == 1
    t.cuda = _FakeCuda([5.0, 1.0, 9.0, 2.0])
    assert _gpu.event_ms(t, t.cuda.fn, stream="stream", calls=1, repeats=3, warmup=1) == 2.0


def test_budget(monkeypatch):
    monkeypatch.delenv(_gpu.DEADLINE_ENV, raising=False)
    assert _gpu.seconds_left() == math.inf and not _gpu.out_of_time(1e9)
    monkeypatch.setenv(_gpu.DEADLINE_ENV, "1000")
    assert _gpu.seconds_left(now=990.0) == pytest.approx(10.0)
    assert _gpu.out_of_time(15)
    monkeypatch.setenv(_gpu.DEADLINE_ENV, "not a number")
    assert _gpu.seconds_left() == math.inf


# ============================================================== the cases, on the host
SMALL = 1 << 13   # 8192 elements: 8 softmax rows of 1024, 2 batch-norm rows of 4096


@pytest.fixture
def host_kernels(monkeypatch):
    torch = _torch()
    monkeypatch.setattr(gpu_kernels, "DEVICE", "cpu")
    return torch


@pytest.mark.parametrize("name", [name for name, _ in gpu_kernels.MEM_CASES])
def test_mem_case_semantics(host_kernels, name):
    """Each case's fastnn op agrees with its PyTorch counterpart (what the GPU run checks
    before timing), and both timed callables run."""
    torch = host_kernels
    torch.manual_seed(0)
    build = dict(gpu_kernels.MEM_CASES)[name]
    case = build(torch, SMALL)
    assert case.nbytes >= 4 * SMALL
    err = case.check()
    assert err <= case.tol, (name, err)
    case.fast()
    case.ref()


def test_memory_section_with_fake_timer(host_kernels, monkeypatch, capsys):
    torch = host_kernels
    monkeypatch.delenv(_gpu.DEADLINE_ENV, raising=False)
    monkeypatch.setattr(gpu_kernels, "MEM_SIZES_QUICK", (SMALL,))
    seen = []

    def fake_event_ms(torch_, fn, stream=None, calls=1, repeats=1, warmup=0):
        fn()
        seen.append(calls)
        return 0.01 if calls > 1 else 0.02

    monkeypatch.setattr(_gpu, "event_ms", fake_event_ms)
    rows, md, notes = gpu_kernels._memory_bound(torch, _gpu.GPU_QUICK, True, copy_gbps=1.0)
    assert [r["kernel"] for r in rows] == [name for name, _ in gpu_kernels.MEM_CASES]
    assert all(r["ok"] for r in rows), [r["check"] for r in rows if not r["ok"]]
    for r in rows:
        assert r["fastnn_ms"] == 0.01 and r["fastnn_call_ms"] == 0.02
        assert r["ratio"] == pytest.approx(1.0)
        assert r["fastnn_gbps"] == pytest.approx(r["bytes"] / 0.01 / 1e6)
    assert {r["size"] for r in rows} == {"8x1024", "2x4096", str(SMALL)}
    assert set(seen) == {1, _gpu.GPU_QUICK.loop}
    assert md.startswith("### Memory-bound kernels") and "| relu " in md
    assert "fastnn/copy" in capsys.readouterr().out


def test_gpu_kernels_run_on_host(host_kernels, monkeypatch):
    """run() end to end on the host with a fake timer: ceilings, the memory-bound section, and
    the GEMM section (which needs a real GPU: it fails here, and is recorded as a failed row
    without losing the others)."""
    torch = host_kernels
    monkeypatch.setattr(gpu_kernels, "MEM_SIZES_QUICK", (SMALL,))
    monkeypatch.setattr(_gpu, "why_not", lambda: (torch, None))
    monkeypatch.setattr(_gpu, "event_ms", lambda torch_, fn, stream=None, calls=1, repeats=1,
                        warmup=0: (fn(), 0.5)[1])
    monkeypatch.delenv(_gpu.DEADLINE_ENV, raising=False)
    result = gpu_kernels.run(Context(quick=True, timer=QUICK, blas=None, ghz=None))
    rows = result["rows"]
    assert rows[0]["shape"].startswith("device-to-device copy")
    assert rows[0]["value"] == pytest.approx(8 * (1 << 24) / 0.5 / 1e6)
    assert [r["shape"].split()[1] for r in rows[1:4]] == ["FP32", "TF32", "BF16"]
    mem = [r for r in rows if "kernel" in r]
    assert len(mem) == len(gpu_kernels.MEM_CASES) and all(r["ok"] for r in mem)
    assert mem[0]["copy_frac"] == pytest.approx(mem[0]["fastnn_gbps"] / rows[0]["value"])
    failed = [r["shape"] for r in rows if not r["ok"]]
    assert any(f.startswith("GEMM rows: n/a") for f in failed), failed
    md = result["markdown"]
    for title in ("### Ceilings", "### Memory-bound kernels", "### GEMM"):
        assert title in md


def test_memory_section_out_of_time(host_kernels, monkeypatch):
    monkeypatch.setenv(_gpu.DEADLINE_ENV, "1")   # long past
    monkeypatch.setattr(gpu_kernels, "MEM_SIZES_QUICK", (SMALL,))
    rows, md, _ = gpu_kernels._memory_bound(host_kernels, _gpu.GPU_QUICK, True, copy_gbps=1.0)
    assert len(rows) == len(gpu_kernels.MEM_CASES)
    assert all(r["ok"] and r["check"] == "n/a (time budget spent)" for r in rows)
    assert "n/a (time budget spent)" in md


def test_failing_case_is_reported(host_kernels, monkeypatch):
    def broken(torch, n):
        raise RuntimeError("kernel launch failed: act_forward_kernel")

    monkeypatch.setattr(gpu_kernels, "MEM_CASES", (("relu", broken),))
    monkeypatch.setattr(gpu_kernels, "MEM_SIZES_QUICK", (SMALL,))
    monkeypatch.delenv(_gpu.DEADLINE_ENV, raising=False)
    rows, _, _ = gpu_kernels._memory_bound(host_kernels, _gpu.GPU_QUICK, True, copy_gbps=1.0)
    assert not rows[0]["ok"] and "act_forward_kernel" in rows[0]["check"]


# ============================================================== training loops, on the host
def test_gpu_train_on_host(monkeypatch):
    """The whole gpu-train run on tiny data on the CPU: PyTorch eager and fused Adam give
    numbers, a failing torch.compile is reported as n/a, fastnn's cells are numbers or n/a with
    the reason (its GPU training API is written in parallel), and the tables come out."""
    torch = _torch()
    monkeypatch.setattr(gpu_train, "DEVICE", "cpu")
    monkeypatch.setattr(gpu_train, "CONFIGS", (
        ("784-256-256-10", (12, 16, 16, 3), 128, "softmax_cross_entropy", 256, 256),
        ("64-64-64-64-16", (8, 8, 8, 8, 4), 32, "mse", 128, 128),
    ))
    monkeypatch.setattr(_gpu, "why_not", lambda: (torch, None))
    monkeypatch.delenv(_gpu.DEADLINE_ENV, raising=False)

    def no_compile(*args, **kwargs):
        raise RuntimeError("torch.compile is not available in this test")

    monkeypatch.setattr(torch, "compile", no_compile)
    ctx = Context(quick=True, timer=QUICK, blas=None, ghz=None)
    result = gpu_train.run(ctx)
    rows = result["rows"]
    assert len(rows) == 2 * len(gpu_train.PRECISIONS)
    for row in rows:
        for v in ("eager", "fused"):
            assert isinstance(row[v], float) and row[v] > 0, (row["shape"], v, row[v])
            assert math.isfinite(row["info"][v]["loss"])
        assert row["compiled"] == "n/a"
        assert any(n.startswith("compiled: n/a (RuntimeError") for n in row["notes"])
        for v in ("fastnn", "fastnn_numpy"):
            assert isinstance(row[v], float) or row[v] == "n/a"
        assert row["epochs"] == gpu_train.EPOCHS_QUICK
    assert rows[0]["precision"] == "fp32" and rows[-1]["precision"] == "bf16"
    assert rows[0]["target"].startswith(">=3x eager")
    md = result["markdown"]
    assert md.startswith("### Training samples/s") and "Not measured" in md


def test_torch_precision_restored():
    torch = _torch()
    before = torch.get_float32_matmul_precision()
    with gpu_train._torch_precision(torch, "tf32"):
        assert torch.get_float32_matmul_precision() == "high"
    with gpu_train._torch_precision(torch, "bf16"):
        assert torch.get_float32_matmul_precision() == "highest"
    assert torch.get_float32_matmul_precision() == before


# ============================================================== gpu_check.sh
def _check_sh(tmp_path, *args, **env):
    full = {**os.environ, "OUT": str(tmp_path), **env}
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), *args], cwd=ROOT,
                          env=full, capture_output=True, text=True, timeout=120)


def test_gpu_check_dry_run(tmp_path):
    out = _check_sh(tmp_path / "all", GPU_CHECK_DRY="1")
    assert out.returncode == 0, out.stdout + out.stderr
    order = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("== ")]
    assert order == ["build", "tests", "sanitizer", "gpu-kernels", "gpu-train"]
    report = (tmp_path / "all" / "report.md").read_text()
    assert "| gpu-train | dry run |" in report
    out = _check_sh(tmp_path / "bench", "bench", GPU_CHECK_DRY="1")
    order = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("== ")]
    assert order == ["gpu-kernels", "gpu-train"]
    out = _check_sh(tmp_path / "bad", "nonsense")
    assert out.returncode == 2 and "usage" in out.stderr


def test_gpu_check_budget_caps_phases(tmp_path):
    # 100 s of budget: the build's 200 s cap is cut to what is left, and the phases after it
    # would find too little time; in a dry run nothing is spent, so check the caps printed.
    out = _check_sh(tmp_path, GPU_CHECK_DRY="1", GPU_CHECK_BUDGET="100")
    # The machine-info step before the build (it imports torch) spends some of the budget, how
    # much depends on the machine's load: the rule checked is the cap's, always left - 5, with
    # no bound on how long that step took.
    m = re.search(r"== build \(cap (\d+) s, (\d+) s of the budget left\)", out.stdout)
    assert m, out.stdout
    cap, left = int(m.group(1)), int(m.group(2))
    assert left <= 100 and cap == left - 5
    out = _check_sh(tmp_path, GPU_CHECK_DRY="1", GPU_CHECK_BUDGET="20")
    assert out.stdout.count("skipped, the time budget is spent") == 5
    assert "| build | skipped: budget spent |" in (tmp_path / "report.md").read_text()
