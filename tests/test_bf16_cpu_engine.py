"""precision="bf16" on the CPU engine: the Dense GEMMs on the bf16 kernel (fastnn._C.gemm_bf16),
the weights kept packed in bf16 between weight changes, fp32 master weights and optimizer state.

The forward pass is held to a NumPy float64 forward on bf16-rounded operands (so the rounding is
shown to happen, and to happen on fresh weights: the stale-cache tests), training to a falling
loss and to fp32's accuracy on a real task; both on the vdpbf16ps kernel where the CPU has it
and on the forced fallback."""

import pickle

import numpy as np
import pytest

import fastnn
from fastnn import _C
from fastnn.layers import Dense

import oracle

KERNELS = (["native"] if _C.bf16_native_supported() else []) + ["fallback"]


@pytest.fixture(params=KERNELS)
def kernel(request):
    _C.set_bf16_fallback(request.param == "fallback")
    try:
        yield request.param
    finally:
        _C.set_bf16_fallback(False)


def model(precision="bf16", seed=3, widths=(48, 40), inputs=20, classes=5):
    layers = [Dense(w, "relu") for w in widths] + [Dense(classes)]
    m = fastnn.Sequential(layers, input_dim=inputs, seed=seed, precision=precision)
    return m.compile("softmax_cross_entropy", "adam")


def bf16_forward(weights, X):
    """softmax of the network on operands rounded as the kernel rounds them, in float64."""
    h = np.asarray(X, np.float32)
    n = len(weights) // 2
    for i in range(n):
        W, b = weights[2 * i], weights[2 * i + 1]
        z = oracle.round_bf16(h).astype(np.float64) @ oracle.round_bf16(W).astype(np.float64)
        z = z + b
        h = (np.maximum(z, 0) if i < n - 1 else z).astype(np.float32)
    e = np.exp(h - h.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def assert_bf16_forward(m, X, what):
    got = m.predict(X)
    want = bf16_forward(m.get_weights(), X)
    np.testing.assert_allclose(got, want, atol=2e-5, err_msg=what)


def data(rng, n=256, inputs=20, classes=5):
    X = rng.standard_normal((n, inputs)).astype(np.float32)
    y = X[:, :classes].argmax(axis=1).astype(np.int64)
    return X, y


def test_predict_rounds_operands_to_bf16(kernel, rng):
    X, _ = data(rng, 70)
    m = model()
    assert_bf16_forward(m, X, "bf16 model")
    # The fp32 model with the same weights differs by the rounding only.
    m32 = model("fp32")
    m32.set_weights(m.get_weights())
    p32, pb = m32.predict(X), m.predict(X)
    assert not np.array_equal(p32, pb)
    np.testing.assert_allclose(pb, p32, atol=2e-2)


def test_batch_one_and_batches(kernel, rng):
    # Batch 1 (the weight-streaming GEMV) and a batch give the same rows.
    X, _ = data(rng, 37)
    m = model()
    whole = m.predict(X)
    rows = np.vstack([m.predict(X[i:i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(rows, whole, rtol=1e-6, atol=1e-7)


def test_training_loss_falls(kernel, rng):
    X, y = data(rng)
    m, m32 = model(), model("fp32")
    loss = m.fit(X, y, epochs=15, batch_size=32, verbose=0).history["loss"]
    loss32 = m32.fit(X, y, epochs=15, batch_size=32, verbose=0).history["loss"]
    assert np.isfinite(loss).all() and loss[-1] < 0.75 * loss[0]
    np.testing.assert_allclose(loss, loss32, rtol=0.02)  # the same course as fp32
    # The master weights stay float32 and keep the fine updates bf16 would round away.
    assert all(w.dtype == np.float32 for w in m.get_weights())
    assert any(not np.array_equal(w, oracle.round_bf16(w)) for w in m.get_weights())


def test_no_stale_bf16_weights(kernel, rng, tmp_path):
    X, y = data(rng, 64)
    m = model()
    assert_bf16_forward(m, X, "first predict")
    # set_weights replaces the weights the packed copies came from.
    w = [v * 0.5 + 0.01 for v in m.get_weights()]
    m.set_weights(w)
    assert_bf16_forward(m, X, "after set_weights")
    # An epoch of optimizer steps changes them again.
    before = m.predict(X)
    m.fit(X, y, epochs=1, batch_size=16, verbose=0)
    after = m.predict(X)
    assert not np.allclose(before, after)
    assert_bf16_forward(m, X, "after fit")
    # Through a file and through pickle the model keeps its weights and computes the same.
    path = str(tmp_path / "m.fnn")
    m.save(path)
    loaded = fastnn.load(path, precision="bf16")
    assert loaded.precision == "bf16"
    np.testing.assert_array_equal(loaded.predict(X), after)
    clone = pickle.loads(pickle.dumps(m))
    assert clone.precision == "bf16"
    np.testing.assert_array_equal(clone.predict(X), after)
    # Loading weights into an existing model (evaluate reads the packed copies as well).
    m.set_weights(loaded.get_weights())
    assert_bf16_forward(m, X, "after set_weights of the loaded ones")


def test_native_and_fallback_agree(rng):
    if not _C.bf16_native_supported():
        pytest.skip("no AVX512_BF16 on this CPU")
    X, y = data(rng, 64)
    m = model()
    native = m.predict(X)
    _C.set_bf16_fallback(True)
    try:
        fallback = m.predict(X)  # the same packed weights, the other kernel
    finally:
        _C.set_bf16_fallback(False)
    np.testing.assert_allclose(native, fallback, atol=2e-5)


def test_precision_errors():
    with pytest.raises(ValueError, match="tf32"):
        fastnn.Sequential([Dense(2)], input_dim=3, precision="tf32")
    with pytest.raises(ValueError, match="float32"):
        fastnn.Sequential([Dense(2)], input_dim=3, precision="bf16", dtype="float64")
    with pytest.raises(ValueError, match="precision"):
        fastnn.Sequential([Dense(2)], input_dim=3, precision="fp16")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_bf16(rng):
    sklearn = pytest.importorskip("sklearn")  # noqa: F841
    from fastnn.sklearn import MLPClassifier, MLPRegressor

    X, y = data(rng, 200)
    kw = dict(max_iter=60, random_state=0, learning_rate_init=0.01)
    fp32 = MLPClassifier((32,), **kw).fit(X, y).score(X, y)
    assert fp32 > 0.8
    for Xin in (X, X.astype(np.float64)):  # float64 input trains a float32 bf16 model
        clf = MLPClassifier((32,), precision="bf16", **kw).fit(Xin, y)
        assert clf.model_.precision == "bf16" and clf.coefs_[0].dtype == np.float32
        assert clf.score(Xin, y) >= fp32 - 0.03
    reg = MLPRegressor(hidden_layer_sizes=(16,), precision="bf16", **kw)
    reg.fit(X, X[:, 0] - X[:, 1])
    assert reg.score(X, X[:, 0] - X[:, 1]) > 0.8


def digits_accuracy(precision):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    m = fastnn.Sequential([Dense(256, "relu"), Dense(256, "relu"), Dense(10)], input_dim=64,
                          seed=0, precision=precision)
    m.compile("softmax_cross_entropy", "adam")
    m.fit(Xtr, ytr.astype(np.int64), epochs=20, batch_size=32, verbose=0)
    return float((m.predict(Xte).argmax(axis=1) == yte).mean())


@pytest.mark.slow  # ~14 s on 2 cores: two 20-epoch trainings
def test_digits_accuracy_matches_fp32():
    pytest.importorskip("sklearn")
    fp32, bf16 = digits_accuracy("fp32"), digits_accuracy("bf16")
    assert fp32 > 0.95
    assert abs(bf16 - fp32) <= 0.005, (fp32, bf16)


def test_concurrent_predicts_fill_the_bf16_weights_once(rng):
    # Fresh weights (nothing packed yet) and several threads predicting at once: the packing
    # happens under the cache's lock and every thread sees complete packed weights.
    from concurrent.futures import ThreadPoolExecutor

    X, _ = data(rng, 50)
    m = model(widths=(300, 200))
    m.set_weights([w * 1.5 for w in m.get_weights()])
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: m.predict(X), range(8)))
    want = bf16_forward(m.get_weights(), X)
    for r in results:
        np.testing.assert_allclose(r, want, atol=2e-5)
