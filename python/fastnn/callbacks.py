"""Callbacks: hooks that model.fit calls between epochs, with Keras's names and arguments.

fit calls, in order: ``set_model(model)``, ``set_params(params)``, ``on_train_begin(logs)``, then
per epoch ``on_epoch_begin(epoch, logs)``, ``on_batch_end(batch, logs)`` every few batches (the
engine runs batches in C++ and reports back only now and then), ``on_epoch_end(epoch, logs)``, and
finally ``on_train_end(logs)``. Epochs and batches are 0-based. Epoch ``logs`` hold "loss", metrics,
their "val_" twins and "lr"; batch ``logs`` hold the running means of the epoch so far.

What a callback may use of the model: ``stop_training`` (set True to stop after this epoch),
``get_weights()``, ``set_weights(ws)``, ``save(path)`` and ``optimizer.lr`` (settable).
"""

from __future__ import annotations

import csv
import inspect
import math
import numbers
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TextIO

from fastnn._callback_base import Callback
from fastnn._checks import finite_real, flag, integer, non_negative, verbosity
from fastnn._typing import PathLike
from fastnn.history import History
from fastnn.progress import progress_callback
from fastnn.schedules import Schedule

__all__ = ["Callback", "CallbackList", "LambdaCallback", "EarlyStopping", "ModelCheckpoint",
           "LearningRateScheduler", "ReduceLROnPlateau", "TerminateOnNaN", "CSVLogger",
           "configure_callbacks"]


class LambdaCallback(Callback):
    """A callback made of plain functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``.
    """

    def __init__(self, on_train_begin: Callable[..., Any] | None = None,
                 on_train_end: Callable[..., Any] | None = None,
                 on_epoch_begin: Callable[..., Any] | None = None,
                 on_epoch_end: Callable[..., Any] | None = None,
                 on_batch_end: Callable[..., Any] | None = None) -> None:
        given = {k: v for k, v in locals().items() if k.startswith("on_") and v is not None}
        super().__init__()
        for name, fn in given.items():
            if not callable(fn):
                raise TypeError(f"{name}: expected a function, got {type(fn).__name__}")
            setattr(self, name, fn)  # the instance attribute shadows the no-op method


class CallbackList:
    """The callbacks of one fit call, called in order. The same ``logs`` dict goes to each, so a
    key one callback adds (e.g. "lr") is seen by the ones after it."""

    def __init__(self, callbacks: Iterable[Callback] | None = (), model: Any = None,
                 params: Mapping[str, Any] | None = None) -> None:
        if callbacks is None:
            callbacks = ()
        if isinstance(callbacks, Callback):
            callbacks = (callbacks,)
        try:
            callbacks = list(callbacks)
        except TypeError:
            raise TypeError(f"callbacks: expected a list of fastnn.callbacks.Callback, "
                            f"got {type(callbacks).__name__}") from None
        self.callbacks = [_checked(cb, f"callbacks[{i}]") for i, cb in enumerate(callbacks)]
        self.model = None
        self.params = {}
        if model is not None:
            self.set_model(model)
        if params is not None:
            self.set_params(params)

    def append(self, callback: Callback) -> None:
        self.callbacks.append(_checked(callback, "callback"))
        if self.model is not None:
            callback.set_model(self.model)
        if self.params:
            callback.set_params(self.params)

    def __iter__(self) -> Iterator[Callback]:
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def set_model(self, model: Any) -> None:
        self.model = model
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)
        for cb in self.callbacks:
            cb.set_params(self.params)

    def _each(self, hook: str, args: tuple[Any, ...], logs: dict[str, Any] | None) -> None:
        # One logs dict for all: what a callback adds, the ones after it see.
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._each("on_train_begin", (), logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._each("on_train_end", (), logs)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._each("on_epoch_begin", (epoch,), logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._each("on_epoch_end", (epoch,), logs)

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._each("on_batch_end", (batch,), logs)


def _checked(callback: Any, name: str) -> Callback:
    if not isinstance(callback, Callback):
        raise TypeError(f"{name}: expected a fastnn.callbacks.Callback (subclass it for your "
                        f"own), got {type(callback).__name__}")
    return callback


def configure_callbacks(callbacks: Iterable[Callback] | None, model: Any,
                        params: Mapping[str, Any],
                        verbose: int = 1, history: History | None = None,
                        stream: TextIO | None = None) -> tuple[CallbackList, History]:
    """The CallbackList fit uses: the user's callbacks, then the History (so it records keys the
    user's callbacks add, such as "lr"), then the progress printer for ``verbose`` (last, so it
    prints the final logs). Returns (callback_list, history)."""
    cbs = CallbackList(callbacks)
    history = History() if history is None else history
    cbs.append(history)
    progress = progress_callback(verbose, stream=stream)
    if progress is not None:
        cbs.append(progress)
    cbs.set_model(model)
    cbs.set_params(params)
    return cbs, history


# --- monitoring helpers shared by EarlyStopping, ModelCheckpoint and ReduceLROnPlateau ----------

# Quantities that improve upwards; anything else (losses, errors) improves downwards.
_MAX_WORDS = ("acc", "auc", "precision", "recall", "f1", "r2")


def _resolve_mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
    if not isinstance(monitor, str):
        raise TypeError(f"monitor: expected a log key such as 'val_loss', "
                        f"got {type(monitor).__name__}")
    if mode == "auto":
        name = monitor[4:] if monitor.startswith("val_") else monitor
        mode = "max" if any(w in name for w in _MAX_WORDS) else "min"
    return mode


def _monitor_value(logs: dict[str, Any] | None, monitor: str, who: str) -> float | None:
    """logs[monitor] as a float, or None with a warning naming the keys there are (as Keras)."""
    logs = logs or {}
    value = logs.get(monitor)
    if value is None:
        warnings.warn(f"{who} is conditioned on {monitor!r}, which is not in the logs; "
                      f"available keys: {sorted(logs)}", RuntimeWarning, stacklevel=3)
        return None
    return float(value)


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving (Keras semantics).

    An epoch improves when it beats the best so far by more than ``min_delta``: in mode "min"
    ``current + min_delta < best``, in mode "max" ``current - min_delta > best`` (``min_delta``'s
    sign is ignored; the mode sets it). Every epoch adds 1 to ``wait``; an improving epoch resets it
    to 0, and once ``wait >= patience`` a non-improving epoch sets ``model.stop_training``. With a
    ``baseline``, an improving epoch only resets ``wait`` when it also beats the baseline, so
    training stops at the first non-improving epoch after ``patience`` epochs short of it.
    ``restore_best_weights`` puts back the weights of the best epoch at the end of training.
    Epochs before ``start_from_epoch`` are ignored (warm-up). ``stopped_epoch``, ``best_epoch``
    are 0-based.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0) -> None:
        super().__init__()
        self.mode = _resolve_mode(mode, monitor)
        self.monitor = monitor
        self.min_delta = abs(finite_real(min_delta, "min_delta"))
        self.patience = integer(patience, "patience", 0)
        self.verbose = verbosity(verbose)
        self.baseline = None if baseline is None else finite_real(baseline, "baseline")
        self.restore_best_weights = flag(restore_best_weights, "restore_best_weights")
        self.start_from_epoch = integer(start_from_epoch, "start_from_epoch", 0)
        self._reset()

    def _reset(self) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_epoch = 0
        self.best_weights = None

    def _is_improvement(self, value: float, reference: float | None) -> bool:
        if reference is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._reset()  # the same instance may serve several fit calls

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        current = _monitor_value(logs, self.monitor, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # Nothing better seen yet: the current weights are the best there are.
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (``model.save``) at the end of each epoch, or only when ``monitor`` improves
    with ``save_best_only``.

    filepath may hold ``str.format`` fields filled from the epoch number (counted from 1, as Keras)
    and the logs: ``"ckpt-{epoch:02d}-{val_loss:.3f}.fastnn"``. Missing folders are created.
    """

    def __init__(self, filepath: PathLike, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, mode: str = "auto",
                 initial_value_threshold: float | None = None) -> None:
        super().__init__()
        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"filepath: expected a path string, got {type(filepath).__name__}")
        self.filepath = os.fspath(filepath)
        self.mode = _resolve_mode(mode, monitor)
        self.monitor = monitor
        self.verbose = verbosity(verbose)
        self.save_best_only = flag(save_best_only, "save_best_only")
        self.initial_value_threshold = (None if initial_value_threshold is None else
                                        finite_real(initial_value_threshold,
                                                    "initial_value_threshold"))
        self._reset()

    def _reset(self) -> None:
        if self.initial_value_threshold is not None:
            self.best = self.initial_value_threshold
        else:
            self.best = math.inf if self.mode == "min" else -math.inf
        self.last_saved = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._reset()

    def _path(self, epoch: int, logs: dict[str, Any]) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as e:
            raise KeyError(f"filepath: {self.filepath!r} names {e.args[0]!r}, which is not in the "
                           f"logs; available keys: {['epoch'] + sorted(logs)}") from None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        path = self._path(epoch, logs)
        if self.save_best_only:
            current = _monitor_value(logs, self.monitor, "ModelCheckpoint")
            if current is None:
                return
            better = current < self.best if self.mode == "min" else current > self.best
            if not better:  # NaN never counts as better
                if self.verbose:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
        elif self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self.model.save(path)
        self.last_saved = path


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch.

    schedule: ``schedule(epoch, lr) -> new_lr`` (epoch 0-based, lr the current rate), or Keras 1's
    ``schedule(epoch) -> new_lr``, or a fastnn.optim schedule counting epochs (evaluated at the
    learning rate the optimizer had when training began)."""

    def __init__(self, schedule: Schedule | Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        if isinstance(schedule, Schedule):
            if schedule.per != "epoch":
                raise ValueError(f"schedule: LearningRateScheduler steps per epoch, got a "
                                 f"schedule with per={schedule.per!r}; give it to the optimizer "
                                 f"instead (optimizer.schedule)")
            self._arity = "base"
        elif callable(schedule):
            self._arity = _positional_arity(schedule)
        else:
            raise TypeError(f"schedule: expected a function (epoch, lr) -> lr or a fastnn.optim "
                            f"schedule, got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbosity(verbose)
        self._base_lr = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._base_lr = float(self.model.optimizer.lr)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        optimizer = self.model.optimizer
        if self._arity == "base":
            base = self._base_lr if self._base_lr is not None else float(optimizer.lr)
            lr = self.schedule(base, epoch)
        elif self._arity == 1:
            lr = self.schedule(epoch)
        else:
            lr = self.schedule(epoch, float(optimizer.lr))
        lr = finite_real(lr, "schedule(epoch, lr)")
        if lr < 0:
            raise ValueError(f"schedule(epoch, lr): expected a learning rate >= 0, got {lr}")
        optimizer.lr = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.lr)


def _positional_arity(fn: Callable[..., Any]) -> int:
    """1 if fn takes just the epoch, else 2 (Keras 2's (epoch, lr)); 2 when it cannot be told."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 2
    return 1 if len(positional) == 1 else 2


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved (by more than
    ``min_delta``) for ``patience`` epochs, then wait ``cooldown`` epochs before watching again;
    never below ``min_lr`` (Keras semantics)."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0,
                 min_lr: float = 0.0) -> None:
        super().__init__()
        self.mode = _resolve_mode(mode, monitor)
        self.monitor = monitor
        factor = finite_real(factor, "factor")
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor: expected a number in (0, 1) (it multiplies the rate), "
                             f"got {factor}")
        self.factor = factor
        self.patience = integer(patience, "patience", 0)
        self.verbose = verbosity(verbose)
        self.min_delta = abs(finite_real(min_delta, "min_delta"))
        self.cooldown = integer(cooldown, "cooldown", 0)
        self.min_lr = non_negative(min_lr, "min_lr")
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def _better(self, current: float) -> bool:
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = {} if logs is None else logs
        optimizer = self.model.optimizer
        logs["lr"] = float(optimizer.lr)  # the rate this epoch ran with
        current = _monitor_value(logs, self.monitor, "ReduceLROnPlateau")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(current):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.lr)
                if old_lr > self.min_lr:
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.lr = new_lr
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class TerminateOnNaN(Callback):
    """Stop training as soon as the loss is NaN or infinite (checked whenever logs arrive)."""

    def _check(self, where: str, logs: dict[str, Any] | None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            warnings.warn(f"TerminateOnNaN: invalid loss {float(loss)} at {where}, "
                          f"terminating training", RuntimeWarning, stacklevel=3)
            self.model.stop_training = True

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._check(f"batch {batch}", logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._check(f"epoch {epoch + 1}", logs)


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` (0-based, as Keras) then the logs' keys, sorted.

    append=True continues an existing file, reusing its header's columns. A key missing in an
    epoch is written as "NA"; keys that first appear after the header are left out."""

    def __init__(self, filename: PathLike, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"filename: expected a path string, got {type(filename).__name__}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator: expected a single character, got {separator!r}")
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = flag(append, "append")
        self.keys = None
        self._file = None
        self._writer = None

    def __getstate__(self) -> dict[str, Any]:
        # An open file does not pickle; a copy reopens it when it next writes (as a callback used
        # without on_train_begin does).
        state = dict(self.__dict__)
        state["_file"] = state["_writer"] = None
        return state

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.keys = None
        self._writer = None
        existing = None
        if self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0:
            with open(self.filename, newline="") as f:
                existing = next(csv.reader(f, delimiter=self.separator), None)
        if existing and existing[0] == "epoch":
            self.keys = existing[1:]
        self._needs_header = existing is None
        self._file = open(self.filename, "a" if self.append else "w", newline="")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self._file is None:  # used without on_train_begin (a hand-driven loop)
            self.on_train_begin()
        if self.keys is None:
            self.keys = sorted(logs)
        if self._writer is None:
            self._writer = csv.writer(self._file, delimiter=self.separator)
            if self._needs_header:
                self._writer.writerow(["epoch"] + self.keys)
        self._writer.writerow([epoch] + [_csv_value(logs.get(k, "NA")) for k in self.keys])
        self._file.flush()  # a run that crashes later still leaves its rows on disk

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._writer = None


def _csv_value(value: Any) -> Any:
    # NumPy 2 scalars repr as "np.float32(0.5)"; write the plain number, full precision.
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return value
