import os
import subprocess
import sys

import pytest

import fastnn


def test_show_config_fields():
    info = fastnn.show_config()
    for key in ("version", "compiler", "cpu_features", "simd", "threads", "cuda_compiled",
                "cuda_available", "gpus"):
        assert key in info
    assert info["version"] == fastnn.__version__
    assert info["simd"] in ("avx512", "avx2", "scalar")


def test_threads_roundtrip():
    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
    finally:
        fastnn.set_num_threads(before)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        fastnn.set_num_threads(0)
    with pytest.raises(TypeError):
        fastnn.set_num_threads(1.5)


def test_set_simd():
    with pytest.raises(ValueError, match="simd: expected one of"):
        fastnn.set_simd("sse9")
    fastnn.set_simd("scalar")
    assert fastnn.get_simd() == "scalar"
    fastnn.set_simd(None)
    assert fastnn.get_simd() == fastnn._C.best_simd()


def test_simd_env_variable():
    code = "import fastnn; print(fastnn.get_simd())"
    # A bare environment, but keep where fastnn was imported from (an in-place or --target
    # install is found through PYTHONPATH).
    env = {"FASTNN_SIMD": "scalar", "PATH": ""}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.strip() == "scalar"


def test_cuda_absent_is_not_an_error():
    # On a machine without a GPU these must answer, not raise.
    assert isinstance(fastnn.cuda.is_available(), bool)
    assert fastnn.cuda.device_count() >= 0


def test_cli_info():
    out = subprocess.run([sys.executable, "-m", "fastnn", "info"], capture_output=True,
                         text=True, check=True)
    assert "simd" in out.stdout and fastnn.__version__ in out.stdout


def test_fork_after_threads_used():
    # The pool's workers do not survive fork(); the child must still compute (not hang).
    code = """
import os, numpy as np, fastnn
from fastnn import ops
a = np.ones((300, 300), np.float32)
ops.matmul(a, a)
pid = os.fork()
if pid == 0:
    r = ops.matmul(a, a)
    os._exit(0 if r[0, 0] == 300 else 1)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "0"


def test_cli_demo_quick(tmp_path):
    png = tmp_path / "spiral.png"
    out = subprocess.run([sys.executable, "-m", "fastnn", "demo", "--quick", "--out", str(png)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1. spiral" in out.stdout and "test accuracy" in out.stdout
    assert "Epoch 1/" in out.stdout  # the progress bar
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert png.exists() and png.stat().st_size > 1000


def test_bench_harness_smoke(tmp_path):
    # The bench lives in the source tree: run it from the repository root.
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "bench", "linear", "--quick", "--json",
                          str(tmp_path / "linear.json")], cwd=root, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "linear.json").exists()
