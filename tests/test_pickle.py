"""Pickling and copying models, optimizers, schedules, callbacks and histories.

A model pickles through the bytes `save` writes (never the engine's memory), so a copy is an
independent engine that predicts the same and resumes training exactly as the original does:
same losses, same weights bit for bit, same step."""

import copy
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, optim, schedules
from fastnn.history import History
from fastnn.layers import Activation, BatchNorm, Dense, Dropout
from fastnn.losses import SampledSoftmax

import _cuda_standin

COPIERS = {
    "pickle": lambda m: pickle.loads(pickle.dumps(m)),
    "pickle_protocol0": lambda m: pickle.loads(pickle.dumps(m, protocol=0)),
    "deepcopy": copy.deepcopy,
    "copy": copy.copy,
}


def _data(rng, n=48, d=5, classes=3):
    X = rng.standard_normal((n, d)).astype(np.float32)
    return X, rng.integers(0, classes, n)


def _model(optimizer="adam", device="cpu", **compile_kw):
    m = fastnn.Sequential([Dense(8, "relu", l2=1e-3), BatchNorm(), Dropout(0.25),
                           Dense(6, "tanh"), Activation("elu"), Dense(3)],
                          input_dim=5, seed=7, device=device)
    if optimizer is not None:
        m.compile("softmax_cross_entropy", optimizer, metrics=["accuracy"], **compile_kw)
    return m


def _same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


def _fit(m, X, y, epochs=2):
    return m.fit(X, y, epochs=epochs, batch_size=16, verbose=0).history


def _assert_resumes_identically(original, clone, X, y):
    assert clone._net.step == original._net.step
    _same_weights(original, clone)
    h1, h2 = _fit(original, X, y), _fit(clone, X, y)
    assert h1 == h2
    _same_weights(original, clone)
    assert clone._net.step == original._net.step


OPTIMIZERS = [
    optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
    optim.Adam(amsgrad=True, schedule=optim.Warmup(3, optim.CosineAnnealing(20, per="step"))),
    optim.AdamW(lr=0.01, schedule=optim.StepLR(1, gamma=0.5)),
    optim.Adagrad(initial_accumulator_value=0.1, lr_decay=0.01),
    optim.RMSprop(lr=0.01, momentum=0.5, centered=True),
]


@pytest.mark.parametrize("how", sorted(COPIERS))
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o.kind)
def test_copy_of_a_trained_model_resumes_identically(rng, how, opt):
    X, y = _data(rng)
    m = _model(copy.deepcopy(opt), clipnorm=1.0)
    _fit(m, X, y)
    clone = COPIERS[how](m)
    assert clone is not m and clone._net is not m._net
    assert clone.optimizer == m.optimizer and clone.loss == m.loss
    assert clone.metrics == m.metrics and clone.clipnorm == m.clipnorm
    np.testing.assert_array_equal(clone.predict(X), m.predict(X))
    _assert_resumes_identically(m, clone, X, y)


def test_deepcopy_is_independent(rng):
    X, y = _data(rng)
    m = _model()
    _fit(m, X, y)
    before = m.get_weights()
    clone = copy.deepcopy(m)
    _fit(clone, X, y, epochs=3)
    clone.set_weights([w + 1 for w in clone.get_weights()])
    clone.optimizer.lr = 0.5
    for w, b in zip(m.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    assert m.optimizer.lr == 1e-3
    # And the other way: training the original leaves the copy alone.
    snapshot = clone.get_weights()
    _fit(m, X, y)
    for w, b in zip(clone.get_weights(), snapshot):
        np.testing.assert_array_equal(w, b)


def test_history_and_callbacks_travel_with_the_copy(rng):
    X, y = _data(rng)
    m = _model()
    h = m.fit(X, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25)
    m.stop_training = True
    for how in ("pickle", "deepcopy"):
        clone = COPIERS[how](m)
        assert clone.history is not m.history
        assert clone.history.history == h.history and clone.history.epoch == h.epoch
        assert clone.history.params == h.params
        assert clone.history.model is clone  # the cycle model -> history -> model is kept
        assert clone.stop_training is True
    # copy.copy: a new engine, the same Python-side record.
    shallow = copy.copy(m)
    assert shallow._net is not m._net and shallow.history is m.history


def test_uncompiled_model_pickles(rng):
    X, _ = _data(rng)
    m = _model(optimizer=None)
    clone = pickle.loads(pickle.dumps(m))
    assert clone.loss is None and clone._net is None
    _same_weights(m, clone)
    # Used for inference only (an engine built for predict, still no loss): still uncompiled.
    expected = m.predict(X)
    clone = pickle.loads(pickle.dumps(m))
    assert clone.loss is None
    np.testing.assert_array_equal(clone.predict(X), expected)
    clone.compile("softmax_cross_entropy", "sgd")
    m.compile("softmax_cross_entropy", "sgd")
    _, y = _data(rng)
    _assert_resumes_identically(m, clone, X, y)


def test_compiled_never_fitted_model_pickles(rng):
    X, y = _data(rng)
    m = _model(optim.Adagrad(initial_accumulator_value=0.5))
    clone = pickle.loads(pickle.dumps(m))
    assert clone._net.step == 0
    _assert_resumes_identically(m, clone, X, y)


def test_sampled_softmax_model_pickles(rng):
    X = rng.standard_normal((40, 4)).astype(np.float32)
    y = rng.integers(0, 50, 40)
    m = fastnn.Sequential([Dense(8, "relu"), Dense(50)], input_dim=4, seed=1)
    m.compile(SampledSoftmax(num_sampled=8), "adam")
    _fit(m, X, y)
    clone = pickle.loads(pickle.dumps(m))
    assert clone.sampled.get_config() == m.sampled.get_config()
    _assert_resumes_identically(m, clone, X, y)


def test_diverged_model_still_pickles(rng):
    # Pickle data is trusted: a model whose weights went NaN comes back as it was, unlike a file
    # (fastnn.load refuses it).
    m = _model()
    w = m.get_weights()
    w[0][0, 0] = np.nan
    m._put_weights(w, check_values=False)
    clone = pickle.loads(pickle.dumps(m))
    assert np.isnan(clone.get_weights()[0][0, 0])


def test_joblib_dump_and_load(rng, tmp_path):
    joblib = pytest.importorskip("joblib")
    X, y = _data(rng)
    m = _model()
    _fit(m, X, y)
    joblib.dump(m, tmp_path / "m.joblib")
    clone = joblib.load(tmp_path / "m.joblib")
    _assert_resumes_identically(m, clone, X, y)


def _fit_in_worker(X, y):
    m = _model()
    _fit(m, X, y)
    return m


def test_fitted_model_comes_back_from_a_joblib_worker(rng):
    joblib = pytest.importorskip("joblib")
    X, y = _data(rng)
    models = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(_fit_in_worker)(X, y) for _ in range(2))
    for m in models:
        here = _fit_in_worker(X, y)
        assert isinstance(m, fastnn.Sequential)
        np.testing.assert_array_equal(m.predict(X), here.predict(X))
        _assert_resumes_identically(here, m, X, y)


def test_gpu_model_pickles_through_host_bytes(rng, monkeypatch):
    # The host stand-in for fastnn._cuda (tests/_cuda_standin.py) runs the GPU engine's Python
    # plumbing on the CPU engine: the pickle holds host bytes and comes back a CUDA model.
    _cuda_standin.install(monkeypatch)
    X, y = _data(rng)
    m = _model(device="cuda")
    _fit(m, X, y)
    data = pickle.dumps(m)
    assert b"CudaNetwork" not in data and b"StandIn" not in data
    clone = pickle.loads(data)
    assert clone.device == "cuda:0" and clone._net is not m._net
    _assert_resumes_identically(m, clone, X, y)
    # Its bytes load on the CPU too.
    cpu = fastnn.io.model_from_arrays(fastnn.Sequential,
                                      *fastnn.io.loads_arrays(m.__getstate__()["model"]), "<bytes>")
    _same_weights(m, cpu)


# ---- the description objects -------------------------------------------------------------------

@pytest.mark.parametrize("obj", OPTIMIZERS + [
    schedules.StepLR(3, gamma=0.5), schedules.ExponentialLR(0.9, per="step"),
    schedules.InverseScaling(0.25), schedules.CosineAnnealing(10, eta_min=1e-4),
    schedules.Warmup(5, schedules.StepLR(2, per="step")),
], ids=repr)
def test_optimizers_and_schedules_round_trip(obj):
    for how in ("pickle", "deepcopy", "copy"):
        clone = COPIERS[how](obj)
        assert clone == obj and clone is not obj and repr(clone) == repr(obj)


@pytest.mark.parametrize("make", [
    lambda tmp: callbacks.EarlyStopping(patience=1, restore_best_weights=True),
    lambda tmp: callbacks.ModelCheckpoint(str(tmp / "ck.safetensors")),
    lambda tmp: callbacks.ReduceLROnPlateau(patience=1),
    lambda tmp: callbacks.TerminateOnNaN(),
    lambda tmp: callbacks.CSVLogger(str(tmp / "log.csv")),
    lambda tmp: callbacks.LearningRateScheduler(schedules.StepLR(1, gamma=0.5)),
], ids=["EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau", "TerminateOnNaN", "CSVLogger",
        "LearningRateScheduler"])
def test_callbacks_pickle_after_use(rng, tmp_path, make):
    X, y = _data(rng)
    m = _model()
    cb = make(tmp_path)
    m.fit(X, y, epochs=3, batch_size=16, verbose=0, validation_split=0.25, callbacks=[cb])
    for how in ("pickle", "deepcopy"):
        clone = COPIERS[how](cb)
        assert type(clone) is type(cb)
        assert clone.model is not m and isinstance(clone.model, fastnn.Sequential)
        # Usable again: a new fit with the copy on the copy's model.
        clone.model.fit(X, y, epochs=1, verbose=0, validation_split=0.25, callbacks=[clone])


def test_csv_logger_pickles_while_its_file_is_open(tmp_path):
    cb = callbacks.CSVLogger(str(tmp_path / "log.csv"))
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 1.0})
    clone = pickle.loads(pickle.dumps(cb))
    cb.on_train_end()
    assert clone.filename == cb.filename and clone._file is None


def test_history_round_trips():
    h = History({"loss": [1.0, 0.5], "val_loss": [1.2, float("nan")]}, [0, 1], {"epochs": 2},
                {"dense_0": {"grad_norm": [0.1, 0.2]}})
    for how in ("pickle", "deepcopy", "copy"):
        clone = COPIERS[how](h)
        assert clone.epoch == h.epoch and clone.params == h.params
        assert clone.diagnostics == h.diagnostics
        assert clone.history["loss"] == h.history["loss"]
        assert np.isnan(clone.history["val_loss"][1])


def test_real_gpu_model_pickles_and_resumes(rng):
    # The same on the GPU engine itself, where there is one (CUDA graphs, fused kernels).
    from gpu import REAL_GPU

    if not REAL_GPU:
        pytest.skip("needs a usable CUDA device and fastnn built with CUDA")
    X, y = _data(rng)
    m = _model(device="cuda")
    _fit(m, X, y)
    clone = pickle.loads(pickle.dumps(m))
    assert clone.device == m.device and clone.precision == m.precision
    _assert_resumes_identically(m, clone, X, y)
