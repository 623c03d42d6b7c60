"""fastnn.Sequential: a stack of layers trained by the C++ engine.

Python validates and converts the data once per call, builds the engine's plan once per
compile, and then only calls into the engine between epochs (or every few batches, for the
progress bar and Ctrl-C): no Python runs per batch.

Threads (README "Threads"): inference (predict, predict_classes, evaluate, get_weights) may run
in any number of threads at once; the engine gives each call its own buffers and reads the
weights under the shared side of the model's lock. fit takes the lock exclusively for one slice
of batches at a time, so inference in other threads waits at most a slice and sees the weights
as they are between two slices. Changing the model (set_weights, compile, another fit) from
another thread while fit runs raises RuntimeError. Replacing the engine (compile, the lazily
built inference engine) happens under _STATE_LOCK: the new engine is complete, weights included,
before other threads can see it."""

from __future__ import annotations

import math
import numbers
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastnn import _model_device, io, layers as layers_mod
from fastnn._checks import finite_as, finite_real, flag, integer, real_array, verbosity
from fastnn._model_data import as_features, as_targets
from fastnn._typing import Array, ArrayIn, PathLike
from fastnn.data import split_validation, _warn_if_split_loses_classes

if TYPE_CHECKING:  # imported where used at run time (they import fastnn.model themselves)
    from fastnn._callback_base import Callback
    from fastnn.history import History
    from fastnn.losses import SampledSoftmax
    from fastnn.optim import Optimizer

LOSSES = ("softmax_cross_entropy", "binary_cross_entropy", "mse", "mae", "sampled_softmax")
LOSS_ALIASES = {"categorical_crossentropy": "softmax_cross_entropy",
                "sparse_categorical_crossentropy": "softmax_cross_entropy",
                "cross_entropy": "softmax_cross_entropy",
                "binary_crossentropy": "binary_cross_entropy",
                "mean_squared_error": "mse", "mean_absolute_error": "mae"}
# The link each loss puts between the logits and predict's output.
LINKS = {"softmax_cross_entropy": "softmax", "binary_cross_entropy": "sigmoid",
         "sampled_softmax": "softmax"}
# The losses that take class indices.
CLASS_LOSSES = ("softmax_cross_entropy", "sampled_softmax")
METRICS = ("accuracy", "binary_accuracy", "top_k_accuracy", "mse", "mae")


def _seed_arg(seed: int) -> int:
    seed = integer(seed, "seed")
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed: expected 0 <= seed < 2**63, got {seed}")
    return seed


def _dtype_arg(dtype: DTypeLike, place: Any) -> np.dtype[Any]:
    """The working dtype: float32, or float64 on the CPU (the float64 engine: slower, for
    float64 pipelines such as scikit-learn's, and for checks against float64 references)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dt}")
    return place.check_dtype(dt)


# Serialises the changes of a model's Python-side state (self._net, self._weights, the thread
# in fit) across threads. Taken for short moments only, and always before a model's engine lock,
# never while holding it.
_STATE_LOCK = threading.RLock()


def _warn_overflow() -> None:
    # Finite inputs, non-finite outputs: weights so large that the arithmetic overflows (a
    # diverged model, or a file with extreme values). Said, never silent.
    warnings.warn("predict: the model's outputs overflowed to NaN or infinity; its weights "
                  "are too large (did training diverge? see fit's warnings)",
                  RuntimeWarning, stacklevel=3)


def _sub_seed(seed: int, index: int) -> int:
    """A seed of its own for each weight tensor, derived from the model's seed."""
    return int(np.random.SeedSequence([seed, index]).generate_state(2, np.uint32).view(np.uint64)[0])


class Sequential:
    """A feed-forward network: ``Sequential([Dense(64, "relu"), Dense(10)], input_dim=784)``.

    See API.md for the contract; in short: ``compile(loss, optimizer, metrics, clipnorm)``,
    ``fit``, ``evaluate``, ``predict``, ``predict_classes``, ``get_weights``/``set_weights``,
    ``save`` (and ``fastnn.load``), ``summary``.

    ``device="cuda"`` (or ``"cuda:N"``) trains on the GPU engine: the same batches, dropout masks,
    losses and updates as the CPU engine, with the data uploaded once per fit (GPU arrays --
    fastnn.Tensor, PyTorch, CuPy -- are used without a copy) and the training step replayed as a
    CUDA graph. ``precision`` ("fp32"; "bf16" on the CPU and the GPU; "tf32" on the GPU) picks
    the GEMM arithmetic of the forward and backward passes (bf16: operands rounded to bfloat16,
    float32 accumulation; on the CPU, vdpbf16ps where the CPU has AVX512_BF16, else float32 FMA
    on the rounded operands, see show_config()["bf16_gemm"]); weights, optimizer state and
    activations stay float32 in this version (the CPU keeps an extra bf16 copy of the weights
    for its GEMMs). ``fused_mlp`` / ``graphs`` switch the fused-MLP kernel and graph replay off (tests,
    debugging). The sampled softmax trains on the CPU only for now.

    Threads: a model may be used from any number of threads. ``predict``, ``predict_classes``,
    ``evaluate`` and ``get_weights`` run concurrently and give exactly the results they give one
    after another. ``fit`` takes the model one slice of batches at a time (about 1/8 of an epoch,
    1/50 with ``verbose=1``): inference in another thread waits for the current slice and sees
    the weights between two slices. ``set_weights``, ``compile`` or ``fit`` called from another
    thread while ``fit`` runs raise RuntimeError; while other threads predict they wait for the
    calls in progress, and each prediction uses the weights from before or after the change.

    ``dtype="float64"`` (CPU only) trains and predicts in float64 with the float64 engine:
    slower than the float32 default, for float64 pipelines (fastnn.sklearn on float64 data, as
    scikit-learn computes in its input's precision) and checks against float64 references.

    Models pickle (``pickle``, ``joblib``, ``copy.deepcopy``) through the bytes ``save`` writes:
    the copy has its own engine with the same weights, optimizer state and step, so it predicts
    the same and resumes training exactly as the original would; ``history`` comes along.
    ``copy.copy`` also gives its own engine (two models sharing one would train each other) but
    shares ``history``. A GPU model pickles through host copies and unpickles onto its device.
    """

    # The id of the thread running fit on this model, None when none is.
    _fit_thread = None

    def __init__(self, layers: Sequence[layers_mod.Layer], input_dim: int, seed: int = 0,
                 device: str = "cpu", precision: str = "fp32", *, fused_mlp: bool = True,
                 graphs: bool = True, dtype: DTypeLike = "float32") -> None:
        if isinstance(layers, layers_mod.Layer) or not isinstance(layers, (list, tuple)):
            raise TypeError("layers: expected a list of fastnn.layers objects")
        if not layers:
            raise ValueError("layers: a model needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, layers_mod.Layer):
                raise TypeError(f"layers[{i}]: expected a fastnn.layers object, got "
                                f"{type(layer).__name__}")
        if integer(input_dim, "input_dim") <= 0:
            raise ValueError(f"input_dim: expected a positive number of features, got {input_dim}")
        # device="cuda" / "cuda:N": the GPU engine (fastnn/_model_device.py); precision
        # "fp32" | "tf32" | "bf16" picks the GEMM arithmetic there (storage stays fp32).
        # fused_mlp / graphs: GPU engine options (the fused-MLP kernel where it applies, CUDA
        # graph replay of the training step); the CPU ignores them.
        self._device_index = _model_device.parse_device(device)
        self.precision = _model_device.check_precision(precision, self._device_index)
        # The one place the model picks its backend: every engine and array it uses follow.
        self._place = _model_device.placement(self._device_index)
        self._host = isinstance(self._place, _model_device.HostPlacement)
        device = self._place.device or device
        self.fused_mlp, self.graphs = flag(fused_mlp, "fused_mlp"), flag(graphs, "graphs")
        self.dtype = _dtype_arg(dtype, self._place)
        _model_device.check_precision_dtype(self.precision, self.dtype)
        self.layers = list(layers)
        self.input_dim = int(input_dim)
        self.seed = _seed_arg(seed)
        self.device = device
        counts = {}
        for i, layer in enumerate(self.layers):
            k = counts.get(layer.kind, 0)
            counts[layer.kind] = k + 1
            layer.name = f"{layer.kind}_{k}"
            act = getattr(layer, "activation", None)
            if act == "softmax" and i != len(self.layers) - 1:
                raise ValueError(f"{layer.name}: softmax is only allowed as the last layer's "
                                 f"activation (the classifier's output link)")
        self.output_dim = layers_mod.widths(self.layers, self.input_dim)[-1]
        self.loss = None
        self.sampled = None
        self.optimizer = None
        self.metrics = ()
        self.clipnorm = None
        self.stop_training = False
        self.history = None
        self._net = None
        self._weights = self._initial_weights()

    # ------------------------------------------------------------------ weights
    def _initial_weights(self) -> list[NDArray[Any]]:
        """Each layer's arrays as it starts them (a seed of its own for each layer)."""
        out, widths = [], layers_mod.widths(self.layers, self.input_dim)
        for i, layer in enumerate(self.layers):
            seed = _sub_seed(self.seed, i)
            out += [layer.initial_weight(role, shape, seed)
                    for role, shape in layers_mod.weight_shapes([layer], widths[i])]
        # A float64 model starts from the float32 model's values (the same seed, the same model).
        return [w.astype(self.dtype, copy=False) for w in out]

    def _engine_weights(self, net: Any) -> list[NDArray[Any]]:
        """Copies of the engine's arrays in get_weights order (one locked read)."""
        # The engine lists the trainable arrays and the buffers apart, each in layer order.
        params, buffers = (iter(a) for a in net.read("params", "buffers"))
        return [next(params if layers_mod.ROLES[role].trainable else buffers)
                for role in layers_mod.weight_roles(self.layers)]

    def get_weights(self) -> list[NDArray[Any]]:
        """Copies of the weights: ``[W1, b1, W2, b2, ...]`` in layer order; a BatchNorm adds
        gamma, beta, running mean and running variance. During fit in another thread: the
        weights between two slices of batches."""
        net = self._net
        if net is None:
            with _STATE_LOCK:
                net = self._net
                if net is None:
                    return [np.array(a, copy=True) for a in self._weights]
        return self._engine_weights(net)

    def _check_not_training(self, what: str) -> None:
        """RuntimeError when fit runs on this model in another thread."""
        owner = self._fit_thread
        if owner is not None and owner != threading.get_ident():
            raise RuntimeError(f"{what}: fit is running in another thread; the model cannot be "
                               f"changed until it returns")

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        """Replace the weights (a list like get_weights returns). Values are stored in the model's
        dtype (float32 unless dtype="float64") and must be finite as such; BatchNorm running
        variances must be >= 0. Waits for the predict and evaluate calls in progress in other
        threads; RuntimeError while fit runs in another thread."""
        self._put_weights(weights, check_values=True)

    def _put_weights(self, weights: Sequence[ArrayLike], check_values: bool,
                     net: Any = None) -> None:
        # check_values=False: an unpickled model gets back exactly what it held, even weights that
        # diverged to NaN (pickle data is trusted; a file is not: fastnn.load always checks).
        # net: an engine not yet published (compile, _inference_net; their caller holds
        # _STATE_LOCK), else this model's engine or, uncompiled, its arrays.
        with _STATE_LOCK:
            if net is None:
                self._check_not_training("set_weights")
                net = self._net
            self._store_weights(net, weights, check_values)

    def _store_weights(self, net: Any, weights: Sequence[ArrayLike],
                       check_values: bool) -> None:
        # The shapes from the architecture: reading the engine's arrays only to compare shapes
        # would copy every weight (and download a GPU model's).
        described = layers_mod.weight_shapes(self.layers, self.input_dim)
        roles, shapes = [r for r, _ in described], [s for _, s in described]
        if not isinstance(weights, (list, tuple)) or len(weights) != len(shapes):
            raise ValueError(f"weights: expected a list of {len(shapes)} arrays (as get_weights "
                             f"returns), got {len(weights) if isinstance(weights, (list, tuple)) else type(weights).__name__}")
        converted = []
        for i, (w, shape) in enumerate(zip(weights, shapes)):
            w = np.asarray(w)
            if w.shape != shape:
                raise ValueError(f"weights[{i}]: expected shape {shape}, got {w.shape}")
            if not check_values:
                converted.append(w)
                continue
            # Checked as stored (float32 unless a float64 model): 1e300 would become inf.
            w = finite_as(w, self.dtype, f"weights[{i}]")
            what = layers_mod.ROLES[roles[i]].non_negative
            if what and (w < 0).any():
                raise ValueError(f"weights[{i}]: {what} must be >= 0, got {w.min()}")
            converted.append(w)
        if net is None:
            for w, cur in zip(converted, self._weights):
                cur[...] = w
            return
        # One engine call: predict in other threads sees all of the change or none of it.
        trainable = [layers_mod.ROLES[role].trainable for role in roles]
        net.write(params=[w for w, t in zip(converted, trainable) if t],
                  buffers=[w for w, t in zip(converted, trainable) if not t])

    def count_params(self) -> int:
        """Number of trainable parameters (BatchNorm's running statistics not counted)."""
        return layers_mod.trainable_count(self.layers, self.input_dim)

    # ------------------------------------------------------------------ compile
    def _link(self, loss: str) -> tuple[str | None, bool]:
        """(link applied by predict, whether the last layer's activation is that link)."""
        last = self.layers[-1]
        act = getattr(last, "activation", None)
        link = LINKS.get(loss)
        if act == "softmax" and loss not in CLASS_LOSSES:
            raise ValueError(f"loss: a softmax output goes with 'softmax_cross_entropy', "
                             f"not {loss!r}")
        return link, act is not None and act == link

    def _engine_layers(self, loss: str) -> list[dict[str, Any]]:
        # With the link in the loss, the engine's last layer gives the logits; predict applies
        # the link.
        _, strip = self._link(loss)
        last = len(self.layers) - 1
        return [layer.engine_spec(strip and i == last) for i, layer in enumerate(self.layers)]

    def compile(self, loss: str | SampledSoftmax,
                optimizer: str | Mapping[str, Any] | Optimizer = "adam",
                metrics: Sequence[str] = (), clipnorm: float | None = None) -> Sequential:
        """Choose the loss, optimizer (a `fastnn.optim` object or its name) and metrics.

        loss: "softmax_cross_entropy" (labels are class indices or one-hot rows),
        "binary_cross_entropy" (targets in [0, 1], one sigmoid per output), "mse", "mae", or
        for very many classes "sampled_softmax" / `fastnn.losses.SampledSoftmax(...)`.
        clipnorm: rescale each update's gradient to this global norm at most.
        Compiling again keeps the weights and starts the optimizer afresh.
        """
        from fastnn import optim as optim_mod

        from fastnn.losses import SampledSoftmax

        sampled = None
        if isinstance(loss, SampledSoftmax):
            sampled, loss = loss, loss.name
        elif not isinstance(loss, str):
            raise TypeError(f"loss: expected a loss name or fastnn.losses.SampledSoftmax, got "
                            f"{type(loss).__name__}")
        loss = LOSS_ALIASES.get(loss, loss)
        if loss not in LOSSES:
            raise ValueError(f"loss: expected one of {', '.join(LOSSES)}, got {loss!r}")
        if loss == "sampled_softmax" and sampled is None:
            sampled = SampledSoftmax()
        if sampled is not None:
            if "kernel" not in self.layers[-1].weight_roles():
                raise ValueError("loss: the sampled softmax needs a Dense last layer (the "
                                 "classifier's logits)")
            if sampled.unique and sampled.num_sampled > self.output_dim:
                raise ValueError(f"num_sampled: {sampled.num_sampled} distinct classes cannot be "
                                 f"drawn from {self.output_dim}")
        self._link(loss)
        if isinstance(metrics, str):
            metrics = (metrics,)
        if not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics: expected a list of metric names, got "
                            f"{type(metrics).__name__}")
        for m in metrics:
            if m not in METRICS:
                raise ValueError(f"metrics: expected names from {', '.join(METRICS)}, got {m!r}")
            # Accuracies count class decisions, which a regression loss has none of: they would
            # be left out of every log without a word.
            needs = CLASS_LOSSES + (() if m == "top_k_accuracy" else ("binary_cross_entropy",))
            if m in ("accuracy", "binary_accuracy", "top_k_accuracy") and loss not in needs:
                raise ValueError(f"metrics: {m!r} needs a classification loss "
                                 f"({', '.join(needs)}), got loss={loss!r}")
        if clipnorm is not None:
            clipnorm = finite_real(clipnorm, "clipnorm")
            if clipnorm <= 0:
                raise ValueError(f"clipnorm: expected a positive number, got {clipnorm}")
        optimizer = optim_mod.get(optimizer)
        with _STATE_LOCK:
            self._check_not_training("compile")
            # The new engine gets the weights before other threads can see it.
            net = self._new_net(loss, optimizer.engine_spec(),
                                sampled.get_config() if sampled else {})
            self._put_weights(self.get_weights(), check_values=True, net=net)
            self.sampled = sampled
            self.loss, self.optimizer, self.metrics, self.clipnorm = loss, optimizer, tuple(metrics), clipnorm
            self._net, self._weights = net, None
        return self

    def _new_net(self, loss: str, optimizer: dict[str, Any],
                 sampled_config: dict[str, Any]) -> Any:
        """The engine, from the model's backend (fastnn._C or fastnn._cuda)."""
        backend = self._place.backend()
        engine = backend.Network64 if self.dtype == np.float64 else backend.Network32
        return engine(self.input_dim, self._engine_layers(loss), loss, optimizer, self.seed,
                      sampled_config, self._place.options(self, loss))

    def _require_compiled(self, what: str) -> None:
        if self._net is None:
            raise RuntimeError(f"{what}: call compile(loss, optimizer) first")

    # ------------------------------------------------------------------ data
    def _x(self, X: ArrayLike, name: str = "X") -> NDArray[Any]:
        return as_features(X, self.input_dim, name, dtype=self.dtype)

    def _y(self, y: ArrayLike, n: int, name: str = "y") -> tuple[Any, Any]:
        """(labels, targets) in the engine's form for this loss."""
        return as_targets(y, n, self.loss, self.output_dim, name, dtype=self.dtype)

    def _inputs(self, X: Any, y: Any, native: bool = True) -> tuple[Any, Any, Any, bool]:
        """(X, labels, targets, unchecked) for the engine: arrays already on the engine's device
        in its form are taken as they are (native=True; their labels are `unchecked`, for the
        engine's check_labels), the rest validated and converted on the host."""
        to_host = _model_device.to_host
        Xn = self._place.native_features(X, self.input_dim) if native else None
        X = self._x(to_host(X)) if Xn is None else Xn
        yn = None if Xn is None else self._place.native_targets(y, len(X), self.loss,
                                                                 self.output_dim)
        if yn is not None:
            return (X, *yn, True)
        return (X, *self._y(to_host(y), len(X)), False)

    def _sample_weights(self, n: int, labels: Any, class_weight: Any,
                        sample_weight: Any) -> Any:
        """Per-sample weights ((n,), the model's dtype) from sample_weight times class_weight[label], or
        None when neither is given."""
        if class_weight is None and sample_weight is None:
            return None
        if self.sampled is not None:
            raise ValueError("class_weight / sample_weight: not available with the sampled "
                             "softmax")
        w = np.ones(n, self.dtype)
        if sample_weight is not None:
            sw = np.asarray(real_array(np.asarray(sample_weight), "sample_weight"), np.float64)
            if sw.shape != (n,):
                raise ValueError(f"sample_weight: expected shape ({n},), got {sw.shape}")
            if not np.isfinite(sw).all() or (sw < 0).any():
                raise ValueError("sample_weight: weights must be finite and >= 0")
            w *= sw.astype(self.dtype)
        if class_weight is not None:
            if labels is None:
                raise ValueError("class_weight: only the softmax cross-entropy loss takes class "
                                 "weights")
            cw = np.ones(self.output_dim, np.float32)
            if isinstance(class_weight, dict):
                for k, v in class_weight.items():
                    if (isinstance(k, bool) or not isinstance(k, numbers.Integral)
                            or not 0 <= k < self.output_dim):
                        raise ValueError(f"class_weight: class {k!r} is not in "
                                         f"[0, {self.output_dim})")
                    cw[int(k)] = finite_real(v, f"class_weight[{k}]")
            else:
                cw = np.asarray(real_array(np.asarray(class_weight), "class_weight"), np.float32)
                if cw.shape != (self.output_dim,):
                    raise ValueError(f"class_weight: expected {self.output_dim} weights, got "
                                     f"shape {cw.shape}")
            if np.any(cw < 0) or not np.all(np.isfinite(cw)):
                raise ValueError("class_weight: weights must be finite and >= 0")
            w *= cw[labels]
        return np.ascontiguousarray(w)

    # ------------------------------------------------------------------ training
    def fit(self, X: ArrayIn, y: ArrayIn, epochs: int = 1, batch_size: int | None = 32,
            shuffle: bool = True, validation_split: float = 0.0,
            validation_data: tuple[Any, ...] | None = None, callbacks: Iterable[Callback] = (),
            class_weight: Mapping[int, float] | ArrayLike | str | None = None,
            accumulate_steps: int = 1, verbose: int = 1, initial_epoch: int = 0,
            sample_weight: ArrayLike | None = None, distributed: Any = None) -> History:
        """Train for `epochs` epochs; returns a `History`.

        batch_size=None trains on the whole data set per step (full-batch gradient descent),
        batch_size=1 is pure stochastic gradient descent; the last partial batch is used.
        validation_split: the LAST fraction of X and y (taken before any shuffling, as Keras
        does) is held out for validation; a UserWarning names the classes when that part and
        the training part do not hold the same ones (rows sorted by class).
        accumulate_steps=k averages the gradients of k batches into one update. Ctrl-C stops training after the current slice of batches and returns
        the history so far: the model stays usable.
        Threads: fit takes the model one slice of batches at a time; predict, evaluate and
        get_weights in other threads wait for the current slice. set_weights, compile or fit
        from another thread raise RuntimeError until this fit returns.
        class_weight ({class: weight} or one weight per class) and sample_weight (one per
        sample) weight each sample's loss as Keras does: a batch's loss is
        sum_i w_i l_i / batch size, with w_i = sample_weight[i] * class_weight[y_i].
        distributed: a fastnn.distributed.DataParallel (or True for one over MPI.COMM_WORLD)
        trains data-parallel over MPI: X, y are this rank's shard, the gradients are averaged
        across the ranks before every update (see fastnn.distributed for what each part of
        training means there).
        """
        from fastnn.distributed import for_fit

        self._require_compiled("fit")
        dist = for_fit(distributed)
        with _STATE_LOCK:
            self._check_not_training("fit")
            if self._fit_thread is not None:
                raise RuntimeError("fit: already running on this model (called from a "
                                   "callback?)")
            self._fit_thread = threading.get_ident()
        try:
            return self._fit(X, y, epochs, batch_size, shuffle, validation_split, validation_data,
                             callbacks, class_weight, accumulate_steps, verbose, initial_epoch,
                             sample_weight, dist)
        except BaseException as e:
            dist._end(self, e)  # ends the other ranks' wait (MPI_Abort), see fastnn.distributed
            raise
        finally:
            dist._end(self, None)
            self._fit_thread = None

    def _fit(self, X: Any, y: Any, epochs: int, batch_size: int | None, shuffle: bool,
             validation_split: float, validation_data: Any, callbacks: Any, class_weight: Any,
             accumulate_steps: int, verbose: int, initial_epoch: int,
             sample_weight: Any, dist: Any) -> History:
        # fit's body (fit holds the model's training ownership around it). Its warnings name the
        # user's fit call: one frame further up than they would from fit itself.
        from fastnn.callbacks import configure_callbacks
        from fastnn.distributed import _PeerStopped

        # Splitting off validation rows and class weights need the data on the host.
        X, labels, targets, unchecked = self._inputs(
            X, y, native=not (validation_split or class_weight is not None))
        weights = self._sample_weights(len(X), labels, class_weight,
                                       _model_device.to_host(sample_weight))
        epochs = self._int_arg(epochs, "epochs", 0)
        shuffle, verbose = flag(shuffle, "shuffle"), verbosity(verbose)
        initial_epoch = self._int_arg(initial_epoch, "initial_epoch", 0)
        accumulate_steps = self._int_arg(accumulate_steps, "accumulate_steps", 1)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data: expected a tuple (X_val, y_val)")
            vx = self._x(_model_device.to_host(validation_data[0]), "validation_data[0]")
            val = (vx, *self._y(_model_device.to_host(validation_data[1]), len(vx),
                                "validation_data[1]"))
        elif validation_split is not None and finite_real(validation_split, "validation_split"):
            split = float(validation_split)
            try:
                (X, y_train), (vx, vy) = split_validation(
                    X, labels if labels is not None else targets, split)
            except ValueError as e:
                raise ValueError(f"validation_split: {e}") from None
            if labels is not None or self.loss == "binary_cross_entropy":
                _warn_if_split_loses_classes(y_train, vy, split, stacklevel=4)
            if labels is not None:
                labels, val = y_train, (vx, vy, None)
            else:
                targets, val = y_train, (vx, None, vy)
            if weights is not None:
                weights = np.ascontiguousarray(weights[:len(X)])
        n = len(X)
        if n == 0:
            raise ValueError("X: no samples to train on")
        if batch_size is None:
            batch_size = n
        batch_size = self._int_arg(batch_size, "batch_size", 1)
        nb = -(-n // batch_size)
        # The data go to the engine's device once per fit; labels given there are range-checked
        # there once.
        X, labels, targets, weights = (self._place.put(a) for a in (X, labels, targets, weights))
        if unchecked:
            self._net.check_labels(labels)
        if val is not None:
            val = tuple(self._place.put(a) for a in val)

        if dist.rank:
            verbose, callbacks = 0, dist._callbacks(callbacks)  # rank 0 prints and writes files
        dist._begin(self, n, batch_size, accumulate_steps, epochs, initial_epoch)
        params = {"epochs": epochs, "steps": nb, "batch_size": batch_size, "samples": n,
                  "verbose": verbose}
        cbs, history = configure_callbacks(callbacks, self, params, verbose=verbose)
        self.history = history
        self.stop_training = False
        schedule = self.optimizer.schedule
        per_step = schedule is not None and schedule.per == "step"
        # Batches per engine call: one accumulation group for per-step schedules, ~50 slices
        # per epoch for the progress bar, else ~8 (so that Ctrl-C is answered promptly).
        slices = 50 if verbose == 1 else 8
        slice_len = accumulate_steps if per_step else max(1, -(-nb // slices))
        slice_len = -(-slice_len // accumulate_steps) * accumulate_steps
        cbs.on_train_begin({})
        interrupted = False
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch, {})
            self._net.begin_epoch(n, epoch, shuffle)
            loss_sum = correct = counted = rows = 0
            nonfinite = False
            try:
                for first in range(0, nb, slice_len):
                    # Callbacks (LearningRateScheduler, ReduceLROnPlateau) set optimizer.lr; a
                    # schedule maps it to this epoch's or step's value.
                    self._net.lr = float(self.optimizer.lr_at(epoch, self._net.step))
                    try:
                        s = self._net.train_batches(X, labels, targets, batch_size, first,
                                                    first + slice_len, accumulate_steps,
                                                    float(self.clipnorm or 0.0), weights)
                    except _PeerStopped:  # another rank's loss became non-finite
                        nonfinite = True
                        break
                    loss_sum += s["loss_sum"]
                    correct += s["correct"]
                    counted += s["counted"]
                    rows += s["rows"]
                    logs = self._train_logs(loss_sum, correct, counted, rows)
                    logs["samples"] = rows
                    cbs.on_batch_end(min(first + slice_len, nb) - 1, logs)
                    if s["nonfinite"]:
                        nonfinite = True
                        dist._leave_step()
                        break
            except KeyboardInterrupt:
                if dist.size > 1:  # the ranks stop at different batches: end the job instead
                    raise
                interrupted = True
            if dist.size > 1:
                loss_sum, correct, counted, rows, stopped = dist._epoch_sums(
                    [loss_sum, correct, counted, rows, nonfinite])
                nonfinite = bool(stopped)
                dist._average_buffers(self._net)
            logs = self._train_logs(loss_sum, correct, counted, rows)
            if val is not None and not interrupted:
                val_logs = self._evaluate_arrays(*val, batch_size=max(1024, batch_size))
                for k, v in dist._mean_logs(val_logs, len(val[0])).items():
                    logs["val_" + k] = v
            logs["lr"] = float(self._net.lr)
            self._record_diagnostics(history)
            if nonfinite:
                warnings.warn(f"epoch {epoch + 1}: the loss became {logs['loss']}; training "
                              f"stopped. Lower the learning rate, check the inputs for extreme "
                              f"values, or pass clipnorm= to compile", RuntimeWarning, stacklevel=3)
            cbs.on_epoch_end(epoch, logs)
            if interrupted:
                warnings.warn("fit: interrupted; the model keeps the weights reached so far",
                              RuntimeWarning, stacklevel=3)
            if dist._any(self.stop_training) or nonfinite or interrupted:
                break
        cbs.on_train_end({})
        return history

    _int_arg = staticmethod(integer)

    def _train_logs(self, loss_sum: float, correct: int, counted: int,
                    rows: int) -> dict[str, float]:
        logs = {"loss": loss_sum / rows if rows else float("nan")}
        for m in self.metrics:
            if m in ("accuracy", "binary_accuracy") and counted:
                logs[m] = correct / counted
        return logs

    def _record_diagnostics(self, history: History) -> None:
        """Per-layer gradient norms, update ratios and dead-ReLU fractions of the epoch, with a
        warning when they show a classic failure."""
        diag = self._net.take_diagnostics()
        norms = {}
        for layer, d in zip(self.layers, diag):
            if not d["updates"]:  # the engines report on Dense layers only
                continue
            entry = history.diagnostics.setdefault(layer.name, {
                "grad_norm": [], "update_ratio": [], "dead_fraction": []})
            g = d["grad_norm_sum"] / d["updates"]
            dead = d["dead_fraction_sum"] / d["batches"] if d["batches"] else None
            entry["grad_norm"].append(g)
            entry["update_ratio"].append(d["update_ratio_sum"] / d["updates"])
            entry["dead_fraction"].append(dead)
            norms[layer.name] = g
            if dead is not None and dead > 0.9:
                warnings.warn(f"{layer.name}: {dead:.0%} of its ReLU units are dead (never "
                              f"positive); lower the learning rate or use leaky_relu",
                              RuntimeWarning, stacklevel=4)
        if not norms:
            return
        top = max(norms.values())
        for name, g in norms.items():
            if not math.isfinite(g):
                warnings.warn(f"{name}: gradient norm is {g}; lower the learning rate or pass "
                              f"clipnorm= to compile", RuntimeWarning, stacklevel=4)
            elif g > 1e4:
                warnings.warn(f"{name}: exploding gradients (norm {g:.3g}); lower the learning "
                              f"rate, pass clipnorm= to compile, or add BatchNorm",
                              RuntimeWarning, stacklevel=4)
            elif math.isfinite(top) and g < 1e-5 * top:
                # Vanishing means small next to the other layers' gradients (a loss near zero
                # makes every gradient small, which is no failure).
                warnings.warn(f"{name}: vanishing gradients (norm {g:.3g}, {top:.3g} in the "
                              f"layer with the largest); prefer relu with he initialization over "
                              f"sigmoid/tanh in deep stacks, or add BatchNorm", RuntimeWarning,
                              stacklevel=4)

    # ------------------------------------------------------------------ inference
    def _evaluate_arrays(self, X: Any, labels: Any, targets: Any, batch_size: int = 1024,
                         sample_weight: Any = None) -> dict[str, float]:
        net = self._net
        s = net.evaluate(X, labels, targets, batch_size, sample_weight)
        out = {"loss": s["loss_sum"] / s["rows"] if s["rows"] else float("nan")}
        need_pred = any(m in ("top_k_accuracy", "mse", "mae") for m in self.metrics)
        pred = _model_device.to_host(self._predict_arrays(net, X, batch_size)) if need_pred else None
        if need_pred:  # GPU models: the metrics below are computed on host copies
            labels, targets = _model_device.to_host(labels), _model_device.to_host(targets)
        for m in self.metrics:
            if m in ("accuracy", "binary_accuracy"):
                if s["counted"]:
                    out[m] = s["correct"] / s["counted"]
            elif m == "top_k_accuracy" and labels is not None:
                from fastnn.ops import top_k_correct

                out[m] = top_k_correct(pred, labels, min(5, self.output_dim)) / len(X)
            elif m in ("mse", "mae"):
                t = targets if targets is not None else np.eye(self.output_dim, dtype=np.float32)[labels]
                d = pred.astype(np.float64) - t
                out[m] = float(np.mean(d * d) if m == "mse" else np.mean(np.abs(d)))
        return out

    def evaluate(self, X: ArrayIn, y: ArrayIn, batch_size: int = 1024, verbose: int = 0,
                 sample_weight: ArrayLike | None = None) -> dict[str, float]:
        """The loss and metrics on (X, y) in inference mode: ``{"loss": ..., "accuracy": ...}``.
        With sample_weight the loss is sum_i w_i l_i / n (the metrics are unweighted).
        Safe from many threads at once; Ctrl-C interrupts it (KeyboardInterrupt) within about
        0.1 s plus one batch on the CPU."""
        self._require_compiled("evaluate")
        verbose = verbosity(verbose)
        X, labels, targets, unchecked = self._inputs(X, y)
        if len(X) == 0:
            raise ValueError("X: no samples to evaluate")
        weights = self._sample_weights(len(X), labels, None, _model_device.to_host(sample_weight))
        X, labels, targets, weights = (self._place.put(a) for a in (X, labels, targets, weights))
        if unchecked:
            self._net.check_labels(labels)
        out = self._evaluate_arrays(X, labels, targets,
                                    self._int_arg(batch_size, "batch_size", 1), weights)
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in out.items()))
        return out

    def _inference_net(self) -> Any:
        """The engine, or for a model never compiled, one built just for inference (once, by
        whichever thread asks first)."""
        net = self._net
        if net is not None:
            return net
        with _STATE_LOCK:
            if self._net is None:
                last = getattr(self.layers[-1], "activation", None)
                loss = {"softmax": "softmax_cross_entropy", "sigmoid": "binary_cross_entropy"}.get(last, "mse")
                from fastnn.optim import SGD

                net = self._new_net(loss, SGD(lr=0.01).engine_spec(), {})
                self._put_weights(self._weights, check_values=True, net=net)
                self._net, self._weights = net, None
            return self._net

    def predict(self, X: ArrayIn, batch_size: int = 1024) -> Array:
        """Outputs after the loss's link: class probabilities for the cross-entropies, raw
        outputs for regression. (n, outputs) float32: a NumPy array, or on a GPU model given
        GPU input (fastnn.Tensor, PyTorch, CuPy), a CUDA fastnn.Tensor.
        Safe from many threads at once (each call gives exactly what it gives alone); Ctrl-C
        interrupts it (KeyboardInterrupt) within about 0.1 s plus one batch on the CPU."""
        if type(batch_size) is not int or batch_size < 1:
            batch_size = self._int_arg(batch_size, "batch_size", 1)
        net = self._net or self._inference_net()
        if (self._host and type(X) is np.ndarray and X.dtype == self.dtype and X.ndim == 2
                and X.shape[1] == self.input_dim and X.flags.carray):
            # The common case, with nothing to convert: straight to the engine, which checks X
            # for NaN and infinity on its way through and says whether the outputs are finite
            # (batch-1 predict is a few microseconds in all: every Python step counts).
            out = np.empty((X.shape[0], self.output_dim), self.dtype)
            if not net.predict(X, out, batch_size):
                _warn_overflow()
            return out
        Xe, Xh = self._place.native_features(X, self.input_dim), None
        if Xe is None:
            # GPU input in another form (float64, strided, another device) goes through the
            # host, and still gives a CUDA tensor, as documented.
            Xh = as_features(_model_device.to_host(X), self.input_dim, "X", dtype=self.dtype,
                             check_finite=not self._place.engine_checks_finite)
            Xe = self._place.put(Xh)
        out = self._place.empty((len(Xe), self.output_dim), self.dtype)
        try:
            finite = net.predict(Xe, out, batch_size)
        except ValueError as e:
            if Xh is not None and "NaN or infinity" in str(e):
                as_features(Xh, self.input_dim)  # the message with the row and column
            raise
        out = self._place.result(out, X)
        if finite is False or (finite is None and isinstance(out, np.ndarray)
                               and not np.isfinite(out).all()):
            _warn_overflow()
        return out

    def _predict_arrays(self, net: Any, X: Any, batch_size: int) -> Any:
        """The engine's predict on arrays already on its device: a new (n, outputs) array there."""
        out = self._place.empty((len(X), self.output_dim), self.dtype)
        net.predict(X, out, batch_size)
        return out

    def predict_classes(self, X: ArrayIn, batch_size: int = 1024) -> Array:
        """Class indices: argmax for several outputs, probability > 0.5 for one sigmoid."""
        p = _model_device.to_host(self.predict(X, batch_size))
        if p.shape[1] == 1:
            return (p[:, 0] > 0.5).astype(np.int64)
        from fastnn.ops import argmax_rows

        return argmax_rows(p)

    # ------------------------------------------------------------------ description
    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """A table of layers, output shapes and parameter counts; printed and returned."""
        lines = [f"Sequential (input_dim={self.input_dim})",
                 f"{'layer':<16}{'type':<18}{'output':<14}{'params':>10}"]
        total = 0
        widths = layers_mod.widths(self.layers, self.input_dim)
        for layer, fin, fout in zip(self.layers, widths, widths[1:]):
            n = layers_mod.trainable_count([layer], fin)
            total += n
            lines.append(f"{layer.name:<16}{layer.summary_type():<18}{str((None, fout)):<14}"
                         f"{n:>10,}")
        lines.append(f"total trainable parameters: {total:,}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def get_config(self) -> dict[str, Any]:
        config = {"input_dim": self.input_dim, "seed": self.seed,
                  "layers": [layer.get_config() for layer in self.layers]}
        if self.dtype != np.float32:  # float32 files stay as they were
            config["dtype"] = self.dtype.name
        return config

    # ------------------------------------------------------------------ persistence
    def save(self, path: PathLike, include_optimizer: bool = True,
             metadata: Mapping[str, Any] | None = None) -> None:
        """Write the model to `path` (safetensors; atomic). See `fastnn.load`.

        include_optimizer: also the optimizer state and step count, so training can resume.
        metadata: extra JSON-able values stored alongside (read back by fastnn.io.load_arrays);
        the format's own keys ("fastnn_model", "fastnn_version", "compile", "step") are refused.
        """
        io.save_arrays(path, *self._to_arrays(include_optimizer, metadata))

    def _to_arrays(self, include_optimizer: bool = True,
                   metadata: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """(arrays, metadata) of the file `save` writes."""
        # Weights, optimizer state and step must be one snapshot: fit in another thread would
        # move them between the reads, so saving (or pickling) then raises; fit cannot start
        # meanwhile (it registers under the same lock), and from fit's own callbacks this runs
        # between slices.
        with _STATE_LOCK:
            self._check_not_training("save")
            return io.model_arrays(self, include_optimizer, metadata)

    # ------------------------------------------------------------------ models out and in
    def _output_link(self) -> str | None:
        """The link predict applies after the last layer ("softmax", "sigmoid" or None): the
        compiled loss's, unless the last layer's activation already is that link. An
        uncompiled model's predict returns the last layer's outputs as they are."""
        if self.loss is None:
            return None
        link, in_last_layer = self._link(self.loss)
        return None if in_last_layer else link

    def export_onnx(self, path: "str | os.PathLike[str]") -> None:
        """Write the model to `path` as an ONNX file computing what ``predict`` returns (float32
        or float64 as the model; dynamic batch size). Needs the ``onnx`` package
        (``pip install 'fastnn[onnx]'``). A ``precision="bf16"`` model is written with its
        float32 weights and computes in float32 there. See fastnn/export_onnx.py."""
        from fastnn.export_onnx import export_onnx

        export_onnx(self, path)

    def to_torch(self) -> Any:
        """A ``torch.nn.Sequential`` (in eval mode, the model's dtype) with the same weights and
        the same outputs as ``predict``. Needs PyTorch. See fastnn/torch_export.py."""
        from fastnn.torch_export import to_torch

        return to_torch(self)

    def load_weights(self, path: "str | os.PathLike[str]") -> None:
        """Set the weights from a ``.safetensors`` or ``.npz`` file whose arrays have the names
        and layouts of ``to_torch().state_dict()`` (``dense_0.weight`` (units, inputs),
        ``dense_0.bias``, ``batch_norm_0.running_mean``, ...). See fastnn/weights_files.py."""
        from fastnn.weights_files import load_weights

        load_weights(self, path)

    # Pickling (and copy.copy / copy.deepcopy) goes through the bytes `save` writes, never the
    # engine's memory: the copy is a new engine with the same weights, optimizer state and step,
    # so it predicts the same and resumes training exactly as the original would. The Python-side
    # record of the last fit (history, stop_training) travels along.
    _PICKLED_ATTRIBUTES = ("history", "stop_training")

    def __getstate__(self) -> dict[str, Any]:
        state = {"model": io.dumps_arrays(*self._to_arrays()), "device": self.device,
                 "precision": self.precision, "fused_mlp": self.fused_mlp,
                 "graphs": self.graphs}
        state.update((k, self.__dict__[k]) for k in self._PICKLED_ATTRIBUTES)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "model" not in state:
            raise ValueError("Sequential: unpickled state is not one Sequential.__getstate__ made")
        fresh = io.model_from_arrays(Sequential, *io.loads_arrays(state["model"]), "<bytes>",
                                     state["device"], state["precision"], strict=False,
                                     options={"fused_mlp": state["fused_mlp"],
                                              "graphs": state["graphs"]})
        self.__dict__.update(fresh.__dict__)
        # Callbacks and the engine-less record point at this object, not at `fresh`.
        self.__dict__.update((k, state[k]) for k in self._PICKLED_ATTRIBUTES if k in state)


def load(path: PathLike, device: str = "cpu", precision: str = "fp32") -> Sequential:
    """A model saved by `Sequential.save`: same architecture and weights, compiled as it was
    (with its optimizer state when saved), so it predicts the same and can resume training.
    device / precision: where the loaded model lives and computes (as for Sequential); a file
    saved from a GPU model loads on the CPU and the other way round.

    A file that is damaged, crafted or not a fastnn model raises ValueError naming the problem;
    so does a path that is not a regular file (a directory, FIFO or device)."""
    # Device errors are not file errors: checked first.
    _model_device.check_precision(precision, _model_device.parse_device(device))
    return io.model_from_arrays(Sequential, *io.load_arrays(path), repr(str(path)), device,
                                precision)
