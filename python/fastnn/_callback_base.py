"""The Callback base class, apart from fastnn.callbacks (which re-exports it) so that History and
the progress printers can subclass it while fastnn.callbacks uses them."""

import types


class Callback:
    """Base class: override the hooks you need; each default does nothing."""

    # Class-level defaults, so a subclass that skips super().__init__() still works; the empty
    # params are read-only because a class attribute would be shared by every instance.
    model = None
    params = types.MappingProxyType({})

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = dict(params)

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass
