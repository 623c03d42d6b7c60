"""bench/suites/infer.py, _engines.py, _mlp.py and the new train rows, on tiny networks and a
timer without gaps: the flop counts, every engine holds the same weights (its outputs match a
float64 forward pass), missing peers and fastnn features not in this build give rows that say
so instead of failing, and the tables' arithmetic. No speed is asserted."""

import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ lives in the source tree, next to tests/
    sys.path.insert(0, str(ROOT))

from bench.run import SUITES  # noqa: E402
from bench.suites import _engines, _mlp, infer, train  # noqa: E402
from bench.suites._common import Context  # noqa: E402
from bench.threads import BlasThreads  # noqa: E402
from bench.timing import TimerConfig  # noqa: E402

TINY = {"tiny 8-16-4": (8, 16, 4), "tiny deep 8-16-16-3": (8, 16, 16, 3)}
FAST = TimerConfig(warmup=1, quiet_s=0.0, min_sample_s=1e-4, min_repeats=3, min_total_s=0.0,
                   max_repeats=3, max_total_s=1.0)


def _ctx():
    return Context(quick=True, timer=FAST, blas=BlasThreads(), ghz=None)


def test_registered():
    assert SUITES["infer"] is infer


def test_flop_and_weight_counts():
    wide = _mlp.NETWORKS["wide 784-2048-2048-10"]
    assert _mlp.weight_count(wide) == 784 * 2048 + 2048 * 2048 + 2048 * 10
    assert _mlp.forward_flops(wide, 3) == 2.0 * 3 * _mlp.weight_count(wide)
    # forward + dW for every layer, dX for all but the first
    assert _mlp.train_flops(wide, 256) == 2.0 * 256 * (
        3 * (2048 * 2048 + 2048 * 10) + 2 * 784 * 2048)
    assert _mlp.bias_count((8, 16, 4)) == 20


def test_reference_is_the_fastnn_model():
    widths = (8, 16, 16, 3)
    model = _mlp.fastnn_model(widths)
    X = np.random.default_rng(0).standard_normal((5, 8), dtype=np.float32)
    np.testing.assert_allclose(model.predict(X), infer._reference(model.get_weights(), X),
                               atol=1e-6)


@pytest.mark.parametrize("name", ["ORT fp32", "ORT int8", "torch fp32", "torch bf16 autocast",
                                  "torch int8 dynamic"])
def test_peers_hold_the_same_weights(name, tmp_path):
    pytest.importorskip("onnxruntime" if name.startswith("ORT") else "torch")
    if name.startswith("ORT"):
        pytest.importorskip("onnx")
    widths = (8, 16, 16, 3)
    model = _mlp.fastnn_model(widths)
    weights = model.get_weights()
    engine = {e.name: e for e in _engines.build_all(model, widths, weights, str(tmp_path), 1)}[name]
    assert engine.predict is not None, engine.note
    X = np.random.default_rng(1).standard_normal((64, 8), dtype=np.float32)
    cell, ok = infer._check(engine, engine.predict(X), infer._reference(weights, X))
    assert ok, cell
    if engine.exact:
        assert cell.startswith("max|d|=")
    else:  # quantized / bf16: close, and most rows keep the argmax
        agree = int(cell.split("argmax ")[1].split("/")[0])
        assert agree >= 48, cell


def test_check_flags_wrong_fp32_output():
    e = _engines.Engine("x", lambda X: X)
    ref = np.full((2, 3), 1 / 3)
    assert infer._check(e, ref + 1e-3, ref)[1] is False
    assert infer._check(e, np.full((2, 3), np.nan), ref)[1] is False
    assert infer._check(e, ref, ref)[1] is True


def test_missing_peers_and_features_give_notes(monkeypatch, tmp_path):
    for mod in ("onnx", "onnxruntime", "onnxruntime.quantization", "torch"):
        monkeypatch.setitem(sys.modules, mod, None)   # import raises ImportError
    import fastnn
    monkeypatch.delattr(fastnn, "quantize", raising=False)
    widths = (8, 16, 4)
    model = _mlp.fastnn_model(widths)
    engines = {e.name: e for e in _engines.build_all(model, widths, model.get_weights(),
                                                     str(tmp_path), 1)}
    assert engines["fastnn fp32"].predict is not None
    assert engines["fastnn int8"].note == _engines.NOT_IN_BUILD
    for name in ("ORT fp32", "ORT int8", "torch fp32", "torch int8 dynamic"):
        assert engines[name].predict is None and "not installed" in engines[name].note
    bf16 = engines["fastnn bf16"]   # works once the CPU bf16 path lands
    assert bf16.predict is not None or bf16.note == _engines.NOT_IN_BUILD


def test_quick_run_tables(monkeypatch):
    monkeypatch.setattr(infer, "NETWORKS", TINY)
    monkeypatch.setattr(infer, "BATCHES_QUICK", (1, 4))
    monkeypatch.setattr(infer, "sgemm_gflops", lambda cfg, m, k, n: 100.0)
    # Each engine runs in a child process (about a second each): two real ones, and one whose
    # child fails, which must give a row that says so rather than fail the suite.
    monkeypatch.setattr(_engines, "ENGINE_NAMES", ("fastnn fp32", "ORT fp32", "no such engine"))
    result = infer.run(_ctx())
    rows = result["rows"]
    broken = [r for r in rows if r["engine"] == "no such engine"]
    assert len(broken) == 4 and all(r["check"].startswith("failed: ") for r in broken)
    assert all(r["ok"] for r in rows), [r["check"] for r in rows if not r["ok"]]
    fp32 = [r for r in rows if r["engine"] == "fastnn fp32"]
    assert [(r["network"], r["batch"]) for r in fp32] == [(n, b) for n in TINY for b in (1, 4)]
    for r in fp32:
        assert r["us"] > 0
        if r["batch"] == 1:
            widths = TINY[r["network"]]
            nbytes = 4 * (_mlp.weight_count(widths) + _mlp.bias_count(widths))
            assert r["floor_bytes"] == nbytes
            floor = max(nbytes / (r["floor_gbps"] * 1e9), _mlp.forward_flops(widths) / 100e9)
            assert r["floor_us"] == pytest.approx(floor * 1e6)
            assert r["floor_frac"] == pytest.approx(r["floor_us"] / r["us"])
        else:
            assert "floor_us" not in r
    assert len(result["summary"]) == 4
    assert "| network | batch | fastnn fp32 vs ORT fp32" in result["markdown"]
    assert "### Latency per predict call" in result["markdown"]


def test_train_rows_and_ceiling(monkeypatch):
    monkeypatch.setattr(train, "NETWORKS", {"small 64-128-10": (8, 16, 4),
                                            "wide 784-2048-2048-10": (8, 32, 4)})
    monkeypatch.setattr(train, "CONFIGS", (("small 64-128-10", 16, "sgd", 64, 64),
                                           ("wide 784-2048-2048-10", 16, "adam", 64, 64)))
    monkeypatch.setattr(train, "SGEMM_SHAPES_QUICK", ((32, 32, 32), (16, 32, 32)))
    rows, ceiling = train._throughput_rows(_ctx(), None)
    assert [r["shape"] for r in rows] == ["small 64-128-10", "wide 784-2048-2048-10"]
    wide = rows[1]
    t = wide["fastnn_time"]["median_s"]
    assert wide["fastnn"] == pytest.approx(64 / t)
    assert wide["gflops"] == pytest.approx(_mlp.train_flops((8, 32, 4), 64) / t / 1e9)
    assert "torch" not in wide
    assert wide["bf16"] == _engines.NOT_IN_BUILD or wide["bf16_ratio"] > 0
    assert ceiling["sgemm0_label"] == "SGEMM 32x32x32"
    assert ceiling["ratio0"] == pytest.approx(wide["gflops"] / ceiling["sgemm0"])
    assert ceiling["ratio1"] == pytest.approx(wide["gflops"] / ceiling["sgemm1"])


@pytest.mark.parametrize("threads", [1, 2])
def test_read_bandwidth_probe_reads_every_slice(monkeypatch, threads):
    # The batch-1 floor's bandwidth: bytes read / best time, each thread reading its own slice
    # of one buffer again and again (the working set stays the buffer's size).
    from bench.suites import _ceilings

    seen = []
    real_max = np.max
    monkeypatch.setattr(_ceilings.np, "max", lambda a: seen.append(a.shape) or real_max(a))
    gbps = _ceilings.read_gbps(FAST, 4000, threads)
    assert np.isfinite(gbps) and gbps > 0
    assert set(seen) == {(_ceilings._STREAM_BYTES // 4000, 1000 // threads)}
    assert len(seen) % threads == 0  # every call reads every slice


def _tiny_train(monkeypatch):
    monkeypatch.setattr(train, "NETWORKS", {"small 64-128-10": (8, 16, 4)})
    monkeypatch.setattr(train, "CONFIGS", (("small 64-128-10", 16, "sgd", 64, 64),))


def test_train_peer_runs_in_its_own_process(monkeypatch):
    """PyTorch's epochs come from a child process (torch never imported into this one by the
    suite) and give the same row fields as before."""
    pytest.importorskip("torch", reason="PyTorch is the train suite's optional peer")
    _tiny_train(monkeypatch)
    parts = []
    real = train.run_in_child
    monkeypatch.setattr(train, "run_in_child",
                        lambda *a: parts.append(a[2][:2]) or real(*a))
    rows, ceiling = train._throughput_rows(_ctx(), True)
    assert parts == [["throughput", "fastnn"], ["throughput", "torch"]]
    assert ceiling is None
    row = rows[0]
    assert row["ratio"] == pytest.approx(row["fastnn"] / row["torch"])
    assert row["torch"] == pytest.approx(64 / row["torch_time"]["median_s"])


def test_train_failed_child_gives_a_note(monkeypatch):
    from bench.suites._child import ChildFailed

    _tiny_train(monkeypatch)
    real = train.run_in_child

    def fail(module, function, args, out_dir):
        if args[1] == "torch":
            raise ChildFailed("failed: boom", "Traceback ...")
        return real(module, function, args, out_dir)

    monkeypatch.setattr(train, "run_in_child", fail)
    rows, _ = train._throughput_rows(_ctx(), True)
    assert rows[0]["torch"] == "failed: boom" and "ratio" not in rows[0]
    assert rows[0]["fastnn"] > 0
    inference = train._inference_rows(_ctx(), True)
    assert [r["torch_us"] for r in inference] == ["failed: boom"] * 2
