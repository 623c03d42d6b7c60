"""predict and evaluate on the CPU engine's packed copy of the Dense kernels (engine/
prepared_weights.h): packed on first use, and never stale -- every way the weights change
(set_weights, fit, loading a file, pickling) is followed by predictions from the new weights,
equal bit for bit to a model freshly built with them; tiny batches (the GEMV path) equal the
rows of a batch; the packing follows a change of SIMD path; concurrent first calls agree."""

import pickle
import threading

import numpy as np
import pytest

import fastnn
from fastnn import Sequential
from fastnn.layers import Dense


def _model(seed=0, widths=(70, 33, 5), input_dim=9):
    layers = [Dense(w, "relu") for w in widths[:-1]] + [Dense(widths[-1], "softmax")]
    return Sequential(layers, input_dim=input_dim, seed=seed)


def _fresh(weights, **kw):
    """A model that never predicted, holding `weights`."""
    m = _model(seed=123, **kw)
    m.set_weights(weights)
    return m


@pytest.fixture
def data(rng):
    X = rng.standard_normal((40, 9)).astype(np.float32)
    y = rng.integers(0, 5, 40)
    return X, y


def test_set_weights_after_predict_is_seen(data, rng):
    X, _ = data
    m = _model()
    before = m.predict(X)
    new = [rng.standard_normal(w.shape).astype(np.float32) for w in m.get_weights()]
    m.set_weights(new)
    after = m.predict(X)
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, _fresh(new).predict(X))
    np.testing.assert_array_equal(m.predict(X[:1]), after[:1])


def test_fit_after_predict_is_seen(data):
    X, y = data
    m = _model()
    m.compile("softmax_cross_entropy", "adam")
    before = m.predict(X)
    m.evaluate(X, y)
    m.fit(X, y, epochs=1, batch_size=8, verbose=0)
    after = m.predict(X)
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, _fresh(m.get_weights()).predict(X))
    loss = m.evaluate(X, y)["loss"]
    fresh = _fresh(m.get_weights())
    fresh.compile("softmax_cross_entropy", "adam")
    assert loss == fresh.evaluate(X, y)["loss"]


def test_load_and_pickle_predict_the_saved_weights(data, rng, tmp_path):
    X, _ = data
    m = _model()
    m.predict(X)
    m.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in m.get_weights()])
    want = _fresh(m.get_weights()).predict(X)
    m.save(tmp_path / "m.fastnn")
    np.testing.assert_array_equal(fastnn.load(tmp_path / "m.fastnn").predict(X), want)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(m)).predict(X), want)
    np.testing.assert_array_equal(m.predict(X), want)


@pytest.mark.parametrize("widths,input_dim", [((70, 33, 5), 9), ((130, 65, 17), 300),
                                              ((1, 1), 1), ((300, 10), 784)])
def test_tiny_batches_equal_the_rows_of_a_batch(simd, threads, widths, input_dim, rng):
    m = _model(widths=widths, input_dim=input_dim)
    X = rng.standard_normal((50, input_dim)).astype(np.float32)
    batch = m.predict(X)
    for r0, n in [(0, 1), (7, 2), (11, 3), (20, 4), (30, 5), (37, 13)]:
        np.testing.assert_array_equal(m.predict(X[r0:r0 + n]), batch[r0:r0 + n],
                                      err_msg=f"rows {r0}..{r0 + n}")
    np.testing.assert_array_equal(m.predict(X, batch_size=3), batch)


def test_change_of_simd_path_repacks(data):
    paths = [p for p in ("avx512", "avx2", "scalar") if fastnn._C.simd_supported(p)]
    X, _ = data
    m = _model(widths=(130, 65, 5))
    try:
        for p in paths + paths[::-1]:
            fastnn.set_simd(p)
            np.testing.assert_array_equal(m.predict(X), _fresh(m.get_weights(),
                                                               widths=(130, 65, 5)).predict(X),
                                          err_msg=p)
    finally:
        fastnn.set_simd(None)


def test_concurrent_first_predictions_after_a_change(data, rng):
    X, _ = data
    m = _model(widths=(200, 100, 5))
    m.predict(X)
    for round_ in range(3):
        new = [rng.standard_normal(w.shape).astype(np.float32) for w in m.get_weights()]
        m.set_weights(new)
        want = _fresh(new, widths=(200, 100, 5)).predict(X)
        got, start = [None] * 6, threading.Barrier(6)

        def run(i):
            start.wait()
            got[i] = m.predict(X[: 1 + i * 7])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, g in enumerate(got):
            np.testing.assert_array_equal(g, want[: 1 + i * 7], err_msg=f"round {round_} thread {i}")


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "binary_cross_entropy", "mse"])
def test_batches_split_by_rows_over_threads_give_the_same_bits(threads, loss, rng):
    # From 128 rows predict runs row blocks through the whole network in parallel tasks: every
    # row, and the loss's link, as computed alone.
    m = Sequential([Dense(70, "relu"), Dense(33, "relu"), Dense(5)], input_dim=9, seed=0)
    m.compile(loss, "sgd")
    X = rng.standard_normal((301, 9)).astype(np.float32)
    want = np.concatenate([m.predict(X[i:i + 1]) for i in range(len(X))])
    for bs in (1024, 301, 150, 129, 64):
        np.testing.assert_array_equal(m.predict(X, batch_size=bs), want, err_msg=f"batch {bs}")


def test_engine_predict_reports_whether_the_outputs_are_finite(data):
    # model.predict's overflow warning comes from this flag (no NumPy pass over the outputs).
    X, _ = data
    m = Sequential([Dense(4)], input_dim=9, seed=0)
    net = m._inference_net()
    out = np.empty((len(X), 4), np.float32)
    assert net.predict(X, out, 1024) is True
    m.set_weights([np.full((9, 4), 3e38, np.float32), np.zeros(4, np.float32)])
    assert net.predict(np.abs(X) + 1, out, 1024) is False
    with pytest.warns(RuntimeWarning, match="overflowed"):
        m.predict(np.abs(X) + 1)
