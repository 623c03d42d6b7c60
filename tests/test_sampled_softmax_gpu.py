"""The GPU sampled softmax (csrc/cuda/sampled_softmax.cu) against the CPU op on the same data and
seed: the sample is drawn on the host by the CPU sampler, so the two must agree on the touched
columns exactly and on the loss and every gradient within float rounding.

Two halves:
- GPU (skipped without a usable device): both samplers, unique on/off, every subtract_log_q /
  remove_accidental_hits / correct_true_logit combination, batch 1, odd sizes, shapes that take
  the 64x64 GEMM tiles and the split dW sum, shared labels and sampled true classes (repeated
  touched columns), dW/db accumulation, all classes sampled equals the full softmax, bad labels,
  run-to-run determinism. FASTNN_CUDA_STANDIN=1 runs them on tests/_cuda_standin.py (a check of
  the Python glue, not of the kernels).
- Stand-in (always run): the dispatch of fastnn.ops.sampled_softmax_cross_entropy on CUDA
  tensors through a host-memory fastnn._cuda (argument order, int64 labels on the device, outputs
  as Tensors on the device, dW/db scatter) and every argument error of the GPU path.
"""

import numpy as np
import pytest

import fastnn
from fastnn import ops

import _cuda_standin
from gpu import dev as _dev
from gpu import needs_device as needs_gpu

# Relative to the largest magnitude of each reference array: float32 GEMMs summed in another
# order (K up to a few hundred) stay well inside 1e-4; float64 agrees to ~1e-13.
TOL = {np.float32: 1e-4, np.float64: 1e-10}


def _problem(n, d, c, dtype=np.float32, bias=True, seed=0, zipf=True):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((n, d)).astype(dtype)
    W = (rng.standard_normal((d, c)) / np.sqrt(max(d, 1))).astype(dtype)
    b = (0.1 * rng.standard_normal(c)).astype(dtype) if bias else None
    if zipf:  # frequent low ids, as the log-uniform sampler assumes: labels shared and sampled
        labels = np.minimum(rng.zipf(1.3, n) - 1, c - 1).astype(np.int64)
    else:
        labels = rng.integers(0, c, n).astype(np.int64)
    return h, W, b, labels


def _close(got, want, dtype, what):
    want = np.asarray(want, np.float64)
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, what
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-30)
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    assert err <= TOL[dtype] * scale, f"{what}: max error {err:.3g} vs scale {scale:.3g}"


def _check(h, W, b, labels, num_sampled, seed=7, **kw):
    """The GPU op equals the CPU op on the same arguments; returns the GPU results."""
    dtype = h.dtype.type
    ref = ops.sampled_softmax_cross_entropy(h, W, b, labels, num_sampled, seed, **kw)
    got = ops.sampled_softmax_cross_entropy(_dev(h), _dev(W), _dev(b), _dev(labels), num_sampled,
                                            seed, **kw)
    loss, dh, cols, dW_cols, db_cols = got
    assert isinstance(loss, float)
    for t in (dh, cols, dW_cols):
        assert isinstance(t, fastnn.Tensor) and t.device == "cuda:0"
    assert cols.dtype == np.int64 and dh.dtype == h.dtype and dW_cols.dtype == h.dtype
    np.testing.assert_array_equal(cols.numpy(), ref[2])
    assert abs(loss - ref[0]) <= TOL[dtype] * max(1.0, abs(ref[0])), (loss, ref[0])
    _close(dh.numpy(), ref[1], dtype, "dh")
    _close(dW_cols.numpy(), ref[3], dtype, "dW_cols")
    if b is None:
        assert db_cols is None
    else:
        _close(db_cols.numpy(), ref[4], dtype, "db_cols")
    return got


# ============================================================== GPU: against the CPU op
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sampler", ["log_uniform", "uniform"])
@pytest.mark.parametrize("unique", [True, False])
def test_gpu_equals_cpu(dtype, sampler, unique):
    h, W, b, labels = _problem(64, 48, 500, dtype)
    _check(h, W, b, labels, 40, sampler=sampler, unique=unique)


@needs_gpu
@pytest.mark.parametrize("subtract_log_q", [True, False])
@pytest.mark.parametrize("remove_accidental_hits", [True, False])
@pytest.mark.parametrize("correct_true_logit", [True, False])
def test_gpu_variants(subtract_log_q, remove_accidental_hits, correct_true_logit):
    h, W, b, labels = _problem(50, 20, 80, seed=3)
    _check(h, W, b, labels, 30, subtract_log_q=subtract_log_q,
           remove_accidental_hits=remove_accidental_hits, correct_true_logit=correct_true_logit)


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,d,c,s,bias", [
    (1, 16, 100, 10, True),      # batch 1
    (1, 1, 1, 1, True),          # one class, sampled: an accidental hit, nothing else
    (37, 13, 101, 29, True),     # odd sizes everywhere
    (33, 1, 7, 5, False),        # one feature, no bias
    (3, 0, 10, 4, True),         # no features: logits are the biases
    (300, 70, 1000, 200, True),  # dW^T summed in 3 slices of N
    (2048, 256, 5000, 300, True),  # 32x32 tiles, dW^T summed in 3 slices
    (4096, 256, 3000, 256, True),  # 64x64 tiles for the logits and dh (>= 256 of them)
])
def test_gpu_shapes(dtype, n, d, c, s, bias):
    h, W, b, labels = _problem(n, d, c, dtype, bias=bias, seed=n + d)
    _check(h, W, b, labels, s)


@needs_gpu
def test_gpu_shared_and_sampled_labels():
    """Every row labelled 0 (log-uniform draws it almost surely): one column sums N rows and a
    sample; the accidental hit is masked in every row."""
    h, W, b, _ = _problem(200, 24, 300, seed=5)
    labels = np.zeros(200, np.int64)
    _check(h, W, b, labels, 50)
    labels[::3] = 1
    _check(h, W, b, labels, 50, unique=False)


@needs_gpu
def test_gpu_all_classes_is_full_softmax():
    h, W, b, labels = _problem(40, 12, 30, np.float64, zipf=False)
    loss, dh, cols, dW_cols, db_cols = ops.sampled_softmax_cross_entropy(
        _dev(h), _dev(W), _dev(b), _dev(labels), 30, 1, subtract_log_q=False)
    logits = h @ W + b
    ref_loss, dlogits = ops.softmax_cross_entropy(logits, labels)
    np.testing.assert_array_equal(cols.numpy(), np.arange(30))
    assert abs(loss - ref_loss) < 1e-12
    np.testing.assert_allclose(dh.numpy(), dlogits @ W.T, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dW_cols.numpy(), h.T @ dlogits, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(db_cols.numpy(), dlogits.sum(0), rtol=1e-10, atol=1e-13)


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_accumulates_into_dW_db(dtype):
    h, W, b, labels = _problem(30, 10, 60, dtype, seed=2)
    rng = np.random.default_rng(9)
    dW0 = rng.standard_normal(W.shape).astype(dtype)
    db0 = rng.standard_normal(b.shape).astype(dtype)
    dW_ref, db_ref = dW0.copy(), db0.copy()
    ops.sampled_softmax_cross_entropy(h, W, b, labels, 20, 4, dW=dW_ref, db=db_ref)
    dW_gpu, db_gpu = _dev(dW0), _dev(db0)
    ops.sampled_softmax_cross_entropy(_dev(h), _dev(W), _dev(b), _dev(labels), 20, 4,
                                      dW=dW_gpu, db=db_gpu)
    _close(dW_gpu.numpy(), dW_ref, dtype, "dW")
    _close(db_gpu.numpy(), db_ref, dtype, "db")
    # db alone: dW untouched
    db_only = _dev(db0)
    ops.sampled_softmax_cross_entropy(_dev(h), _dev(W), _dev(b), _dev(labels), 20, 4,
                                      db=db_only)
    _close(db_only.numpy(), db_ref, dtype, "db alone")


@needs_gpu
def test_gpu_deterministic():
    h, W, b, labels = _problem(700, 40, 3000, seed=11)
    args = (_dev(h), _dev(W), _dev(b), _dev(labels), 100, 3)
    first = ops.sampled_softmax_cross_entropy(*args)
    second = ops.sampled_softmax_cross_entropy(*args)
    assert first[0] == second[0]
    for x, y in zip(first[1:], second[1:]):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


@needs_gpu
def test_gpu_bad_labels():
    h, W, b, labels = _problem(8, 4, 10)
    for bad in (10, -1):
        labels[3] = bad
        with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 10\)"):
            ops.sampled_softmax_cross_entropy(_dev(h), _dev(W), _dev(b), _dev(labels), 3, 0)


@needs_gpu
def test_gpu_int32_labels():
    h, W, b, labels = _problem(20, 8, 40)
    _check(h, W, b, labels.astype(np.int32), 10)


# ============================================================== stand-in: the dispatch, errors
@pytest.fixture
def standin(monkeypatch):
    return _cuda_standin.install(monkeypatch)


def test_standin_results_are_device_tensors(standin):
    h, W, b, labels = _problem(12, 5, 30)
    ref = ops.sampled_softmax_cross_entropy(h, W, b, labels, 8, 2, sampler="uniform")
    loss, dh, cols, dW_cols, db_cols = ops.sampled_softmax_cross_entropy(
        _dev(h), _dev(W), _dev(b), _dev(labels), 8, 2, sampler="uniform")
    assert loss == ref[0]
    for t, r in ((dh, ref[1]), (cols, ref[2]), (dW_cols, ref[3]), (db_cols, ref[4])):
        assert isinstance(t, fastnn.Tensor) and t.device == "cuda:0"
        np.testing.assert_array_equal(t.numpy(), r)
    # no bias: db_cols is None
    out = ops.sampled_softmax_cross_entropy(_dev(h), _dev(W), None, _dev(labels), 8, 2)
    assert out[4] is None
    np.testing.assert_array_equal(out[1].numpy(),
                                  ops.sampled_softmax_cross_entropy(h, W, None, labels, 8, 2)[1])


def test_standin_accumulates(standin):
    h, W, b, labels = _problem(12, 5, 30, np.float64)
    dW_ref, db_ref = np.ones_like(W), np.ones_like(b)
    ops.sampled_softmax_cross_entropy(h, W, b, labels, 8, 2, dW=dW_ref, db=db_ref)
    dW, db = _dev(np.ones_like(W)), _dev(np.ones_like(b))
    ops.sampled_softmax_cross_entropy(_dev(h), _dev(W), _dev(b), _dev(labels), 8, 2, dW=dW,
                                      db=db)
    np.testing.assert_array_equal(dW.numpy(), dW_ref)
    np.testing.assert_array_equal(db.numpy(), db_ref)
    db_only = _dev(np.ones_like(b))
    ops.sampled_softmax_cross_entropy(_dev(h), _dev(W), _dev(b), _dev(labels), 8, 2, db=db_only)
    np.testing.assert_array_equal(db_only.numpy(), db_ref)


def test_standin_int32_labels_and_strided_h(standin):
    h, W, b, labels = _problem(10, 6, 20)
    ref = ops.sampled_softmax_cross_entropy(h, W, b, labels, 5, 1)
    got = ops.sampled_softmax_cross_entropy(_dev(h), _dev(W), _dev(b),
                                            _dev(labels.astype(np.int32)), 5, 1)
    np.testing.assert_array_equal(got[1].numpy(), ref[1])


def test_cpu_tensors_take_cpu_path():
    h, W, b, labels = _problem(10, 6, 20)
    ref = ops.sampled_softmax_cross_entropy(h, W, b, labels, 5, 1)
    got = ops.sampled_softmax_cross_entropy(_dev(h, "cpu"), W, _dev(b, "cpu"), labels, 5, 1)
    assert got[0] == ref[0]
    for g, r in zip(got[1:], ref[1:]):
        assert isinstance(g, np.ndarray)
        np.testing.assert_array_equal(g, r)
    dW = np.zeros_like(W)
    ops.sampled_softmax_cross_entropy(h, W, b, labels, 5, 1, dW=_dev(dW, "cpu"))
    assert np.any(dW != 0)


# Each case changes the arguments of a valid GPU call (h, W, b, labels: CUDA tensors made from
# the NumPy arrays of _problem(6, 4, 10)); D puts an array on the (stand-in) GPU.
D = _dev
ERRORS = [
    ("numpy labels", lambda h, W, b, y: dict(labels=y), TypeError,
     "labels: expected a fastnn.Tensor on cuda:0"),
    ("float labels", lambda h, W, b, y: dict(labels=D(y.astype(np.float32))), TypeError,
     "labels: expected integer class indices"),
    ("labels shape", lambda h, W, b, y: dict(labels=D(y[:5])), ValueError,
     r"labels: expected shape \(6,\)"),
    ("label too big", lambda h, W, b, y: dict(labels=D(np.array([0, 1, 2, 3, 4, 10]))),
     ValueError, r"labels: expected class indices in \[0, 10\) \(W has 10 columns\), got 10"),
    ("label negative", lambda h, W, b, y: dict(labels=D(np.array([0, 1, -2, 3, 4, 5]))),
     ValueError, "got -2"),
    ("b dtype", lambda h, W, b, y: dict(b=D(b.astype(np.float64))), TypeError,
     "b: dtype float64 does not match"),
    ("b shape", lambda h, W, b, y: dict(b=D(b[:9])), ValueError, r"b: expected shape \(10,\)"),
    ("W rows", lambda h, W, b, y: dict(W=D(np.zeros((5, 10), np.float32))), ValueError,
     "W: expected 4 rows"),
    ("W no classes", lambda h, W, b, y: dict(W=D(np.zeros((4, 0), np.float32)), b=None),
     ValueError, "W: expected at least one class"),
    ("h no rows", lambda h, W, b, y: dict(h=D(h[:0]), labels=D(y[:0])), ValueError,
     "h: expected at least one row"),
    ("h int", lambda h, W, b, y: dict(h=D(h.astype(np.int32))), TypeError,
     "h: expected float32 or float64"),
    ("sampler", lambda h, W, b, y: dict(sampler="zipf"), ValueError, "sampler: expected one of"),
    ("too many unique", lambda h, W, b, y: dict(num_sampled=11), ValueError,
     "num_sampled: unique sampling draws at most"),
    ("no samples", lambda h, W, b, y: dict(num_sampled=0), ValueError,
     "num_sampled: expected an int >= 1"),
    ("seed", lambda h, W, b, y: dict(seed=-1), ValueError, "seed: expected 0 <= seed"),
    ("dW shape", lambda h, W, b, y: dict(dW=D(np.zeros((4, 9), np.float32))), ValueError,
     r"dW: expected shape \(4, 10\)"),
    ("dW dtype", lambda h, W, b, y: dict(dW=D(np.zeros((4, 10)))), TypeError,
     "dW: expected dtype float32"),
    ("db without b", lambda h, W, b, y: dict(b=None, db=D(np.zeros(10, np.float32))), ValueError,
     "db: there is no bias gradient"),
    ("other device", lambda h, W, b, y: dict(W=D(W, "cuda:1")), ValueError,
     "W: expected a tensor on cuda:0"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_standin_errors(standin, case):
    _, change, error, match = case
    h, W, b, labels = _problem(6, 4, 10, zipf=False)
    args = dict(h=D(h), W=D(W), b=D(b), labels=D(labels), num_sampled=3, seed=0)
    args.update(change(h, W, b, labels))
    with pytest.raises(error, match=match):
        ops.sampled_softmax_cross_entropy(**args)


def test_standin_kernel_gets_int64_device_labels(standin, monkeypatch):
    seen = {}
    kernel = standin.sampled_softmax_cross_entropy

    def spy(h, W, b, labels, *rest):
        seen["labels"] = labels
        return kernel(h, W, b, labels, *rest)

    monkeypatch.setattr(standin, "sampled_softmax_cross_entropy", spy)
    h, W, b, labels = _problem(6, 4, 10)
    ops.sampled_softmax_cross_entropy(_dev(h), _dev(W), _dev(b), _dev(labels.astype(np.int16)),
                                      3, 0)
    got = seen["labels"]
    assert isinstance(got, fastnn.Tensor) and got.device == "cuda:0" and got.dtype == np.int64
    np.testing.assert_array_equal(got.numpy(), labels)
