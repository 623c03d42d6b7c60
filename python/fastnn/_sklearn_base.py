"""What fastnn.sklearn's MLPClassifier and MLPRegressor share: the parameters and their
constraints, the network they build, and the training loop with scikit-learn's semantics
(sklearn/neural_network/_multilayer_perceptron.py is the reference for every meaning here).

The subclasses say how targets are encoded (``_encode_targets``), scored on the validation part
(``_validation_score``) and decoded (``predict``)."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import (_check_sample_weight, check_is_fitted, column_or_1d,
                                      validate_data)

from fastnn.layers import weight_roles

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11 on

    from fastnn.model import Sequential
    from fastnn.optim import Optimizer

# scikit-learn's activation names -> fastnn's (None: no activation).
ACTIVATIONS = {"identity": None, "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
# The output activation (scikit-learn's out_activation_) -> the fastnn layer activation and loss.
OUTPUTS = {"softmax": ("softmax", "softmax_cross_entropy"),
           "logistic": ("sigmoid", "binary_cross_entropy"),
           "identity": (None, "mse")}
# scikit-learn's loss per sample, in units of fastnn's: the log loss of k sigmoid outputs is
# summed over them (fastnn's binary cross-entropy is their mean), the squared error is halved.
# Given as sample weights, these factors make the gradients and loss_curve_ those of scikit-learn.
LOSS_SCALE = {"softmax": lambda k: 1.0, "logistic": lambda k: float(k), "identity": lambda k: 0.5}
ACCEPT_SPARSE = ["csr", "csc"]
FLOATS = (np.float64, np.float32)


# The parameters both estimators share, with scikit-learn's meanings and defaults; each class
# docstring ends with this text.
PARAMETERS_DOC = """
    Parameters (scikit-learn's, same defaults)
    ------------------------------------------
    hidden_layer_sizes : tuple of int, default (100,) -- units of each hidden layer.
    activation : "identity", "logistic", "tanh" or "relu" (default) -- hidden activation.
    solver : "adam" (default) or "sgd"; "lbfgs" is refused (fastnn trains by mini-batches).
    alpha : float, default 1e-4 -- L2 penalty: alpha / 2 * sum of squared weights, divided by
        the batch's total sample weight, added to each batch's loss.
    batch_size : int or "auto" (default: min(200, n_samples)) -- rows per update.
    learning_rate : "constant" (default), "invscaling" (learning_rate_init / (t_ + 1) **
        power_t, t_ = samples seen) or "adaptive" (divided by 5 when n_iter_no_change + 1
        epochs in a row miss tol); SGD only, as in scikit-learn.
    learning_rate_init : float, default 1e-3.  power_t : float, default 0.5.
    max_iter : int, default 200 -- epochs at most (one for each partial_fit).
    shuffle : bool, default True -- reshuffle the rows every epoch.
    random_state : int, RandomState or None -- initial weights, shuffles, validation split.
    tol : float, default 1e-4 and n_iter_no_change : int, default 10 -- training stops when the
        loss (or with early_stopping the validation score) has not improved by tol for
        n_iter_no_change + 1 epochs in a row.
    verbose : bool or int -- print each epoch's loss (and validation score).
    warm_start : bool -- fit continues from the previous fit's weights (fresh optimizer).
    momentum : float, default 0.9 and nesterovs_momentum : bool, default True -- SGD's.
    early_stopping : bool, default False and validation_fraction : float, default 0.1 -- hold
        out a seeded random part (stratified by class for single-label classification), monitor
        its accuracy (classifier) or R^2 (regressor), and keep the weights of the best epoch.
    beta_1, beta_2, epsilon : Adam's, defaults 0.9, 0.999, 1e-8.
    max_fun : int, default 15000 -- lbfgs's; accepted and unused.

    fastnn's own
    ------------
    dropout : float in [0, 1), default 0 -- dropout rate after each hidden layer.
    batch_norm : bool, default False -- BatchNorm before each hidden activation.
    device : "cpu" (default), "cuda" or "cuda:N".  precision : "fp32" (default), "bf16" (CPU
        or GPU) or "tf32" (GPU) -- the GEMM arithmetic.  Models compute in float64 for float64
        input on the CPU with precision="fp32" (as scikit-learn does), otherwise in float32.

    Fitted attributes: classes_ (classifier), coefs_, intercepts_, loss_, loss_curve_,
    best_loss_, validation_scores_, best_validation_score_, n_iter_ (epochs of the last call),
    t_, n_layers_, n_outputs_, out_activation_, n_features_in_, feature_names_in_, and model_
    (the fastnn.Sequential).
"""


class BaseMLP(BaseEstimator):
    _parameter_constraints: dict[str, Any] = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"),
                             Options(numbers.Real, {np.inf})],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        # fastnn's own
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "device": [str],
        "precision": [StrOptions({"fp32", "tf32", "bf16"})],
    }

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # accepted, and made dense for the engine
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        # The network, not any attribute ending in "_": a fit that failed half-way (after the
        # attributes' starting values were set) leaves an unfitted estimator.
        return hasattr(self, "model_")

    # ------------------------------------------------------------------ parameters
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = [sizes]
        elif np.ndim(sizes) != 1:
            raise ValueError(f"hidden_layer_sizes: expected an int or a flat sequence of ints, "
                             f"got {sizes!r}")
        for h in sizes:
            if (isinstance(h, (bool, np.bool_)) or not isinstance(h, numbers.Integral)
                    or h <= 0):
                raise ValueError(f"hidden_layer_sizes: expected positive integers, got "
                                 f"{self.hidden_layer_sizes!r}")
        return [int(h) for h in sizes]

    def _check_combination(self, incremental: bool) -> None:
        """Parameter combinations that each constraint alone lets through."""
        if self.solver == "lbfgs":
            raise ValueError("solver='lbfgs' is not offered by fastnn, which trains by "
                             "mini-batches; use solver='adam' (the default) or 'sgd'")
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True (there is no "
                             "held-out part of a single batch to monitor)")
        if self.early_stopping and self.validation_fraction == 0:
            raise ValueError("validation_fraction: early_stopping=True monitors a validation "
                             "score, which needs validation_fraction > 0, got 0")

    def _optimizer(self) -> Optimizer:
        from fastnn import optim

        if self.solver == "adam":
            return optim.Adam(lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2),
                              eps=self.epsilon)
        return optim.SGD(lr=self.learning_rate_init, momentum=self.momentum,
                         nesterov=bool(self.nesterovs_momentum) and self.momentum > 0)

    # ------------------------------------------------------------------ data
    def _validate_X(self, X: ArrayLike, reset: bool) -> NDArray[Any]:
        """validate_data with the estimators' rules; sparse input becomes dense (the engine
        reads dense rows)."""
        X = validate_data(self, X, accept_sparse=ACCEPT_SPARSE, dtype=FLOATS, reset=reset)
        return X.toarray() if sp.issparse(X) else X

    def _validate_Xy(self, X: ArrayLike, y: ArrayLike,
                     reset: bool) -> tuple[NDArray[Any], NDArray[Any]]:
        X, y = validate_data(self, X, y, accept_sparse=ACCEPT_SPARSE, dtype=FLOATS, reset=reset,
                             multi_output=True, **self._y_checks())
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)  # scikit-learn's DataConversionWarning
        return (X.toarray() if sp.issparse(X) else X), y

    def _forward(self, X: ArrayLike) -> NDArray[Any]:
        """The network's outputs (after its output link), in X's precision or wider."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        out = np.asarray(self.model_.predict(X))
        return out.astype(np.result_type(X.dtype, out.dtype), copy=False)

    # ------------------------------------------------------------------ the network
    def _build_model(self, n_features: int, n_outputs: int, out_activation: str, dtype: Any,
                     rng: np.random.RandomState, batch: int, weight_mean: float) -> Sequential:
        import fastnn
        from fastnn.layers import Activation, BatchNorm, Dense, Dropout

        l2 = self._l2(batch, weight_mean)
        act = ACTIVATIONS[self.activation]
        layers = []
        for h in self._hidden_sizes():
            if self.batch_norm:
                layers += [Dense(h, l2=l2), BatchNorm()]
                layers += [Activation(act)] if act is not None else []
            else:
                layers.append(Dense(h, act, l2=l2))
            if self.dropout:
                layers.append(Dropout(float(self.dropout)))
        link, loss = OUTPUTS[out_activation]
        layers.append(Dense(n_outputs, link, l2=l2))
        model = fastnn.Sequential(layers, input_dim=n_features,
                                  seed=int(rng.randint(np.iinfo(np.int32).max)),
                                  device=self.device, precision=self.precision,
                                  dtype=dtype if self.device == "cpu" and self.precision == "fp32"
                                  else np.float32)
        # scikit-learn's initialisation (Glorot uniform, intercepts too, bound sqrt(6 / (fan_in
        # + fan_out)), 2 instead of 6 for logistic units), drawn from random_state: fastnn's
        # own (He for relu, zero biases) learns noticeably slower on small unscaled data sets.
        factor = 2.0 if self.activation == "logistic" else 6.0
        weights = model.get_weights()
        for i, role in enumerate(weight_roles(model.layers)):  # BatchNorm's stay as they are
            if role == "kernel":  # its bias follows it and shares its bound
                bound = np.sqrt(factor / sum(weights[i].shape))
            if role in ("kernel", "bias"):
                weights[i] = rng.uniform(-bound, bound, weights[i].shape)
        model.set_weights(weights)
        return model.compile(loss, self._optimizer())

    def _l2(self, batch: int, weight_mean: float) -> float:
        # scikit-learn adds alpha / 2 * ||W||^2 to each batch's loss, divided by the batch's
        # total sample weight; fastnn's Dense(l2=) adds l2 * ||W||^2 to each batch's loss.
        return 0.5 * float(self.alpha) / (batch * weight_mean)

    def _start(self, n_outputs: int, out_activation: str) -> None:
        """The fitted attributes' starting values (scikit-learn's _initialize)."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(self._hidden_sizes()) + 2
        self.out_activation_ = out_activation
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self._epochs_seen = 0
        self.validation_scores_ = self.best_validation_score_ = self.best_loss_ = None
        self._start_monitoring()

    def _start_monitoring(self) -> None:
        """The starting values of what early stopping (or else the training loss) monitors; also
        when a warm start switches early_stopping on or off."""
        if self.early_stopping and self.validation_scores_ is None:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self._best_weights = None  # the weights of the best validation score so far
            self.best_loss_ = None
        elif not self.early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _set_weight_attributes(self) -> None:
        """coefs_ / intercepts_ (one per Dense layer) from the model's weights."""
        pairs = list(zip(weight_roles(self.model_.layers), self.model_.get_weights()))
        self.coefs_ = [w for role, w in pairs if role == "kernel"]
        self.intercepts_ = [w for role, w in pairs if role == "bias"]

    # ------------------------------------------------------------------ training
    def _fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None,
             incremental: bool) -> Self:
        from fastnn._sklearn_epochs import SklearnEpochs

        self._check_combination(incremental)
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        X, y = self._validate_Xy(X, y, reset=first)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype,
                                             ensure_non_negative=True)
        targets, labels_1d, n_outputs, out_activation = self._encode_targets(y, first,
                                                                            incremental)
        sample_weight = sample_weight * self._class_weights(y, incremental)
        rng = check_random_state(self.random_state)
        if first:
            self._start(n_outputs, out_activation)
        elif n_outputs != self.n_outputs_:
            raise ValueError(f"y: expected {self.n_outputs_} outputs as in the previous fit, "
                             f"got {n_outputs}")
        else:
            self._start_monitoring()
        validation = None
        if self.early_stopping:
            split = train_test_split(
                X, targets, y, sample_weight, random_state=rng,
                test_size=self.validation_fraction,
                stratify=_stratify(labels_1d, self.validation_fraction))
            X, X_val, targets, _, _, y_val, sample_weight, sw_val = split
            if len(X_val) < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            validation = (X_val, y_val, sw_val)
        n = len(X)
        if self.batch_size == "auto":
            batch = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` larger than the sample size; it is clipped to "
                              f"{n}", UserWarning, stacklevel=3)
            batch = min(int(self.batch_size), n)
        # Weights of mean 1: a batch's loss is then scikit-learn's weighted mean, and scaling
        # every weight by the same factor changes nothing.
        weight_mean = float(np.mean(sample_weight))
        if not weight_mean > 0:
            raise ValueError("sample_weight: every sample to train on has weight 0 (sample_weight "
                             "times class_weight, after early_stopping's held-out part)")
        engine_weights = (sample_weight / weight_mean) * LOSS_SCALE[self.out_activation_](
            self.n_outputs_)
        if first:
            self.model_ = self._build_model(X.shape[1], n_outputs, out_activation, X.dtype, rng,
                                            batch, weight_mean)
        elif not incremental:
            # Warm start: this fit's alpha, batch size and sample weights set the penalty, and a
            # new optimizer starts (compile rebuilds the engine from the layers, weights kept).
            l2 = self._l2(batch, weight_mean)
            for layer in self.model_.layers:
                if hasattr(layer, "l2"):  # the layers with a weight penalty
                    layer.l2 = l2
            self.model_.compile(self.model_.loss, self._optimizer())
        self.n_iter_ = 0  # epochs of this call (a partial_fit: 1), as scikit-learn counts
        epochs = SklearnEpochs(self, n, validation, incremental)
        start = self._epochs_seen
        history = self.model_.fit(
            X, targets, epochs=start + (1 if incremental else int(self.max_iter)),
            initial_epoch=start, batch_size=batch, shuffle=bool(self.shuffle),
            callbacks=[epochs], sample_weight=engine_weights, verbose=0)
        self._epochs_seen = start + len(history.epoch)
        if self.early_stopping and self._best_weights is not None:
            self.model_.set_weights(self._best_weights)
        self._set_weight_attributes()
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")
        if not incremental and not epochs.converged and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          f"and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=3)
        return self

    def _class_weights(self, y: NDArray[Any], incremental: bool) -> Any:
        return 1.0  # the classifier's class_weight; the regressor has none

    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        """Train on (X, y) for up to max_iter epochs (a fresh network unless warm_start).

        sample_weight: one weight per sample; a batch's loss is the weighted mean of the
        samples' losses, as in scikit-learn."""
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=False)


def keep_params(estimator: Any, params: Mapping[str, Any]) -> None:
    """Store an estimator's __init__ arguments (its locals()) as attributes, unchanged:
    scikit-learn's get_params and clone read them back by the names of the signature, and
    check_estimator requires that __init__ does nothing else."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


def _stratify(labels: NDArray[Any], fraction: float) -> NDArray[Any] | None:
    """The labels to stratify the validation split by, or None where that cannot be done (no
    labels: regression, multi-label; a class with a single sample; fewer rows in a part than
    there are classes): then the split is a plain seeded random one."""
    if labels is None:
        return None
    n = len(labels)
    n_val = int(np.ceil(fraction * n))
    _, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2 or min(n_val, n - n_val) < len(counts):
        return None
    return labels
