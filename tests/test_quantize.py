"""int8 inference (fastnn.quantize): the int8 GEMM against an exact integer oracle on every path,
the row quantizer and the whole quantized network against a NumPy emulation of the documented
scheme (python/fastnn/quantized.py), closeness to the float model, folding of BatchNorm and
Dropout, the output links, files and pickling, bad input, and threads."""

import copy
import os
import pickle
import threading

import numpy as np
import pytest

import fastnn
from fastnn import _C, io
from fastnn.layers import Activation, BatchNorm, Dense, Dropout
from fastnn.quantized import MAX_INPUTS

PATHS = _C.qgemm_paths()
SIMD_PATHS = [p for p in ("avx512", "avx2", "scalar") if _C.simd_supported(p)]
ACTS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step")

# (M, K, N): ones, odd K (vpdpbusd's 4-byte groups, AVX2's pairs), odd N (16- and 8-column
# panels, 64-column blocks), the micro-tiles' row counts (6 and 4) and the 96-row task chunks.
SHAPES = [(1, 1, 1), (1, 3, 1), (1, 5, 17), (2, 7, 31), (3, 4, 16), (5, 13, 8), (6, 8, 64),
          (7, 129, 65), (11, 255, 10), (13, 256, 130), (97, 33, 200), (1, 784, 2048),
          (193, 300, 129)]


def _oracle(a, b):
    return a.astype(np.int64) @ b.astype(np.int64)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_int32_sums_exact(path, shape):
    M, K, N = shape
    rng = np.random.default_rng(M * 1000 + K * 7 + N)
    a = rng.integers(0, 256, (M, K), dtype=np.uint8)
    b = rng.integers(-127, 128, (K, N), dtype=np.int8)
    c = _C.qgemm_s32(a, b, path)
    assert c.dtype == np.int32 and c.shape == (M, N)
    np.testing.assert_array_equal(c, _oracle(a, b))


@pytest.mark.parametrize("path", PATHS)
def test_int32_sums_exact_at_the_extremes(path):
    """255 x 127 in every product, as deep as int32 allows: the saturating vpmaddubsw (two such
    products overflow int16) or any lost bit would show."""
    K = MAX_INPUTS
    a = np.full((3, K), 255, np.uint8)
    b = np.empty((K, 18), np.int8)
    b[:, :9], b[:, 9:] = 127, -127
    b[::7, 4] = -127
    c = _C.qgemm_s32(a, b, path)
    np.testing.assert_array_equal(c, _oracle(a, b))
    assert c[0, 0] == 255 * 127 * K


def test_paths_give_bit_identical_sums():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (37, 301), dtype=np.uint8)
    b = rng.integers(-127, 128, (301, 77), dtype=np.int8)
    sums = [_C.qgemm_s32(a, b, p) for p in PATHS]
    for s in sums[1:]:
        np.testing.assert_array_equal(s, sums[0])


def test_paths_are_those_of_the_cpu():
    assert "scalar" in PATHS
    assert ("avx2" in PATHS) == _C.simd_supported("avx2")
    if "vnni" in PATHS:
        assert "avx512vnni" in _C.cpu_features() and _C.simd_supported("avx512")


def _quantize_rows(x):
    """The documented row quantizer in float32 NumPy: (codes, scales, zero points)."""
    with np.errstate(all="ignore"):  # rows of NaN, inf and 1e-40 are part of the test
        return _quantize_rows_unchecked(np.asarray(x, np.float32))


def _quantize_rows_unchecked(x):
    lo = np.minimum(x.min(axis=1), np.float32(0))
    hi = np.maximum(x.max(axis=1), np.float32(0))
    scale = (hi - lo) / np.float32(255)
    inv = np.float32(1) / scale
    zero_row = ~(scale >= np.float32(1.17549435e-38)) | ~np.isfinite(inv)
    scale = np.where(zero_row, np.float32(1), scale).astype(np.float32)
    inv = np.where(zero_row, np.float32(1), inv).astype(np.float32)
    zero = np.clip(np.rint(-lo * inv), 0, 255).astype(np.int32)
    codes = np.clip(np.rint(x * inv[:, None]).astype(np.int64) + zero[:, None], 0, 255)
    bad = ~np.isfinite(x).all(axis=1)
    scale[bad], zero[bad], codes[bad] = np.nan, 0, 0
    return codes, scale, zero


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("K", [1, 3, 16, 17, 31, 32, 33, 64, 100, 784])
def test_row_quantizer_matches_the_scheme(path, K):
    rng = np.random.default_rng(K)
    x = (rng.standard_normal((9, K)) * rng.uniform(0.01, 100, (9, 1))).astype(np.float32)
    x[1] = 0                       # all zeros: scale 1, zero point 0
    x[2] = np.abs(x[2])            # all positive: zero point 0
    x[3] = -np.abs(x[3])           # all negative: zero point 255
    x[4, K // 2] = np.inf          # non-finite rows: NaN scale
    x[5, 0] = np.nan
    x[6] = 1e-40                   # a range whose scale underflows
    codes, scale, zero = _C.qgemm_quantize_rows(x, path)
    want = _quantize_rows(x)
    np.testing.assert_array_equal(codes, want[0])
    np.testing.assert_array_equal(scale, want[1])
    np.testing.assert_array_equal(zero, want[2])
    assert zero[1] == 0 and scale[1] == 1
    assert np.isnan(scale[4]) and np.isnan(scale[5])


# ---------------------------------------------------------------------- the model
def _mlp(sizes, act="relu", last=None, seed=0, **kw):
    layers = [Dense(s, act, **kw) for s in sizes[1:-1]] + [Dense(sizes[-1], last)]
    return fastnn.Sequential(layers, input_dim=sizes[0], seed=seed)


def _act(name, param, x):
    if name == "none":
        return x
    if name == "leaky_relu":
        return fastnn.ops.leaky_relu(x, param)
    if name == "elu":
        return fastnn.ops.elu(x, param)
    return getattr(fastnn.ops, name)(x)


def _emulate(qm, X):
    """The quantized model's outputs from its steps, by the documented formulas in NumPy."""
    h = np.asarray(X, np.float32)
    for s in qm.steps:
        if s["kind"] == "dense":
            codes, rs, rz = _quantize_rows(h)
            w = s["weight"].astype(np.int64)
            d = (codes @ w - rz[:, None].astype(np.int64) * w.sum(axis=0)).astype(np.float32)
            h = d * (rs[:, None] * s["scale"][None, :]) + s["bias"]
            h = _act(s["activation"], s["act_param"], h.astype(np.float32))
        elif s["kind"] == "affine":
            h = h * s["scale"] + s["shift"]
        else:
            h = _act(s["activation"], s["act_param"], h)
    if qm.link == "softmax":
        return fastnn.ops.softmax(h)
    return fastnn.ops.sigmoid(h) if qm.link == "sigmoid" else h


@pytest.mark.parametrize("act", ACTS)
def test_every_activation_matches_the_emulation(act, simd):
    m = _mlp([19, 33, 17, 5], act, seed=3)
    qm = fastnn.quantize(m)
    X = np.random.default_rng(0).standard_normal((23, 19)).astype(np.float32)
    np.testing.assert_allclose(qm.predict(X), _emulate(qm, X), rtol=1e-5, atol=1e-6)


def test_relu_logits_bit_identical_on_every_path():
    m = _mlp([64, 129, 70, 10], seed=1).compile("mse")
    qm = fastnn.quantize(m)
    X = np.random.default_rng(1).standard_normal((50, 64)).astype(np.float32)
    outs = []
    try:
        for p in SIMD_PATHS:
            fastnn.set_simd(p)
            outs.append(qm.predict(X))
    finally:
        fastnn.set_simd(None)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    np.testing.assert_array_equal(outs[0], _emulate(qm, X))


def test_kernel_follows_set_simd():
    qm = fastnn.quantize(_mlp([3, 4, 2]))
    try:
        fastnn.set_simd("scalar")
        assert qm.kernel == "scalar"
        if "avx2" in SIMD_PATHS:
            fastnn.set_simd("avx2")
            assert qm.kernel == "avx2"
    finally:
        fastnn.set_simd(None)
    assert qm.kernel in PATHS


def test_close_to_the_float_model():
    m = _mlp([64, 128, 64, 10], last="softmax", seed=2)
    X = np.random.default_rng(2).standard_normal((400, 64)).astype(np.float32)
    p, q = m.predict(X), fastnn.quantize(m).predict(X)
    assert np.abs(p - q).mean() < 0.01
    assert (p.argmax(1) == q.argmax(1)).mean() > 0.95


def test_rows_do_not_depend_on_the_batch(threads):
    """Nor on the thread count: large batches run blocks of rows in parallel, small ones split
    each product by columns."""
    qm = fastnn.quantize(_mlp([30, 40, 6], last="softmax"))
    X = np.random.default_rng(3).standard_normal((1000, 30)).astype(np.float32)
    full = qm.predict(X)
    np.testing.assert_array_equal(qm.predict(X, batch_size=7), full)
    for i in (0, 151, 999):
        np.testing.assert_array_equal(qm.predict(X[i:i + 1])[0], full[i])
    np.testing.assert_array_equal(qm.predict(X[:5]), full[:5])


def test_batchnorm_and_dropout_fold_away():
    rng = np.random.default_rng(4)
    layers = [BatchNorm(), Dense(32), BatchNorm(), Activation("relu"), Dropout(0.3),
              Dense(24, "tanh"), BatchNorm(), Dropout(0.2), Dense(3, "softmax")]
    m = fastnn.Sequential(layers, input_dim=12, seed=4)
    w = m.get_weights()
    # Non-trivial statistics and affine parameters in every BatchNorm.
    for i, role in enumerate(fastnn.layers.weight_roles(m.layers)):
        if role in ("gamma", "beta", "running_mean"):
            w[i] = rng.uniform(-1, 1, w[i].shape).astype(np.float32) + (role == "gamma") * 1.5
        elif role == "running_var":
            w[i] = rng.uniform(0.2, 3, w[i].shape).astype(np.float32)
    m.set_weights(w)
    qm = fastnn.quantize(m)
    # The first BatchNorm goes into the next Dense, the second into the Dense before it (which
    # takes the relu), the third into the last Dense; Dropout is gone.
    assert [s["kind"] for s in qm.steps] == ["dense", "dense", "dense"]
    assert [s["activation"] for s in qm.steps] == ["relu", "tanh", "none"]
    X = rng.standard_normal((200, 12)).astype(np.float32)
    p, q = m.predict(X), qm.predict(X)
    assert np.abs(p - q).max() < 0.05
    np.testing.assert_allclose(q, _emulate(qm, X), rtol=1e-5, atol=1e-6)


def test_batchnorm_without_a_dense_next_runs_in_float():
    m = fastnn.Sequential([Dense(8, "relu"), BatchNorm(), Activation("sigmoid")], input_dim=5)
    w = m.get_weights()
    w[-1] = np.full(8, 2.0, np.float32)  # running variance
    w[-2] = np.full(8, 0.5, np.float32)  # running mean
    m.set_weights(w)
    qm = fastnn.quantize(m)
    assert [s["kind"] for s in qm.steps] == ["dense", "affine"] and qm.link == "sigmoid"
    X = np.random.default_rng(5).standard_normal((40, 5)).astype(np.float32)
    np.testing.assert_allclose(qm.predict(X), m.predict(X), atol=0.03)
    np.testing.assert_allclose(qm.predict(X), _emulate(qm, X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss, last, link", [
    ("softmax_cross_entropy", None, "softmax"), ("softmax_cross_entropy", "softmax", "softmax"),
    ("binary_cross_entropy", None, "sigmoid"), ("binary_cross_entropy", "sigmoid", "sigmoid"),
    ("mse", None, "none"), (None, "softmax", "softmax"), (None, "sigmoid", "sigmoid"),
    (None, None, "none")])
def test_output_link_as_predict(loss, last, link):
    m = _mlp([6, 9, 4], last=last, seed=6)
    if loss:
        m.compile(loss)
    qm = fastnn.quantize(m)
    assert qm.link == link
    X = np.random.default_rng(6).standard_normal((30, 6)).astype(np.float32)
    p, q = m.predict(X), qm.predict(X)
    assert q.dtype == np.float32 and q.shape == p.shape
    np.testing.assert_allclose(q, p, atol=0.05 * max(1.0, np.abs(p).max()))
    if link == "softmax":
        np.testing.assert_allclose(q.sum(axis=1), 1, rtol=1e-5)


def test_predict_classes_as_sequential():
    m = _mlp([6, 9, 4], last="softmax")
    qm = fastnn.quantize(m)
    X = np.random.default_rng(7).standard_normal((30, 6)).astype(np.float32)
    np.testing.assert_array_equal(qm.predict_classes(X), qm.predict(X).argmax(1))
    binary = fastnn.quantize(_mlp([6, 9, 1], last="sigmoid"))
    np.testing.assert_array_equal(binary.predict_classes(X), binary.predict(X)[:, 0] > 0.5)


def test_float64_and_list_input():
    qm = fastnn.quantize(_mlp([3, 5, 2]))
    X = np.random.default_rng(8).standard_normal((4, 3))
    np.testing.assert_array_equal(qm.predict(X), qm.predict(X.astype(np.float32)))
    np.testing.assert_array_equal(qm.predict(X.tolist()), qm.predict(X.astype(np.float32)))
    assert qm.predict(np.zeros((0, 3), np.float32)).shape == (0, 2)


def test_snapshot_of_the_weights():
    m = _mlp([4, 6, 2], last="softmax").compile("softmax_cross_entropy")
    qm = fastnn.quantize(m)
    X = np.random.default_rng(9).standard_normal((64, 4)).astype(np.float32)
    before = qm.predict(X)
    m.fit(X, np.arange(64) % 2, epochs=2, verbose=0)
    np.testing.assert_array_equal(qm.predict(X), before)
    assert not np.array_equal(fastnn.quantize(m).predict(X), before)


def test_summary_and_repr():
    qm = fastnn.quantize(_mlp([8, 16, 3], last="softmax"))
    text = qm.summary(print_fn=None)
    assert "Dense int8(relu)" in text and "total bytes" in text
    assert "8-16-3" in repr(qm)


# ---------------------------------------------------------------------- files and pickling
def test_save_load_round_trip(tmp_path):
    m = fastnn.Sequential([Dense(20, "relu"), BatchNorm(), Dense(7, "gelu"),
                           Activation("leaky_relu", negative_slope=0.2), Dense(3, "softmax")],
                          input_dim=11)
    qm = fastnn.quantize(m)
    X = np.random.default_rng(10).standard_normal((25, 11)).astype(np.float32)
    path = tmp_path / "m.fastnn"
    qm.save(path, metadata={"note": "int8"})
    back = fastnn.load(path)
    assert isinstance(back, fastnn.QuantizedModel)
    np.testing.assert_array_equal(back.predict(X), qm.predict(X))
    for s, t in zip(qm.steps, back.steps):
        assert s.keys() == t.keys()
        for k in s:
            np.testing.assert_array_equal(s[k], t[k])
    assert io.load_arrays(path)[1]["note"] == "int8"
    assert back.source == m.get_config()


def test_pickle_deepcopy_and_joblib(tmp_path):
    qm = fastnn.quantize(_mlp([5, 7, 3], last="softmax"))
    X = np.random.default_rng(11).standard_normal((9, 5)).astype(np.float32)
    copies = [pickle.loads(pickle.dumps(qm)), copy.deepcopy(qm), copy.copy(qm)]
    joblib = pytest.importorskip("joblib")
    joblib.dump(qm, tmp_path / "m.joblib")
    copies.append(joblib.load(tmp_path / "m.joblib"))
    for other in copies:
        assert isinstance(other, fastnn.QuantizedModel) and other._net is not qm._net
        np.testing.assert_array_equal(other.predict(X), qm.predict(X))


def _tampered(tmp_path, change):
    """A valid int8 file whose arrays or metadata `change` alters (checksums recomputed)."""
    qm = fastnn.quantize(_mlp([5, 7, 3], last="softmax"))
    arrays, meta = qm._to_arrays()
    change(arrays, meta)
    path = tmp_path / "bad.fastnn"
    io.save_arrays(path, arrays, meta)
    return path


@pytest.mark.parametrize("change, words", [
    (lambda a, m: a.__setitem__("quantized/0000/weight", a["quantized/0000/weight"].astype(np.int16)), "int8"),
    (lambda a, m: a["quantized/0000/weight"].__setitem__((0, 0), -128), "[-127, 127]"),
    (lambda a, m: a["quantized/0001/scale"].__setitem__(0, 0.0), "scales"),
    (lambda a, m: a["quantized/0001/bias"].__setitem__(0, np.nan), "NaN"),
    (lambda a, m: a.__setitem__("quantized/0009/weight", np.zeros((1, 1), np.int8)), "no step"),
    (lambda a, m: a.pop("quantized/0001/bias"), "quantized/0001/bias"),
    (lambda a, m: a.__setitem__("quantized/0001/weight", np.zeros((6, 3), np.int8)), "inputs"),
    (lambda a, m: m["fastnn_quantized"].__setitem__("link", "tanh"), "link"),
    (lambda a, m: m["fastnn_quantized"]["steps"][0].__setitem__("activation", "bogus"), "bogus"),
    (lambda a, m: m["fastnn_quantized"]["steps"][0].__setitem__("kind", "conv"), "kind"),
    (lambda a, m: m["fastnn_quantized"].__setitem__("input_dim", -5), "input_dim"),
])
def test_damaged_files_are_refused(tmp_path, change, words):
    path = _tampered(tmp_path, change)
    with pytest.raises(ValueError, match="damaged int8 model") as info:
        fastnn.load(path)
    assert words in str(info.value)


def test_flipped_byte_is_refused(tmp_path):
    path = tmp_path / "m.fastnn"
    fastnn.quantize(_mlp([5, 7, 3])).save(path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        fastnn.load(path)


def test_load_elsewhere_than_the_cpu_is_refused(tmp_path):
    path = tmp_path / "m.fastnn"
    fastnn.quantize(_mlp([5, 7, 3])).save(path)
    with pytest.raises(ValueError):
        fastnn.io.MODEL_READERS["fastnn_quantized"](*io.load_arrays(path), "f", "cuda:0")


# ---------------------------------------------------------------------- bad input
def test_bad_models():
    with pytest.raises(TypeError, match="fastnn.Sequential"):
        fastnn.quantize("model")
    m = _mlp([3, 4, 2])
    m.device = "cuda:0"  # as a GPU model reports itself
    with pytest.raises(ValueError, match="CPU"):
        fastnn.quantize(m)
    wide = fastnn.Sequential([Dense(1)], input_dim=MAX_INPUTS + 1)
    with pytest.raises(ValueError, match=str(MAX_INPUTS)):
        fastnn.quantize(wide)
    nan = _mlp([3, 4, 2])
    w = nan.get_weights()
    nan._put_weights([np.full_like(a, np.nan) for a in w], check_values=False)
    with pytest.raises(ValueError, match="NaN"):
        fastnn.quantize(nan)


def test_bad_predict_arguments():
    qm = fastnn.quantize(_mlp([3, 4, 2]))
    with pytest.raises(ValueError, match="3 features"):
        qm.predict(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="row 1, column 2"):
        qm.predict(np.array([[0, 0, 0], [0, 0, np.inf]], np.float32))
    with pytest.raises(ValueError, match="NaN"):
        qm.predict(np.array([[np.nan, 0, 0]]))
    with pytest.raises(TypeError):
        qm.predict(np.array([["a", "b", "c"]]))
    with pytest.raises(ValueError, match="batch_size"):
        qm.predict(np.zeros((1, 3), np.float32), batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        qm.predict(np.zeros((1, 3), np.float32), batch_size="1")
    with pytest.raises(TypeError):
        qm.save(os.devnull, metadata=3)
    with pytest.raises(ValueError, match="reserved"):
        qm.save(os.devnull, metadata={"fastnn_quantized": 1})


@pytest.mark.parametrize("first", ["dense", "activation"])
def test_nan_late_in_a_large_batch_is_refused(first, threads):
    layers = ([Activation("tanh")] if first == "activation" else []) + [Dense(5), Dense(2)]
    qm = fastnn.quantize(fastnn.Sequential(layers, input_dim=3))
    X = np.zeros((2000, 3), np.float32)
    X[1990, 1] = np.nan
    with pytest.raises(ValueError, match="row 1990, column 1"):
        qm.predict(X)


def test_nan_from_a_non_dense_first_step_is_refused():
    qm = fastnn.quantize(fastnn.Sequential([Activation("tanh"), Dense(2)], input_dim=3))
    assert qm.steps[0]["kind"] == "activation"
    with pytest.raises(ValueError, match="NaN"):
        qm.predict(np.array([[np.inf, 0, 0]], np.float32))


def test_overflowing_weights_give_nan_and_a_warning():
    m = _mlp([2, 3, 2])
    m.set_weights([np.full((2, 3), 3e38, np.float32), np.zeros(3, np.float32),
                   np.full((3, 2), 3e38, np.float32), np.zeros(2, np.float32)])
    qm = fastnn.quantize(m)
    with pytest.warns(RuntimeWarning, match="overflowed"):
        out = qm.predict(np.ones((1, 2), np.float32))
    assert not np.isfinite(out).all()


# ---------------------------------------------------------------------- threads
def test_concurrent_predict_gives_the_sequential_results():
    qm = fastnn.quantize(_mlp([64, 200, 100, 10], last="softmax"))
    rng = np.random.default_rng(12)
    inputs = [rng.standard_normal((n, 64)).astype(np.float32) for n in (1, 7, 300, 1, 64, 513)]
    want = [qm.predict(X) for X in inputs]
    errors, results = [], {}

    def work(i):
        try:
            for _ in range(20):
                results[i] = qm.predict(inputs[i])
                np.testing.assert_array_equal(results[i], want[i])
        except Exception as e:  # reported below, in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


# ---------------------------------------------------------------------- a real task
def test_digits_accuracy_within_half_a_point():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(X))
    train, test = order[:1300], order[1300:]
    m = fastnn.Sequential([Dense(128, "relu"), Dense(64, "relu"), Dense(10, "softmax")],
                          input_dim=64, seed=0)
    m.compile("softmax_cross_entropy", fastnn.optim.Adam(1e-3))
    m.fit(X[train], y[train], epochs=25, batch_size=32, verbose=0)
    acc32 = (m.predict_classes(X[test]) == y[test]).mean()
    acc8 = (fastnn.quantize(m).predict_classes(X[test]) == y[test]).mean()
    assert acc32 > 0.93
    assert acc8 >= acc32 - 0.005, (acc32, acc8)
