"""fastnn.cuda's device queries: they always run, because "no GPU" (or no CUDA build) must be a
quiet answer, not an error."""

import pytest

from fastnn import cuda
from gpu import STANDIN


def test_no_gpu_queries_do_not_raise():
    n = cuda.device_count()
    assert isinstance(n, int) and n >= 0
    info = cuda.describe()
    assert isinstance(info, dict)
    assert {"cuda_runtime", "cuda_driver", "gpus"} <= set(info)
    assert isinstance(info["gpus"], list)
    if not cuda.is_available():
        assert n == 0
        assert info["gpus"] == []


def test_describe_reports_the_runtime_when_compiled():
    info = cuda.describe()
    if cuda.is_compiled():
        major, minor = info["cuda_runtime"].split(".")
        assert major.isdigit() and minor.isdigit()
    else:
        assert info["cuda_runtime"].startswith(("not compiled", "not loaded"))


@pytest.mark.skipif(STANDIN, reason="the stand-in replaces fastnn.cuda's queries process-wide")
def test_missing_module_reports_not_compiled(monkeypatch):
    # A None entry in sys.modules makes `from fastnn import _cuda` raise ModuleNotFoundError for
    # exactly that name, as a CPU-only build does.
    import sys

    monkeypatch.setitem(sys.modules, "fastnn._cuda", None)
    monkeypatch.delattr("fastnn._cuda", raising=False)
    monkeypatch.setattr(cuda, "_module", None)
    monkeypatch.setattr(cuda, "_import_error", None)
    monkeypatch.setattr(cuda, "_probed", False)
    assert not cuda.is_compiled()
    assert cuda.device_count() == 0
    assert cuda.describe() == {"cuda_runtime": "not compiled", "cuda_driver": None, "gpus": []}
