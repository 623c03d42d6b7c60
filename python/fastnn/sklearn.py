"""scikit-learn estimators trained by fastnn: `MLPClassifier` and `MLPRegressor` with
scikit-learn's parameter names and meanings, usable in `Pipeline`, `GridSearchCV` and
`cross_val_score`. Needs scikit-learn (imported here, not by `import fastnn`).

Differences from sklearn.neural_network, by design: solver "lbfgs" is not offered (fastnn trains
by mini-batches); the classifier always has one softmax output per class (also for two classes);
`learning_rate="invscaling"` scales per epoch.
"""

import numbers

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
except ImportError as e:  # pragma: no cover
    raise ImportError("fastnn.sklearn needs scikit-learn: pip install scikit-learn") from e

ACTIVATIONS = {"identity": None, "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


class _MLP(BaseEstimator):
    def __init__(self, hidden_layer_sizes=(100,), activation="relu", solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 verbose=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change

    def _optimizer(self):
        from fastnn import optim

        schedule = (optim.InverseScaling(power=self.power_t)
                    if self.learning_rate == "invscaling" else None)
        if self.solver == "adam":
            return optim.Adam(lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2),
                              eps=self.epsilon, schedule=schedule)
        if self.solver == "sgd":
            return optim.SGD(lr=self.learning_rate_init, momentum=self.momentum,
                             nesterov=self.nesterovs_momentum and self.momentum > 0,
                             schedule=schedule)
        raise ValueError(f"solver: expected 'adam' or 'sgd' (fastnn trains by mini-batches; "
                         f"'lbfgs' is not offered), got {self.solver!r}")

    def _check_params(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got "
                             f"{self.activation!r}")
        if self.learning_rate not in ("constant", "invscaling", "adaptive"):
            raise ValueError(f"learning_rate: expected 'constant', 'invscaling' or 'adaptive', "
                             f"got {self.learning_rate!r}")
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, numbers.Integral) else tuple(sizes)
        if any(not isinstance(h, numbers.Integral) or h <= 0 for h in sizes):
            raise ValueError(f"hidden_layer_sizes: expected positive ints, got {sizes}")
        return sizes

    def _fit(self, X, targets, n_outputs, loss, output_activation):
        import fastnn
        from fastnn import callbacks
        from fastnn.layers import Dense

        sizes = self._check_params()
        n = len(X)
        seed = (int(np.random.SeedSequence().entropy % 2**32) if self.random_state is None
                else int(np.random.RandomState(self.random_state).randint(2**31)))
        batch = min(200, n) if self.batch_size == "auto" else int(self.batch_size)
        batch = max(1, min(batch, n))
        act = ACTIVATIONS[self.activation]
        # sklearn's penalty is alpha / 2 * ||W||^2 / batch size, added to each batch's loss.
        l2 = 0.5 * float(self.alpha) / batch
        layers = [Dense(h, act, l2=l2) for h in sizes] + [Dense(n_outputs, output_activation,
                                                               l2=l2)]
        self.model_ = fastnn.Sequential(layers, input_dim=X.shape[1], seed=seed)
        self.model_.compile(loss, self._optimizer())
        monitor = "val_loss" if self.early_stopping else "loss"
        cbs = [callbacks.EarlyStopping(monitor=monitor, min_delta=self.tol,
                                       patience=self.n_iter_no_change,
                                       restore_best_weights=self.early_stopping)]
        if self.learning_rate == "adaptive":
            cbs.append(callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.2, patience=2,
                                                   min_delta=self.tol))
        history = self.model_.fit(
            X, targets, epochs=int(self.max_iter), batch_size=batch, shuffle=bool(self.shuffle),
            validation_split=self.validation_fraction if self.early_stopping else 0.0,
            callbacks=cbs, verbose=2 if self.verbose else 0)
        self.loss_curve_ = list(history.history["loss"])
        self.loss_ = self.loss_curve_[-1]
        self.n_iter_ = len(history.epoch)
        self.n_features_in_ = X.shape[1]
        self.coefs_ = self.model_.get_weights()[0::2]
        self.intercepts_ = self.model_.get_weights()[1::2]
        return self

    def _features(self, X):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "model_")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X: expected {self.n_features_in_} features, got shape {X.shape}")
        return X


class MLPClassifier(ClassifierMixin, _MLP):
    """sklearn.neural_network.MLPClassifier's interface, trained by fastnn's engine."""

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float32)
        self.classes_, yi = np.unique(np.asarray(y), return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("y: a classifier needs at least two classes")
        return self._fit(X, yi.astype(np.int64), len(self.classes_), "softmax_cross_entropy",
                         "softmax")

    def predict_proba(self, X):
        return self.model_.predict(self._features(X)).astype(np.float64)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class MLPRegressor(RegressorMixin, _MLP):
    """sklearn.neural_network.MLPRegressor's interface, trained by fastnn's engine."""

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        self._one_output = y.ndim == 1
        targets = y[:, None] if y.ndim == 1 else y
        return self._fit(X, targets, targets.shape[1], "mse", None)

    def predict(self, X):
        p = self.model_.predict(self._features(X)).astype(np.float64)
        return p[:, 0] if self._one_output else p
