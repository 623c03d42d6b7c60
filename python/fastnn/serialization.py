"""Saving and loading whole models: `Sequential.save(path)` and `fastnn.load(path)`.

The file is a safetensors file (fastnn.io): the weights in get_weights order, optionally the
optimizer state, and in the metadata the architecture, the compile arguments and the step count,
so that `load` gives back a model that predicts the same and can resume training. The same bytes,
kept in memory, are what a pickled model holds (model_to_bytes / model_from_bytes).

A file is checked for meaning before and after the model is built: the architecture must declare
exactly the weights the file holds (so a small file cannot make `load` allocate a huge model),
weights and optimizer state must be finite as float32, variances and second moments >= 0, and the
step count a non-negative int consistent with the state."""

import numbers

import numpy as np

from fastnn._checks import finite_as

FORMAT_KEY = "fastnn_model"
# Metadata keys the model format itself writes; a caller's metadata may not use them.
MODEL_KEYS = (FORMAT_KEY, "fastnn_version", "compile", "step")
# The engine's step counter is an int64; anything near that is damage, not a long training run.
_MAX_STEP = 2**53
# Per optimizer kind, the engine's state slots that hold squares (never negative). The engine keeps
# 1 slot per parameter for sgd/adagrad and 3 for the others (csrc/engine: optim_states).
_SQUARE_SLOTS = {"adam": (1, 2), "adamw": (1, 2), "adagrad": (0,), "rmsprop": (0,)}


def _model_arrays_and_meta(model, include_optimizer, metadata):
    from fastnn import __version__

    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata: expected a dict, got {type(metadata).__name__}")
    clash = sorted(k for k in (metadata or {}) if k in MODEL_KEYS)
    if clash:
        raise ValueError(f"metadata: the keys {', '.join(map(repr, clash))} are reserved by the "
                         f"model format (reserved: {', '.join(MODEL_KEYS)})")
    from fastnn.model import _STATE_LOCK

    # Weights, optimizer state and step must be one snapshot: fit in another thread would move
    # them between our reads, so saving (or pickling) then raises; fit cannot start meanwhile
    # (it registers under the same lock), and from fit's own callbacks this runs between slices.
    with _STATE_LOCK:
        model._check_not_training("save")
        arrays = {f"weights/{i:04d}": w for i, w in enumerate(model.get_weights())}
        meta = dict(metadata or {})
        meta.update({FORMAT_KEY: model.get_config(), "fastnn_version": __version__})
        if model.loss is not None:
            meta["compile"] = {"loss": model.loss, "optimizer": model.optimizer.get_config(),
                               "metrics": list(model.metrics), "clipnorm": model.clipnorm}
            if getattr(model, "sampled", None) is not None:
                meta["compile"]["sampled"] = model.sampled.get_config()
            if include_optimizer:
                for i, s in enumerate(model._net.read("state")[0]):
                    arrays[f"optimizer/{i:04d}"] = s
                meta["step"] = int(model._net.step)
    return arrays, meta


def save_model(model, path, include_optimizer=True, metadata=None):
    from fastnn.io import save_arrays

    save_arrays(path, *_model_arrays_and_meta(model, include_optimizer, metadata))


def model_to_bytes(model, include_optimizer=True):
    """The bytes `save` writes, in memory."""
    from fastnn.io import dumps_arrays

    return dumps_arrays(*_model_arrays_and_meta(model, include_optimizer, None))


def load(path, device="cpu", precision="fp32"):
    """A model saved by `Sequential.save`: same architecture and weights, compiled as it was
    (with its optimizer state when saved), so it predicts the same and can resume training.
    device / precision: where the loaded model lives and computes (as for Sequential); a file
    saved from a GPU model loads on the CPU and the other way round.

    A file that is damaged, crafted or not a fastnn model raises ValueError naming the problem;
    so does a path that is not a regular file (a directory, FIFO or device)."""
    from fastnn._model_device import check_precision, parse_device
    from fastnn.io import load_arrays

    check_precision(precision, parse_device(device))  # device errors are not file errors
    arrays, meta = load_arrays(path)
    return _build(arrays, meta, repr(str(path)), device, precision)


def model_from_bytes(blob, device="cpu", precision="fp32", strict=True, **options):
    """The model `model_to_bytes` described. strict=False (unpickling, whose data is trusted)
    gives back the values as they were, even weights or state that diverged to NaN; the bytes'
    structure is checked all the same. options: further Sequential arguments (fused_mlp, ...)."""
    from fastnn.io import loads_arrays

    arrays, meta = loads_arrays(blob)
    return _build(arrays, meta, "<bytes>", device, precision, strict, options)


def _build(arrays, meta, where, device, precision, strict=True, options=None):
    from fastnn import layers as layers_mod
    from fastnn import optim as optim_mod
    from fastnn.losses import SampledSoftmax
    from fastnn.model import Sequential, parameter_sizes

    if FORMAT_KEY not in meta:
        raise ValueError(f"{where}: not a fastnn model file (no {FORMAT_KEY!r} in its metadata)")
    weight_keys = sorted(k for k in arrays if k.startswith("weights/"))
    state_keys = sorted(k for k in arrays if k.startswith("optimizer/"))
    try:
        config = _dict(meta[FORMAT_KEY], FORMAT_KEY)
        if not isinstance(config["layers"], list):
            raise TypeError(f"layers: expected a list, got {type(config['layers']).__name__}")
        layers = [layers_mod.from_config(c) for c in config["layers"]]
        # Before anything is allocated: the architecture must need exactly the weights stored.
        sizes = parameter_sizes(layers, config["input_dim"])
        stored = [arrays[k].size for k in weight_keys]
        if sizes != stored:
            raise ValueError(f"the architecture needs {len(sizes)} weight arrays of "
                             f"{sizes} values, the file holds {len(stored)} of {stored}")
        model = Sequential(layers, input_dim=config["input_dim"], seed=config["seed"],
                           device=device, precision=precision,
                           dtype=config.get("dtype", "float32"), **(options or {}))
        if "compile" in meta:
            c = _dict(meta["compile"], "compile")
            loss = c["loss"]
            if c.get("sampled") is not None:
                loss = SampledSoftmax(**_dict(c["sampled"], "sampled"))
            model.compile(loss, optim_mod.get(_dict(c["optimizer"], "optimizer")),
                          c["metrics"], c["clipnorm"])
        shapes = [w.shape for w in model.get_weights()]
        model._put_weights([_one_row_as_2d(arrays[k], shape)
                            for k, shape in zip(weight_keys, shapes)], check_values=strict)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        text = f"missing key {e}" if isinstance(e, KeyError) else str(e)
        raise ValueError(f"{where}: damaged model description: {text}") from None
    if state_keys or "step" in meta:
        _restore_optimizer(model, [arrays[k] for k in state_keys], meta, where, strict)
    return model


def _one_row_as_2d(stored, shape):
    """Files written by fastnn 0.1.0 before parameters carried their shape hold a one-row kernel
    (input_dim 1, or after a width-1 layer) and its optimizer state as 1-D (out,): read as
    (1, out)."""
    if stored.ndim == 1 and len(shape) == 2 and shape[0] == 1 and stored.shape[0] == shape[1]:
        return stored.reshape(shape)
    return stored


def _dict(value, name):
    if not isinstance(value, dict):
        raise TypeError(f"{name}: expected a JSON object, got {type(value).__name__}")
    return value


def _restore_optimizer(model, state, meta, where, strict):
    """Copy saved optimizer state and step into a freshly compiled model, after checking them."""
    if model._net is None:
        raise ValueError(f"{where}: optimizer state without a compiled model (no 'compile' in "
                         f"the metadata)")
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) \
            or not 0 <= step <= _MAX_STEP:
        raise ValueError(f"{where}: damaged: step must be an int in [0, {_MAX_STEP}], got "
                         f"{step!r}")
    views = model._net.read("state")[0]
    if len(views) != len(state):
        raise ValueError(f"{where}: optimizer state has {len(state)} arrays, the model expects "
                         f"{len(views)}")
    slots = len(views) // max(1, len(model._net.param_names()))
    squares = _SQUARE_SLOTS.get(model.optimizer.kind, ())
    converted = []
    for i, (v, s) in enumerate(zip(views, state)):
        name = f"optimizer/{i:04d}"
        s = _one_row_as_2d(s, v.shape)
        if v.shape != s.shape:
            raise ValueError(f"{where}: optimizer state {name} has shape {s.shape}, expected "
                             f"{v.shape}")
        if not strict:
            converted.append(s.astype(model.dtype))
            continue
        s32 = finite_as(s, model.dtype, f"{where}: optimizer state {name}")
        if i % slots in squares and (s32 < 0).any():
            raise ValueError(f"{where}: damaged: optimizer state {name} holds squares (second "
                             f"moments / accumulated squares) but has negative values")
        # Nothing has been learned at step 0: the state must still be the one compile sets.
        if step == 0 and not np.array_equal(s32, v):
            raise ValueError(f"{where}: damaged: step 0 with optimizer state {name} that is not "
                             f"its initial value")
        converted.append(s32)
    model._net.write(state=converted)
    model._net.step = int(step)
