"""The Callback base class, apart from fastnn.callbacks (which re-exports it) so that History and
the progress printers can subclass it while fastnn.callbacks uses them."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any


class Callback:
    """Base class: override the hooks you need; each default does nothing."""

    # Class-level defaults, so a subclass that skips super().__init__() still works; the empty
    # params are read-only because a class attribute would be shared by every instance.
    model: Any = None  # the Sequential being trained (set_model)
    params: Mapping[str, Any] = types.MappingProxyType({})

    def __init__(self) -> None:
        self.model = None
        self.params = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass
