"""Saving and loading whole models: `Sequential.save(path)` and `fastnn.load(path)`.

The file is a safetensors file (fastnn.io): the weights in get_weights order, optionally the
optimizer state, and in the metadata the architecture, the compile arguments and the step count,
so that `load` gives back a model that predicts the same and can resume training."""

import numpy as np

FORMAT_KEY = "fastnn_model"


def save_model(model, path, include_optimizer=True, metadata=None):
    from fastnn import __version__
    from fastnn.io import save_arrays

    arrays = {f"weights/{i:04d}": w for i, w in enumerate(model.get_weights())}
    meta = dict(metadata or {})
    meta.update({FORMAT_KEY: model.get_config(), "fastnn_version": __version__})
    if model.loss is not None:
        meta["compile"] = {"loss": model.loss, "optimizer": model.optimizer.get_config(),
                           "metrics": list(model.metrics), "clipnorm": model.clipnorm}
        if getattr(model, "sampled", None) is not None:
            meta["compile"]["sampled"] = model.sampled.get_config()
        if include_optimizer:
            for i, s in enumerate(model._net.optimizer_state()):
                arrays[f"optimizer/{i:04d}"] = np.array(s)
            meta["step"] = int(model._net.step)
    save_arrays(path, arrays, meta)


def load(path, device="cpu", precision="fp32"):
    """A model saved by `Sequential.save`: same architecture and weights, compiled as it was
    (with its optimizer state when saved), so it predicts the same and can resume training.
    device / precision: where the loaded model lives and computes (as for Sequential); a file
    saved from a GPU model loads on the CPU and the other way round."""
    from fastnn import layers as layers_mod
    from fastnn import optim as optim_mod
    from fastnn.io import load_arrays
    from fastnn.model import Sequential

    from fastnn._model_device import check_precision, parse_device

    check_precision(precision, parse_device(device))  # device errors are not file errors
    arrays, meta = load_arrays(path)
    if FORMAT_KEY not in meta:
        raise ValueError(f"{path}: not a fastnn model file (no {FORMAT_KEY!r} in its metadata)")
    try:
        config = meta[FORMAT_KEY]
        model = Sequential([layers_mod.from_config(c) for c in config["layers"]],
                           input_dim=config["input_dim"], seed=config["seed"], device=device,
                           precision=precision, dtype=config.get("dtype", "float32"))
        if "compile" in meta:
            c = meta["compile"]
            loss = c["loss"]
            if c.get("sampled") is not None:
                from fastnn.losses import SampledSoftmax

                loss = SampledSoftmax(**c["sampled"])
            model.compile(loss, optim_mod.get(c["optimizer"]), c["metrics"], c["clipnorm"])
        weights = [arrays[k] for k in sorted(k for k in arrays if k.startswith("weights/"))]
        model.set_weights(weights)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: damaged model description: {e}") from None
    state_keys = sorted(k for k in arrays if k.startswith("optimizer/"))
    if state_keys and model._net is not None:
        views = model._net.optimizer_state()
        if len(views) != len(state_keys):
            raise ValueError(f"{path}: optimizer state has {len(state_keys)} arrays, the model "
                             f"expects {len(views)}")
        for v, k in zip(views, state_keys):
            if v.shape != arrays[k].shape:
                raise ValueError(f"{path}: optimizer state {k} has shape {arrays[k].shape}, "
                                 f"expected {v.shape}")
            v[...] = arrays[k]
        if hasattr(model._net, "push"):  # a GPU model: the host copies back to the device
            model._net.push("state")
        model._net.step = int(meta.get("step", 0))
    return model
