"""History: what model.fit returns, the per-epoch record of losses, metrics and learning rate."""

from __future__ import annotations

import math
import numbers
import sys
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastnn._callback_base import Callback


class History(Callback):
    """Per-epoch record of a training run.

    history: dict of per-epoch lists, e.g. ``{"loss": [...], "val_loss": [...], "lr": [...]}``.
    epoch: the 0-based epoch indices recorded, in order.
    params: the run's settings (epochs, batch_size, steps, samples, ...).
    diagnostics: free-form facts about the run (device, time per epoch, why it stopped, ...).

    A callback: the model puts it in its CallbackList and ``on_epoch_end`` records each epoch's
    logs (or the model calls ``append`` itself).
    """

    def __init__(self, history: Mapping[str, Iterable[Any]] | None = None,
                 epoch: Iterable[int] | None = None, params: Mapping[str, Any] | None = None,
                 diagnostics: Mapping[str, Any] | None = None) -> None:
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.epoch = list(epoch or [])
        self.params = dict(params or {})
        self.diagnostics = dict(diagnostics or {})
        self.model = None

    def set_params(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.append(epoch, logs or {})

    def append(self, epoch: int, logs: Mapping[str, Any]) -> None:
        """Record one epoch's logs. A key first seen late is padded with NaN for the epochs before
        it, and a key missing this epoch gets NaN, so every list stays as long as ``epoch``."""
        n = len(self.epoch)
        self.epoch.append(int(epoch))
        for key, value in logs.items():
            if key not in self.history:
                self.history[key] = [math.nan] * n
            self.history[key].append(_plain(value))
        for key, values in self.history.items():
            if len(values) == n:
                values.append(math.nan)

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        keys = ", ".join(self.history)
        return f"History(epochs={len(self.epoch)}, keys=[{keys}])"

    def plot(self, path: str | os.PathLike[str] | None = None,
             metrics: str | Sequence[str] | None = None) -> Any:
        """Plot loss and metric curves, one panel per quantity, validation dashed beside training.

        metrics: names to plot (without the ``val_`` prefix); default every recorded quantity.
        path: where to write a PNG; None writes nothing. Returns the matplotlib Figure.
        matplotlib is optional: ImportError with an install hint when it is missing."""
        try:
            import matplotlib
        except ImportError as e:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from e
        # Agg draws to files without a display (servers, CI); pyplot is imported after choosing it.
        # Only switch when pyplot has not been set up yet, so a notebook's backend is kept.
        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        names = self._plot_names(metrics)
        if not names:
            raise ValueError("History.plot: nothing recorded to plot (the history is empty)")
        fig, axes = plt.subplots(len(names), 1, figsize=(6.4, 2.6 * len(names)), squeeze=False)
        x = [e + 1 for e in self.epoch]  # epochs counted from 1, as the progress bar shows them
        for ax, name in zip(axes[:, 0], names):
            if name in self.history:
                ax.plot(x, self.history[name], marker=".", label=name)
            if "val_" + name in self.history:
                ax.plot(x, self.history["val_" + name], marker=".", linestyle="--",
                        label="val_" + name)
            ax.set_ylabel(name)
            if name == "lr" and all(v > 0 for v in self.history["lr"] if v == v):
                ax.set_yscale("log")  # schedules decay geometrically; a log axis shows the steps
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
            ax.legend(loc="best")
        axes[-1, 0].set_xlabel("epoch")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, format="png")
            plt.close(fig)  # written: free it, pyplot would otherwise keep every figure alive
        return fig

    def _plot_names(self, metrics: str | Sequence[str] | None) -> list[str]:
        available = []
        for key in self.history:
            base = key[4:] if key.startswith("val_") else key
            if base not in available:
                available.append(base)
        if metrics is None:
            return available
        if isinstance(metrics, str):
            metrics = [metrics]
        for m in metrics:
            if m not in available:
                raise ValueError(f"metrics: {m!r} was not recorded; available: {available}")
        return list(metrics)


def _plain(value: Any) -> Any:
    # NumPy scalars become Python numbers, so the history pickles/JSON-dumps cleanly.
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value
