"""fastnn.callbacks, fastnn.history and fastnn.progress, driven by a fake model and a fake fit loop
(the real model is not needed: callbacks only use the small interface below)."""

import csv
import io
import math
import os
import sys
import types

import numpy as np
import pytest

from fastnn import callbacks as C
from fastnn import optim
from fastnn.history import History
from fastnn.progress import EpochLogger, ProgressBar, format_logs, progress_callback


class FakeModel:
    """The interface callbacks rely on: stop_training, get/set_weights, optimizer.lr, save."""

    def __init__(self, lr=0.1):
        self.stop_training = False
        self.weights = [np.zeros((2, 2)), np.zeros(2)]
        self.optimizer = optim.SGD(lr)
        self.saved = []
        self.history = History()

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, ws):
        self.weights = [np.array(w, copy=True) for w in ws]

    def save(self, path):
        with open(path, "w") as f:
            f.write(f"weights {self.weights[1][0]}\n")
        self.saved.append(path)


def fit(model, callbacks, epoch_logs, steps=0, params=None):
    """A fit loop as the real one calls the hooks. After epoch e the weights are all e, so a test
    can tell which epoch's weights a callback restored. Returns the epochs run."""
    cbs = C.CallbackList(callbacks, model=model,
                         params=params or {"epochs": len(epoch_logs), "steps": steps})
    model.stop_training = False
    cbs.on_train_begin()
    ran = []
    for epoch, logs in enumerate(epoch_logs):
        cbs.on_epoch_begin(epoch)
        model.weights = [np.full_like(w, epoch) for w in model.weights]
        for b in range(steps):
            cbs.on_batch_end(b, {"loss": logs.get("loss", 1.0)})
        cbs.on_epoch_end(epoch, dict(logs))
        ran.append(epoch)
        if model.stop_training:
            break
    cbs.on_train_end()
    return ran


def val(*values, key="val_loss"):
    return [{"loss": 1.0, key: v} for v in values]


# --- Callback / CallbackList ----------------------------------------------------------------

def test_user_callback_hooks_order():
    calls = []

    class Recorder(C.Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(f"begin{epoch}")

        def on_batch_end(self, batch, logs=None):
            calls.append(f"batch{batch}")

        def on_epoch_end(self, epoch, logs=None):
            calls.append(f"end{epoch}:{logs['loss']}")

        def on_train_end(self, logs=None):
            calls.append("train_end")

    rec = Recorder()
    model = FakeModel()
    fit(model, [rec], [{"loss": 1.0}, {"loss": 2.0}], steps=1)
    assert calls == ["train_begin", "begin0", "batch0", "end0:1.0", "begin1", "batch0",
                     "end1:2.0", "train_end"]
    assert rec.model is model and rec.params["epochs"] == 2


def test_callback_without_super_init_still_works():
    class Lazy(C.Callback):
        def __init__(self):  # forgets super().__init__(), as user code often does
            self.seen = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append(epoch)

    cb = Lazy()
    assert dict(cb.params) == {}
    fit(FakeModel(), [cb], val(1, 2))
    assert cb.seen == [0, 1]


def test_lambda_callback_and_stop_training():
    seen = []
    stopper = C.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(epoch) or (
            setattr(model, "stop_training", True) if epoch == 1 else None))
    model = FakeModel()
    assert fit(model, [stopper], val(1, 1, 1, 1)) == [0, 1]
    with pytest.raises(TypeError, match="on_epoch_end"):
        C.LambdaCallback(on_epoch_end=3)


def test_callback_list_checks_types():
    with pytest.raises(TypeError, match=r"callbacks\[1\]"):
        C.CallbackList([C.TerminateOnNaN(), object()])
    with pytest.raises(TypeError, match="callbacks"):
        C.CallbackList(5)
    assert len(C.CallbackList(None)) == 0
    assert len(C.CallbackList(C.TerminateOnNaN())) == 1


def test_logs_added_by_a_callback_reach_later_ones():
    model = FakeModel(lr=0.5)
    hist = History()
    fit(model, [C.ReduceLROnPlateau(patience=100), hist], val(1.0, 0.9))
    assert hist.history["lr"] == [0.5, 0.5]


def test_configure_callbacks_orders_history_then_progress():
    out = io.StringIO()
    user = C.TerminateOnNaN()
    cbs, hist = C.configure_callbacks([user], FakeModel(), {"epochs": 2, "steps": 3}, verbose=2,
                                      stream=out)
    assert cbs.callbacks[0] is user and cbs.callbacks[1] is hist
    assert isinstance(cbs.callbacks[2], EpochLogger)
    assert hist.params["steps"] == 3 and hist.model is not None
    cbs0, _ = C.configure_callbacks([], FakeModel(), {}, verbose=0)
    assert len(cbs0) == 1  # just the History


# --- EarlyStopping --------------------------------------------------------------------------

def test_early_stopping_patience():
    model = FakeModel()
    es = C.EarlyStopping(patience=2)
    ran = fit(model, [es], val(1.0, 0.9, 0.95, 0.96, 0.5, 0.4))
    # best at epoch 1; epochs 2 and 3 do not improve -> stop after epoch 3
    assert ran == [0, 1, 2, 3]
    assert es.stopped_epoch == 3 and es.best == 0.9 and es.best_epoch == 1


def test_early_stopping_patience_zero_never_stops_on_first_epoch():
    es = C.EarlyStopping(patience=0)
    assert fit(FakeModel(), [es], val(1.0, 1.1, 0.5)) == [0, 1]


def test_early_stopping_min_delta_sign_and_mode():
    # improvements of 0.01 are below min_delta=0.05: none counts
    for delta in (0.05, -0.05):  # the sign is ignored, as Keras's abs()
        es = C.EarlyStopping(min_delta=delta, patience=2)
        assert fit(FakeModel(), [es], val(1.0, 0.99, 0.98, 0.97, 0.96)) == [0, 1, 2]
    # in max mode (auto for accuracy) a rise beyond min_delta is an improvement
    es = C.EarlyStopping(monitor="val_accuracy", min_delta=0.05, patience=1)
    assert es.mode == "max"
    ran = fit(FakeModel(), [es], val(0.5, 0.6, 0.7, 0.72, 0.9, key="val_accuracy"))
    assert ran == [0, 1, 2, 3] and es.best == 0.7
    es = C.EarlyStopping(monitor="val_loss", mode="max", patience=1)
    assert fit(FakeModel(), [es], val(1.0, 0.5, 2.0)) == [0, 1]


def test_early_stopping_auto_modes():
    assert C.EarlyStopping(monitor="loss").mode == "min"
    assert C.EarlyStopping(monitor="val_mse").mode == "min"
    assert C.EarlyStopping(monitor="accuracy").mode == "max"
    assert C.EarlyStopping(monitor="val_auc").mode == "max"
    with pytest.raises(ValueError, match="mode"):
        C.EarlyStopping(mode="down")


def test_early_stopping_baseline():
    # improving, but never below the baseline 0.5: the wait keeps growing, and the first
    # non-improving epoch after `patience` stops training
    es = C.EarlyStopping(patience=2, baseline=0.5)
    assert fit(FakeModel(), [es], val(0.9, 0.8, 0.7, 0.75, 0.6, 0.55)) == [0, 1, 2, 3]
    # beating the baseline resets the wait as usual
    es = C.EarlyStopping(patience=2, baseline=0.5)
    assert fit(FakeModel(), [es], val(0.4, 0.45, 0.46, 0.3)) == [0, 1, 2]
    es = C.EarlyStopping(patience=2, baseline=0.5)
    assert fit(FakeModel(), [es], val(0.4, 0.3, 0.45, 0.2, 0.1)) == [0, 1, 2, 3, 4]


def test_early_stopping_restore_best_weights():
    model = FakeModel()
    es = C.EarlyStopping(patience=2, restore_best_weights=True)
    fit(model, [es], val(1.0, 0.5, 0.7, 0.8, 0.1))
    assert es.best_epoch == 1
    assert all((w == 1).all() for w in model.weights)
    # restored at the end even when training ran to the last epoch (Keras 3)
    model = FakeModel()
    fit(model, [C.EarlyStopping(patience=5, restore_best_weights=True)], val(1.0, 0.2, 0.7))
    assert all((w == 1).all() for w in model.weights)
    # without the option the last weights stay
    model = FakeModel()
    fit(model, [C.EarlyStopping(patience=1)], val(1.0, 0.5, 0.7, 0.8))
    assert all((w == 2).all() for w in model.weights)


def test_early_stopping_start_from_epoch_and_reuse():
    es = C.EarlyStopping(patience=1, start_from_epoch=3)
    assert fit(FakeModel(), [es], val(1.0, 2.0, 3.0, 4.0, 5.0, 6.0)) == [0, 1, 2, 3, 4]
    # a second fit with the same instance starts from scratch
    assert fit(FakeModel(), [es], val(9.0, 9.5, 10.0, 11.0, 12.0, 13.0)) == [0, 1, 2, 3, 4]
    assert es.best == 9.0 or es.best == 11.0


def test_early_stopping_missing_key_warns_with_available_keys():
    es = C.EarlyStopping(monitor="val_loss", patience=0)
    with pytest.warns(RuntimeWarning, match=r"'val_loss'.*\['accuracy', 'loss'\]"):
        ran = fit(FakeModel(), [es], [{"loss": 1.0, "accuracy": 0.5}] * 3)
    assert ran == [0, 1, 2]


@pytest.mark.parametrize("kw,exc", [
    (dict(patience=-1), ValueError), (dict(patience=1.5), TypeError),
    (dict(min_delta=float("nan")), ValueError), (dict(baseline="x"), TypeError),
    (dict(monitor=3), TypeError), (dict(verbose=5), ValueError),
])
def test_early_stopping_bad_arguments(kw, exc):
    with pytest.raises(exc):
        C.EarlyStopping(**kw)


def test_early_stopping_verbose_prints(capsys):
    fit(FakeModel(), [C.EarlyStopping(patience=1, verbose=1, restore_best_weights=True)],
        val(1.0, 2.0, 3.0))
    out = capsys.readouterr().out
    assert "Epoch 2: early stopping" in out and "best epoch: 1" in out
    fit(FakeModel(), [C.EarlyStopping(patience=1)], val(1.0, 2.0, 3.0))
    assert capsys.readouterr().out == ""


# --- ModelCheckpoint ------------------------------------------------------------------------

def test_checkpoint_every_epoch_with_formatted_names(tmp_path):
    model = FakeModel()
    pattern = str(tmp_path / "sub" / "m-{epoch:02d}-{val_loss:.3f}.fastnn")
    ck = C.ModelCheckpoint(pattern)
    fit(model, [ck], val(0.5, 0.25))
    assert [os.path.basename(p) for p in model.saved] == ["m-01-0.500.fastnn",
                                                         "m-02-0.250.fastnn"]
    assert all(os.path.exists(p) for p in model.saved)


def test_checkpoint_save_best_only(tmp_path):
    model = FakeModel()
    ck = C.ModelCheckpoint(str(tmp_path / "e{epoch}.fastnn"), save_best_only=True)
    fit(model, [ck], val(0.5, 0.7, 0.4, float("nan"), 0.4, 0.3))
    assert [os.path.basename(p) for p in model.saved] == ["e1.fastnn", "e3.fastnn", "e6.fastnn"]
    # max mode, with an initial threshold the first epoch must beat
    model = FakeModel()
    ck = C.ModelCheckpoint(str(tmp_path / "best.fastnn"), monitor="val_accuracy",
                           save_best_only=True, initial_value_threshold=0.6)
    fit(model, [ck], val(0.5, 0.7, 0.65, key="val_accuracy"))
    assert len(model.saved) == 1 and ck.best == 0.7
    assert open(tmp_path / "best.fastnn").read() == "weights 1.0\n"


def test_checkpoint_missing_keys(tmp_path):
    model = FakeModel()
    ck = C.ModelCheckpoint(str(tmp_path / "m.fastnn"), save_best_only=True)
    with pytest.warns(RuntimeWarning, match="available keys"):
        fit(model, [ck], [{"loss": 1.0}])
    assert model.saved == []
    ck = C.ModelCheckpoint(str(tmp_path / "m-{val_acc}.fastnn"))
    with pytest.raises(KeyError, match="val_acc"):
        fit(model, [ck], [{"loss": 1.0}])
    with pytest.raises(TypeError, match="filepath"):
        C.ModelCheckpoint(3)


# --- LearningRateScheduler ------------------------------------------------------------------

def test_lr_scheduler_two_and_one_argument_forms():
    model = FakeModel(lr=1.0)
    hist = History()
    sched = C.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch > 0 else lr)
    fit(model, [sched, hist], val(1, 1, 1))
    assert hist.history["lr"] == [1.0, 0.5, 0.25]
    assert model.optimizer.lr == 0.25
    model = FakeModel(lr=1.0)
    fit(model, [C.LearningRateScheduler(lambda epoch: 0.1 * (epoch + 1))], val(1, 1, 1))
    assert model.optimizer.lr == pytest.approx(0.3)


def test_lr_scheduler_accepts_a_fastnn_schedule():
    model = FakeModel(lr=0.8)
    hist = History()
    fit(model, [C.LearningRateScheduler(optim.StepLR(2, gamma=0.5)), hist], val(*[1] * 5))
    assert hist.history["lr"] == [0.8, 0.8, 0.4, 0.4, 0.2]
    with pytest.raises(ValueError, match="per"):
        C.LearningRateScheduler(optim.StepLR(2, per="step"))


def test_lr_scheduler_bad_values(capsys):
    with pytest.raises(TypeError, match="schedule"):
        C.LearningRateScheduler(0.1)
    with pytest.raises(ValueError, match="finite"):
        fit(FakeModel(), [C.LearningRateScheduler(lambda e, lr: float("nan"))], val(1))
    with pytest.raises(ValueError, match=">= 0"):
        fit(FakeModel(), [C.LearningRateScheduler(lambda e, lr: -1.0)], val(1))
    with pytest.raises(TypeError, match="real number"):
        fit(FakeModel(), [C.LearningRateScheduler(lambda e, lr: "0.1")], val(1))
    fit(FakeModel(), [C.LearningRateScheduler(lambda e, lr: 0.01, verbose=1)], val(1))
    assert "setting learning rate to 0.01" in capsys.readouterr().out


# --- ReduceLROnPlateau ----------------------------------------------------------------------

def test_reduce_lr_on_plateau_patience_cooldown_min_lr():
    model = FakeModel(lr=1.0)
    hist = History()
    cb = C.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    # best 1.0 at epoch 0; 1,2 no improvement -> reduce after epoch 2 (lr 0.5). As in Keras the
    # cooldown counter is decremented before the check, so cooldown=1 only zeroes the wait at
    # epoch 3, which then counts: 3,4 -> reduce after 4 (0.25); 5,6 -> 0.125, floored at 0.2.
    # The "lr" logged is the rate the epoch ran with.
    fit(model, [cb, hist], val(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0))
    assert hist.history["lr"] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2]
    assert model.optimizer.lr == 0.2
    # a longer cooldown holds the wait at 0 for its epochs
    model = FakeModel(lr=1.0)
    hist = History()
    cb = C.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2)
    fit(model, [cb, hist], val(1.0, 1.0, 1.0, 1.0, 1.0, 1.0))
    # reduce after 1; cooldown: epoch 2 skipped, epoch 3 counts (wait 1) -> reduce after 3
    assert hist.history["lr"] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_reduce_lr_min_delta_and_max_mode():
    model = FakeModel(lr=1.0)
    # improvements of 5e-5 are below min_delta=1e-4 -> plateau
    fit(model, [C.ReduceLROnPlateau(patience=2)], val(1.0, 0.99995, 0.99991))
    assert model.optimizer.lr == pytest.approx(0.1)
    model = FakeModel(lr=1.0)
    fit(model, [C.ReduceLROnPlateau(patience=2)], val(1.0, 0.9998, 0.9996))
    assert model.optimizer.lr == 1.0
    model = FakeModel(lr=1.0)
    fit(model, [C.ReduceLROnPlateau(monitor="val_accuracy", patience=1)],
        val(0.5, 0.6, 0.7, key="val_accuracy"))
    assert model.optimizer.lr == 1.0


def test_reduce_lr_bad_arguments_and_missing_key():
    with pytest.raises(ValueError, match="factor"):
        C.ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="min_lr"):
        C.ReduceLROnPlateau(min_lr=-1)
    with pytest.raises(TypeError, match="cooldown"):
        C.ReduceLROnPlateau(cooldown=0.5)
    with pytest.warns(RuntimeWarning, match="ReduceLROnPlateau.*val_loss.*available keys"):
        fit(FakeModel(), [C.ReduceLROnPlateau()], [{"loss": 1.0}])


# --- TerminateOnNaN -------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), np.float32("nan")])
def test_terminate_on_nan(bad):
    model = FakeModel()
    with pytest.warns(RuntimeWarning, match="invalid loss"):
        ran = fit(model, [C.TerminateOnNaN()], [{"loss": 1.0}, {"loss": bad}, {"loss": 1.0}],
                  steps=2)
    assert ran == [0, 1]
    assert fit(FakeModel(), [C.TerminateOnNaN()], [{"loss": 1.0}] * 3, steps=1) == [0, 1, 2]


# --- CSVLogger ------------------------------------------------------------------------------

def read_csv(path, sep=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


def test_csv_logger_writes_and_appends(tmp_path):
    path = tmp_path / "log.csv"
    logs = [{"loss": np.float32(0.5), "val_loss": 0.75, "accuracy": 1}, {"loss": 0.25}]
    fit(FakeModel(), [C.CSVLogger(path)], logs)
    rows = read_csv(path)
    assert rows == [["epoch", "accuracy", "loss", "val_loss"], ["0", "1", "0.5", "0.75"],
                    ["1", "NA", "0.25", "NA"]]
    # append continues under the existing header, in its column order
    fit(FakeModel(), [C.CSVLogger(str(path), append=True)], [{"val_loss": 0.1, "loss": 0.2}])
    assert read_csv(path)[-1] == ["0", "NA", "0.2", "0.1"] and len(read_csv(path)) == 4
    # without append the file starts over
    fit(FakeModel(), [C.CSVLogger(path, separator=";")], [{"loss": 0.125}])
    assert read_csv(path, ";") == [["epoch", "loss"], ["0", "0.125"]]


def test_csv_logger_bad_arguments():
    with pytest.raises(ValueError, match="separator"):
        C.CSVLogger("x.csv", separator=";;")
    with pytest.raises(TypeError, match="filename"):
        C.CSVLogger(None)


# --- History --------------------------------------------------------------------------------

def test_history_records_and_pads():
    h = History(params={"epochs": 3})
    fit(FakeModel(), [h], [{"loss": np.float64(1.0)}, {"loss": 0.5, "val_loss": 0.7},
                           {"val_loss": 0.6}])
    assert h.epoch == [0, 1, 2]
    assert h.history["loss"][:2] == [1.0, 0.5] and math.isnan(h.history["loss"][2])
    assert math.isnan(h.history["val_loss"][0]) and h.history["val_loss"][1:] == [0.7, 0.6]
    assert type(h.history["loss"][0]) is float
    assert len(h) == 3 and "val_loss" in repr(h)
    h2 = History({"loss": [1.0]}, [0], {"epochs": 1}, {"device": "cpu"})
    assert h2.diagnostics == {"device": "cpu"} and h2.history == {"loss": [1.0]}


def test_history_plot_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    h = History({"loss": [1.0, 0.5]}, [0, 1])
    with pytest.raises(ImportError, match="pip install matplotlib"):
        h.plot("x.png")


def test_history_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    h = History({"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.5],
                 "accuracy": [0.5, 0.7, 0.8], "lr": [0.1, 0.1, 0.01]}, [0, 1, 2])
    path = tmp_path / "curves.png"
    fig = h.plot(str(path), metrics=["loss", "accuracy"])
    assert len(fig.axes) == 2
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="not recorded"):
        h.plot(metrics=["auc"])


# --- progress -------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def drive(printer, clock, epochs=2, steps=4, batch_size=25, samples=100, dt=0.5):
    printer.set_params({"epochs": epochs, "steps": steps, "batch_size": batch_size,
                        "samples": samples})
    for e in range(epochs):
        printer.on_epoch_begin(e)
        for b in range(steps):
            clock.t += dt
            printer.on_batch_end(b, {"loss": 1.0 / (b + 1), "accuracy": 0.5})
        printer.on_epoch_end(e, {"loss": 0.25, "accuracy": 0.75, "val_loss": 0.5, "lr": 1e-4})


def test_plain_progress_bar_content():
    out, clock = io.StringIO(), FakeClock()
    drive(ProgressBar(stream=out, use_tqdm=False, clock=clock, interactive=True, columns=200),
          clock)
    text = out.getvalue()
    lines = text.split("\n")
    assert len(lines) == 3 and lines[2] == ""  # one finished line per epoch
    # first redraw of epoch 1: batch 1/4, 25 samples in 0.5 s, 3 batches left at 0.5 s each
    first = lines[0].split("\r")[1]
    assert first.startswith("Epoch 1/2 1/4 [=====>")
    assert "loss: 1.0000 - accuracy: 0.5000" in first
    assert "50 samples/s" in first and "ETA 0:02" in first
    # batch 2/4 after 1 s: 0.5 s per batch, 2 left
    assert "2/4" in lines[0].split("\r")[2] and "ETA 0:01" in lines[0].split("\r")[2]
    final = lines[1].split("\r")[-1]
    assert final.startswith("Epoch 2/2 4/4 [====================] - 0:02 - loss: 0.2500")
    assert "val_loss: 0.5000 - lr: 1.000e-04 - 50 samples/s" in final and "ETA" not in final


def test_plain_progress_bar_throttles_redraws():
    out, clock = io.StringIO(), FakeClock()
    drive(ProgressBar(stream=out, use_tqdm=False, clock=clock, min_interval=10.0,
                      interactive=True), clock, epochs=1, steps=50, dt=0.01)
    # first batch, last batch (always drawn) and the epoch's final line
    assert out.getvalue().count("\r") == 3


def test_epoch_logger_line(capsys):
    clock = FakeClock()
    drive(EpochLogger(clock=clock), clock)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "Epoch 1/2 - 2.0s - loss: 0.2500 - accuracy: 0.7500 - val_loss: 0.5000 - lr: 1.000e-04 "
        "- 50 samples/s",
        "Epoch 2/2 - 2.0s - loss: 0.2500 - accuracy: 0.7500 - val_loss: 0.5000 - lr: 1.000e-04 "
        "- 50 samples/s"]


def test_progress_with_tqdm(monkeypatch):
    made = []

    class FakeTqdm:
        def __init__(self, total, desc, file, unit, leave):
            self.total, self.desc, self.n, self.postfix, self.closed = total, desc, 0, None, False
            made.append(self)

        def update(self, k):
            self.n += k

        def set_postfix(self, post, refresh=True):
            self.postfix = dict(post)

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    clock = FakeClock()
    drive(ProgressBar(stream=io.StringIO(), clock=clock, interactive=True), clock, steps=4)
    assert [b.desc for b in made] == ["Epoch 1/2", "Epoch 2/2"]
    assert all(b.n == 4 and b.total == 4 and b.closed for b in made)
    assert made[0].postfix["val_loss"] == "0.5000" and "samples/s" in made[0].postfix["speed"]


def test_tqdm_required_but_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match="pip install tqdm"):
        ProgressBar(use_tqdm=True)
    assert ProgressBar()._tqdm is None  # auto falls back to the plain bar


def test_verbose_levels(capsys):
    assert progress_callback(0) is None
    assert isinstance(progress_callback(1), ProgressBar)
    assert isinstance(progress_callback(2), EpochLogger)
    with pytest.raises(ValueError, match="verbose"):
        progress_callback(3)
    cbs, _ = C.configure_callbacks([], FakeModel(), {"epochs": 1, "steps": 2}, verbose=0)
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    cbs.on_batch_end(0, {"loss": 1.0})
    cbs.on_epoch_end(0, {"loss": 1.0})
    cbs.on_train_end()
    assert capsys.readouterr().out == ""


def test_format_logs_hides_bookkeeping():
    assert format_logs({"loss": 2, "samples": 100, "tag": "x"}) == "loss: 2.0000 - tag: x"


def test_progress_bar_without_params_or_epoch_begin():
    out, clock = io.StringIO(), FakeClock()
    bar = ProgressBar(stream=out, use_tqdm=False, clock=clock, interactive=True)
    clock.t = 1.0
    bar.on_batch_end(0, {"loss": 0.5})
    bar.on_epoch_end(0, {"loss": 0.5})
    lines = out.getvalue().split("\r")
    assert lines[1].startswith("Epoch 1 - loss: 0.5000") and "ETA" not in lines[1]
    assert lines[-1].endswith("\n")


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def long_logs(b):
    return {"loss": 1.0 / (b + 1), "accuracy": 0.5, "val_loss": 0.75, "val_accuracy": 0.25,
            "lr": 1e-4, "mae": 0.125}


def drive_long(printer, clock, epochs=2, steps=30):
    printer.set_params({"epochs": epochs, "steps": steps, "batch_size": 32,
                        "samples": 32 * steps})
    for e in range(epochs):
        printer.on_epoch_begin(e)
        for b in range(steps):
            clock.t += 0.5
            printer.on_batch_end(b, long_logs(b))
        printer.on_epoch_end(e, long_logs(steps))


@pytest.mark.parametrize("how", ["columns=80", "COLUMNS=80"])
def test_bar_fits_an_80_column_terminal(monkeypatch, how):
    monkeypatch.setenv("COLUMNS", "80")  # what shutil.get_terminal_size reads first
    out, clock = Terminal(), FakeClock()
    columns = 80 if how == "columns=80" else None
    drive_long(ProgressBar(stream=out, use_tqdm=False, clock=clock, min_interval=0.0,
                           columns=columns), clock)
    text = out.getvalue()
    # one finished line per epoch; everything else is redrawn in place on that line
    assert text.count("\n") == 2 and text.endswith("\n")
    for line in text.split("\n")[:2]:
        *redraws, final = [seg for seg in line.split("\r") if seg]
        assert len(redraws) == 30  # every batch
        assert max(len(seg) for seg in redraws) <= 79
        assert redraws[0].startswith("Epoch ") and "ETA" in redraws[0]
        # written once, not redrawn: it may wrap, and keeps every figure
        assert final.startswith("Epoch ") and "val_accuracy: 0.2500" in final
        assert final.endswith("samples/s")


def test_bar_on_a_narrow_terminal_cuts_the_title_too():
    out, clock = Terminal(), FakeClock()
    drive_long(ProgressBar(stream=out, use_tqdm=False, clock=clock, columns=20), clock,
               epochs=1, steps=3)
    *redraws, final = [seg for seg in out.getvalue().split("\r") if seg]
    assert redraws and all(len(seg) <= 19 for seg in redraws)


def test_bar_not_on_a_terminal_writes_one_line_per_epoch():
    out, clock = io.StringIO(), FakeClock()
    drive_long(ProgressBar(stream=out, clock=clock, min_interval=0.0), clock, epochs=3)
    lines = out.getvalue().split("\n")
    assert "\r" not in out.getvalue() and len(lines) == 4 and lines[3] == ""
    assert lines[1].startswith("Epoch 2/3 30/30 [====================] - 0:15 - loss:")
    assert "val_accuracy: 0.2500" in lines[1] and "samples/s" in lines[1]  # not cut


def test_bar_rejects_bad_settings():
    with pytest.raises(ValueError, match="interactive"):
        ProgressBar(interactive="yes")
    with pytest.raises(ValueError, match="columns"):
        ProgressBar(columns=1)
