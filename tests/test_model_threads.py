"""One model used from many threads (API.md: threads; README "Threads").

The contract checked here:
- predict / evaluate / get_weights from any number of threads at once give exactly (bit for bit)
  what the same calls give one after another;
- fit takes the model exclusively one slice of batches at a time: a predict, evaluate or
  get_weights from another thread during fit waits for the current slice and sees the weights
  as they are between two slices (after the last update of some slice, or before the first);
- set_weights, compile and fit from another thread while fit runs raise RuntimeError;
- set_weights / compile while other threads predict: each prediction is made with the weights
  before or after the change, never a mix.

These tests also run under the AddressSanitizer and ThreadSanitizer builds (README: "Sanitizer
builds"), where a data race or a use-after-free is reported even when the results happen to be
right; the workloads are kept small for that reason.
"""

import pickle
import threading

import numpy as np
import pytest

from fastnn import Sequential
from fastnn.callbacks import Callback
from fastnn.layers import BatchNorm, Dense, Dropout

THREADS = 4
# Batch sizes 1 and large, row counts that leave partial batches.
CASES = [(1, 1), (7, 1), (33, 16), (3000, 1024), (257, 64), (1, 1024), (2000, 2000)]


def _model(seed=0, compiled=True):
    m = Sequential([Dense(64, "relu"), BatchNorm(), Dropout(0.2), Dense(5, "softmax")],
                   input_dim=6, seed=seed)
    if compiled:
        m.compile("softmax_cross_entropy", "adam", metrics=["accuracy", "top_k_accuracy"])
    return m


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 1] > 0).astype(np.int64)
    return X, y


def _inputs():
    rng = np.random.default_rng(1)
    return [(rng.standard_normal((n, 6)).astype(np.float32), bs) for n, bs in CASES]


def _run_threads(target, n=THREADS):
    """Runs target(i) in n threads started together; re-raises the first error."""
    errors = []
    barrier = threading.Barrier(n)

    def body(i):
        try:
            barrier.wait()
            target(i)
        except BaseException as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _trained():
    m = _model()
    X, y = _data()
    m.fit(X, y, epochs=2, batch_size=32, verbose=0)
    return m


@pytest.mark.parametrize("compiled", [True, False])
def test_concurrent_predict_equals_sequential(compiled):
    m = _trained() if compiled else _model(compiled=False)
    inputs = _inputs()
    expected = [m.predict(X, batch_size=bs) for X, bs in inputs]
    if not compiled:  # the lazily built inference engine, built by the threads themselves
        m = _model(compiled=False)
    results = [[] for _ in range(THREADS)]

    def work(i):
        for r in range(4):
            for k in range(len(inputs)):
                j = (k + i + r) % len(inputs)
                X, bs = inputs[j]
                results[i].append((j, m.predict(X, batch_size=bs)))

    _run_threads(work)
    for per_thread in results:
        assert len(per_thread) == 4 * len(inputs)
        for j, out in per_thread:
            np.testing.assert_array_equal(out, expected[j])


def test_concurrent_evaluate_and_get_weights_equal_sequential():
    m = _trained()
    X, y = _data(3000, seed=3)
    expected = m.evaluate(X, y, batch_size=16)
    weights = m.get_weights()
    got = [[] for _ in range(THREADS)]

    def work(i):
        for _ in range(5):
            got[i].append(m.evaluate(X, y, batch_size=16))
            w = m.get_weights()
            assert all(np.array_equal(a, b) for a, b in zip(w, weights))

    _run_threads(work)
    assert all(r == expected for per_thread in got for r in per_thread)


class _Snapshots(Callback):
    """The weights before training and after every slice of batches (on_batch_end runs in the
    fit thread between two engine calls)."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_train_begin(self, logs=None):
        self.weights.append(self.model.get_weights())

    def on_batch_end(self, batch, logs=None):
        self.weights.append(self.model.get_weights())


def test_predict_during_fit_sees_the_weights_between_two_slices():
    m = _model()
    X, y = _data()
    probe = _inputs()[3][0]
    snaps = _Snapshots()
    seen, weights_seen = [], []
    done = threading.Event()

    def fit(i):
        try:
            m.fit(X, y, epochs=3, batch_size=8, verbose=0, callbacks=[snaps])
        finally:
            done.set()

    def predict(i):
        while True:  # at least once, even if fit were over before this thread starts
            seen.append(m.predict(probe, batch_size=64))
            weights_seen.append(m.get_weights())
            if done.is_set():
                break

    _run_threads(lambda i: (fit if i == 0 else predict)(i), n=3)
    assert len(snaps.weights) > 3 and seen
    # The prediction each snapshot gives, computed afterwards on a copy of the model.
    copy = _model()
    expected = []
    for w in snaps.weights:
        copy.set_weights(w)
        expected.append(copy.predict(probe, batch_size=64))
    for out in seen:
        assert any(np.array_equal(out, e) for e in expected)
    for ws in weights_seen:
        assert any(all(np.array_equal(a, b) for a, b in zip(ws, w)) for w in snaps.weights)


class _CallFromAnotherThread(Callback):
    """Runs each call in a thread of its own while fit is in progress; keeps the exceptions."""

    def __init__(self, calls):
        super().__init__()
        self.calls = calls
        self.errors = {}

    def on_epoch_begin(self, epoch, logs=None):
        for name, call in self.calls.items():
            def body(name=name, call=call):
                try:
                    call()
                except Exception as e:  # noqa: BLE001 -- checked by the test
                    self.errors[name] = e

            t = threading.Thread(target=body)
            t.start()
            t.join()


def test_changing_the_model_during_fit_from_another_thread_raises(tmp_path):
    m = _model()
    X, y = _data(64)
    w = m.get_weights()
    cb = _CallFromAnotherThread({
        "set_weights": lambda: m.set_weights(w),
        "compile": lambda: m.compile("softmax_cross_entropy", "sgd"),
        "fit": lambda: m.fit(X, y, epochs=1, verbose=0),
        # A save or a pickle would mix weights, optimizer state and step of different steps.
        "save": lambda: m.save(str(tmp_path / "m.fastnn")),
        "pickle": lambda: pickle.dumps(m),
        "predict": lambda: m.predict(X),  # allowed: waits for the slice
    })
    m.fit(X, y, epochs=1, batch_size=16, verbose=0, callbacks=[cb])
    assert set(cb.errors) == {"set_weights", "compile", "fit", "save", "pickle"}
    for e in cb.errors.values():
        assert isinstance(e, RuntimeError) and "fit is running in another thread" in str(e)
    # Once fit has returned, the same calls work.
    m.set_weights(w)
    m.fit(X, y, epochs=1, verbose=0)
    pickle.dumps(m)


def test_set_weights_and_compile_while_predicting():
    m = _trained()
    probe = _inputs()[3][0]
    wa = m.get_weights()
    wb = [a * np.float32(0.5) for a in wa]
    expected = []
    for w in (wa, wb):
        m.set_weights(w)
        expected.append(m.predict(probe, batch_size=64))
    m.set_weights(wa)
    seen = []
    done = threading.Event()
    predicting = threading.Event()

    def change(i):
        try:
            predicting.wait(timeout=30)  # changes must meet predictions in flight
            for k in range(24):
                m.set_weights(wb if k % 2 == 0 else wa)
                if k % 4 == 3:  # keeps the weights, replaces the engine
                    m.compile("softmax_cross_entropy", "sgd", metrics=["accuracy"])
        finally:
            done.set()

    def predict(i):
        while not done.is_set():
            seen.append(m.predict(probe, batch_size=64))
            predicting.set()

    _run_threads(lambda i: (change if i == 0 else predict)(i), n=3)
    assert seen
    for out in seen:
        assert any(np.array_equal(out, e) for e in expected)


def test_many_models_in_many_threads_train_as_alone():
    X, y = _data(200)

    def train(seed):
        m = _model(seed=seed)
        m.fit(X, y, epochs=2, batch_size=16, verbose=0)
        return m.get_weights(), m.predict(X[:50], batch_size=8)

    expected = [train(seed) for seed in range(THREADS)]
    got = [None] * THREADS
    _run_threads(lambda i: got.__setitem__(i, train(i)))
    for (we, pe), (wg, pg) in zip(expected, got):
        assert all(np.array_equal(a, b) for a, b in zip(we, wg))
        np.testing.assert_array_equal(pe, pg)


def test_predict_from_threads_with_kernel_threads(threads):
    """Model-level concurrency on top of the kernels' own thread pool (1 and 2 threads)."""
    m = _trained()
    X, bs = _inputs()[3]
    expected = m.predict(X, batch_size=bs)
    _run_threads(lambda i: [np.testing.assert_array_equal(m.predict(X, batch_size=bs), expected)
                            for _ in range(3)])




def test_gpu_model_set_weights_is_whole_for_other_threads(monkeypatch):
    """The GPU model's Python plumbing (on the host stand-in of fastnn._cuda): set_weights
    hands the parameters and the batch-norm buffers to the engine in one call (one change under
    the engine's lock), so predicts in other threads see the weights from before or after it,
    never half of each."""
    import _cuda_standin

    _cuda_standin.install(monkeypatch)
    m = Sequential([Dense(64, "relu"), BatchNorm(), Dense(5, "softmax")], input_dim=6,
                   device="cuda")
    m.compile("softmax_cross_entropy", "adam")
    probe = _inputs()[3][0]
    wa = m.get_weights()
    wb = [a * np.float32(0.5) + np.float32(0.25) for a in wa]
    m.set_weights(wb)
    expected_b = m.predict(probe, batch_size=64)
    m.set_weights(wa)
    expected_a = m.predict(probe, batch_size=64)

    writes, write = [], m._net.write

    def recording_write(**kinds):
        writes.append(sorted(kinds))
        write(**kinds)

    monkeypatch.setattr(m._net, "write", recording_write)
    m.set_weights(wb)
    assert writes == [["buffers", "params"]]

    stop, seen = threading.Event(), []

    def predict_until_stopped():
        while not stop.is_set():
            seen.append(m.predict(probe, batch_size=64))

    t = threading.Thread(target=predict_until_stopped)
    t.start()
    try:
        for i in range(20):
            m.set_weights(wa if i % 2 else wb)
    finally:
        stop.set()
        t.join()
    assert seen
    for p in seen:
        assert np.array_equal(p, expected_a) or np.array_equal(p, expected_b)
