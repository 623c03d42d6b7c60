"""Progress output of model.fit: a bar per epoch (verbose=1) or a line per epoch (verbose=2).

Both are callbacks. They read from ``params``: "epochs", "steps" (batches per epoch), and for the
samples/s figure "samples" (per epoch) and "batch_size". Batch logs may carry "samples" (samples
done so far this epoch) when the engine knows better than ``(batch + 1) * batch_size``.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from fastnn._checks import verbosity
from fastnn._callback_base import Callback

__all__ = ["ProgressBar", "EpochLogger", "progress_callback", "format_logs"]

# Keys of batch/epoch logs that are bookkeeping, not quantities to show.
_HIDDEN = ("samples", "size", "batch")


def _number(value: Any) -> str:
    # Keras shows 4 decimals; tiny values (learning rates, small losses) would print as 0.0000.
    value = float(value)
    if value != 0.0 and abs(value) < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4f}"


def _shown(logs: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, value as text) of the logs worth showing, in their order."""
    for key, value in logs.items():
        if key in _HIDDEN:
            continue
        try:
            yield key, _number(value)
        except (TypeError, ValueError):
            yield key, str(value)


def format_logs(logs: Mapping[str, Any]) -> str:
    """``"loss: 0.4321 - accuracy: 0.8812"``, in the logs' order."""
    return " - ".join(f"{key}: {value}" for key, value in _shown(logs))


def _duration(seconds: float) -> str:
    """0:07, 12:03, 1:02:03."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _rate(samples: int | None, seconds: float) -> str | None:
    return f"{samples / seconds:,.0f} samples/s" if seconds > 0 and samples else None


class _Timed(Callback):
    """Shared by both printers: the stream, the clock, and samples done so far."""

    def __init__(self, stream: TextIO | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        super().__init__()
        self.stream = stream
        self.clock = time.perf_counter if clock is None else clock
        self._epoch_start = None

    def _out(self) -> TextIO:
        # Looked up at write time, so pytest's capsys and redirect_stdout see the output.
        return sys.stdout if self.stream is None else self.stream

    def _write(self, text: str) -> None:
        out = self._out()
        out.write(text)
        out.flush()

    def _samples_done(self, batch: int | None, logs: dict[str, Any] | None) -> int | None:
        if logs and "samples" in logs:
            return int(logs["samples"])
        batch_size = self.params.get("batch_size")
        if not batch_size:
            return None
        done = (batch + 1) * batch_size
        total = self.params.get("samples")
        return min(done, total) if total else done

    def _epoch_title(self, epoch: int) -> str:
        epochs = self.params.get("epochs")
        return f"Epoch {epoch + 1}/{epochs}" if epochs else f"Epoch {epoch + 1}"

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_start = self.clock()


class EpochLogger(_Timed):
    """verbose=2: one line at the end of each epoch, e.g.
    ``Epoch 3/10 - 1s - loss: 0.4321 - val_loss: 0.5012 - 52,000 samples/s``."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        elapsed = self.clock() - self._epoch_start if self._epoch_start is not None else 0.0
        steps = self.params.get("steps")
        samples = self.params.get("samples") or (self._samples_done(steps - 1, logs)
                                                  if steps else None)
        parts = [self._epoch_title(epoch), f"{elapsed:.1f}s" if elapsed < 10 else
                 _duration(elapsed), format_logs(logs or {}), _rate(samples, elapsed)]
        self._write(" - ".join(p for p in parts if p) + "\n")


class ProgressBar(_Timed):
    """verbose=1: a bar per epoch with loss, metrics, samples/s and ETA.

    On a terminal the bar is one line, redrawn in place and never wider than the terminal (a
    longer line would wrap, and every redraw would then add a line); the finished epoch's line
    keeps every figure. Written to a file or a pipe
    (interactive=False; None: whether the stream is a terminal), it is one line per epoch.
    use_tqdm: None uses tqdm when it is installed, True requires it, False always draws the plain
    bar (a line rewritten with carriage returns); tqdm only draws on a terminal. min_interval:
    seconds between redraws of the plain bar (the last batch of an epoch is always drawn).
    columns: the terminal's width (None: asked at each epoch with shutil.get_terminal_size)."""

    width = 20

    def __init__(self, stream: TextIO | None = None, use_tqdm: bool | None = None,
                 clock: Callable[[], float] | None = None, min_interval: float = 0.1,
                 interactive: bool | None = None, columns: int | None = None) -> None:
        super().__init__(stream, clock)
        if interactive not in (None, True, False):
            raise ValueError(f"interactive: expected None, True or False, got {interactive!r}")
        if columns is not None and (isinstance(columns, bool) or not isinstance(columns, int)
                                    or columns < 2):
            raise ValueError(f"columns: expected None or an int >= 2, got {columns!r}")
        self.interactive = interactive
        self.columns = columns
        self._live = True
        self._limit = None
        if use_tqdm not in (None, True, False):
            raise ValueError(f"use_tqdm: expected None, True or False, got {use_tqdm!r}")
        self._tqdm = _import_tqdm() if use_tqdm is not False else None
        if use_tqdm is True and self._tqdm is None:
            raise ImportError("ProgressBar(use_tqdm=True) needs tqdm: pip install tqdm")
        self.min_interval = float(min_interval)
        self._bar = None
        self._last_draw = None
        self._last_len = 0

    # -- tqdm --------------------------------------------------------------------------------
    def _tqdm_begin(self, epoch: int) -> None:
        self._bar = self._tqdm(total=self.params.get("steps"), desc=self._epoch_title(epoch),
                               file=self._out(), unit="batch", leave=True)

    def _tqdm_postfix(self, logs: Mapping[str, Any], samples: int | None,
                      elapsed: float) -> None:
        post = dict(_shown(logs))
        rate = _rate(samples, elapsed)
        if rate:
            post["speed"] = rate
        self._bar.set_postfix(post, refresh=False)

    # -- plain -------------------------------------------------------------------------------
    def _draw(self, text: str, end: str = "") -> None:
        if not self._live:  # a file or a pipe: the finished line only, no carriage returns
            self._write(text + end)
            return
        # Pad with spaces to wipe the tail of a longer previous line.
        pad = " " * max(0, self._last_len - len(text))
        self._write("\r" + text + pad + end)
        self._last_len = 0 if end else len(text)

    def _fit(self, parts: list[str]) -> str:
        """The parts joined, cut to the terminal's width: whole parts dropped from the end
        (samples/s first, then metrics), the first one shortened only if it alone is too long."""
        text = " - ".join(parts)
        if self._limit is None:
            return text
        while len(text) > self._limit and len(parts) > 1:
            parts = parts[:-1]
            text = " - ".join(parts)
        return text[:self._limit]

    def _plain_line(self, epoch: int, batch: int | None, logs: Mapping[str, Any], elapsed: float,
                    final: bool) -> str:
        steps = self.params.get("steps")
        done = batch + 1
        parts = [self._epoch_title(epoch)]
        if steps:
            filled = int(self.width * min(done, steps) / steps)
            arrow = ">" if filled < self.width else ""
            bar = "=" * filled + arrow + "." * (self.width - filled - len(arrow))
            parts[0] += f" {done}/{steps} [{bar}]"
        # Most important first, as Keras orders them: what is cut to fit a narrow terminal is
        # the tail.
        if final:
            parts.append(_duration(elapsed))
        elif steps and done < steps and elapsed > 0:
            parts.append(f"ETA {_duration(elapsed / done * (steps - done))}")
        parts += [f"{key}: {value}" for key, value in _shown(logs)]
        rate = _rate(self._samples_done(batch, logs), elapsed)
        if rate:
            parts.append(rate)
        # The epoch's last line is written once and not redrawn: it may wrap, and keeps every
        # figure.
        return " - ".join(parts) if final else self._fit(parts)

    # -- hooks -------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_begin(epoch, logs)
        self._epoch = epoch
        self._last_batch = -1
        self._last_draw = None
        self._last_len = 0
        self._live = self._is_terminal() if self.interactive is None else self.interactive
        self._limit = None
        if self._live:
            columns = self.columns or shutil.get_terminal_size().columns
            self._limit = max(1, columns - 1)  # the last column would wrap on some terminals
        if self._tqdm is not None and self._live:
            self._tqdm_begin(epoch)

    def _is_terminal(self) -> bool:
        isatty = getattr(self._out(), "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:  # a closed stream
            return False

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        now = self.clock()
        if self._epoch_start is None:  # driven without on_epoch_begin: start the clock here
            self.on_epoch_begin(0)
        elapsed = now - self._epoch_start
        self._last_batch = batch
        if self._bar is not None:
            self._bar.update(batch + 1 - self._bar.n)
            self._tqdm_postfix(logs, self._samples_done(batch, logs), elapsed)
            return
        if not self._live:
            return  # a file or a pipe gets the epoch's line only
        steps = self.params.get("steps")
        last = steps is not None and batch + 1 >= steps
        if (self._last_draw is not None and now - self._last_draw < self.min_interval
                and not last):
            return  # redrawing faster than the eye can read only costs time
        self._last_draw = now
        self._draw(self._plain_line(self._epoch, batch, logs, elapsed, final=False))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self._epoch_start is None:
            self.on_epoch_begin(epoch)
        elapsed = self.clock() - self._epoch_start
        steps = self.params.get("steps")
        batch = steps - 1 if steps else max(self._last_batch, 0)
        if self._bar is not None:
            self._bar.update(max(0, (steps or 0) - self._bar.n))
            self._tqdm_postfix(logs, self._samples_done(batch, logs), elapsed)
            self._bar.close()
            self._bar = None
            return
        self._draw(self._plain_line(epoch, batch, logs, elapsed, final=True), end="\n")


def _import_tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def progress_callback(verbose: int, stream: TextIO | None = None) -> Callback | None:
    """The printer for fit's ``verbose``: 0 -> None, 1 -> ProgressBar, 2 -> EpochLogger."""
    verbose = verbosity(verbose)
    if verbose == 0:
        return None
    return ProgressBar(stream=stream) if verbose == 1 else EpochLogger(stream=stream)
