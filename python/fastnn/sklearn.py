"""scikit-learn estimators trained by fastnn: `MLPClassifier` and `MLPRegressor`, with
scikit-learn's parameters, defaults, fitted attributes and meanings (sklearn.neural_network is the
reference), usable in `Pipeline`, `GridSearchCV` and `cross_val_score`. They pass scikit-learn's
check_estimator. Needs scikit-learn (imported here, not by `import fastnn`).

Like scikit-learn's, they compute in their input's precision: float64 data train the float64
engine and give float64 outputs; pass float32 data for fastnn's fastest path. Sparse input is
accepted and made dense.

Differences from sklearn.neural_network, by design:
- solver="lbfgs" is refused (fastnn trains by mini-batches); max_fun is accepted and unused.
- the L2 penalty per batch is set by each fit's alpha, batch size and sample weights (a
  partial_fit keeps the first call's: on batches of other sizes it differs from scikit-learn's);
- early_stopping's held-out part is stratified for every single-label classification (scikit-learn
  stratifies only two classes), falling back to a plain random split where a class is too rare.
- fastnn's own parameters: dropout (rate after each hidden layer), batch_norm (BatchNorm before each
  hidden activation), device ("cpu", "cuda", "cuda:N"; GPU models compute in float32), precision
  (the GEMM arithmetic: "fp32", "bf16" on the CPU or GPU, "tf32" on the GPU; not "fp32" computes
  in float32) and, for the classifier, class_weight
  (None, "balanced" or {class: weight}, multiplied into sample_weight).

Fitted models pickle, deepcopy and clone as scikit-learn's do: the network is a fastnn.Sequential
(``model_``), which pickles through fastnn's safe format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

try:
    from sklearn.base import ClassifierMixin, RegressorMixin
except ImportError as e:  # pragma: no cover
    raise ImportError("fastnn.sklearn needs scikit-learn: pip install scikit-learn") from e
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import (_check_partial_fit_first_call, check_classification_targets,
                                      type_of_target, unique_labels)

from fastnn._sklearn_base import PARAMETERS_DOC, BaseMLP, keep_params

__all__ = ["MLPClassifier", "MLPRegressor"]


class MLPClassifier(ClassifierMixin, BaseMLP):
    __doc__ = """sklearn.neural_network.MLPClassifier, trained by fastnn's engine.

    Two classes: one sigmoid output (out_activation_ "logistic"); more: softmax outputs; a 2-D
    0/1 y (multi-label): one sigmoid per label. See the module docstring for the differences.

    class_weight : None (default), "balanced" or {class: weight} -- multiplies sample_weight.
    """ + PARAMETERS_DOC

    _parameter_constraints: dict[str, Any] = {
        **BaseMLP._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(self,
                 hidden_layer_sizes: int | Sequence[int] = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: int | str = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: int | np.random.RandomState | None = None, tol: float = 1e-4,
                 verbose: bool | int = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10, max_fun: int = 15000,
                 dropout: float = 0.0, batch_norm: bool = False, device: str = "cpu",
                 precision: str = "fp32",
                 class_weight: Mapping[Any, float] | str | None = None) -> None:
        keep_params(self, locals())

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _y_checks(self) -> dict[str, Any]:
        return {}

    def _encode_targets(self, y: NDArray[Any], first: bool,
                        incremental: bool) -> tuple[Any, Any, int, str]:
        """(engine targets, 1-D labels or None, outputs, out_activation) for y."""
        if y.dtype == object:  # NaN is refused by validate_data; None would fail to sort
            missing = [i for i, row in enumerate(y) if any(v is None for v in np.ravel(row))]
            if missing:
                raise ValueError(f"y: missing labels (None) in {len(missing)} rows, the first "
                                 f"in row {missing[0]}")
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            seen = unique_labels(y)
            if self.warm_start and set(seen) != set(self.classes_):
                raise ValueError(f"warm_start can only be used where `y` has the same classes "
                                 f"as in the previous call to fit. Previously got "
                                 f"{self.classes_}, `y` has {seen}")
            if len(np.setdiff1d(seen, self.classes_)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {seen}.")
        if len(self.classes_) < 2:
            raise ValueError(f"y: a classifier needs samples of at least 2 classes, got 1 "
                             f"class: {self.classes_.tolist()}")
        Y = self._label_binarizer.transform(y)
        if self._label_binarizer.y_type_ == "multiclass":
            return np.argmax(Y, axis=1).astype(np.int64), y, Y.shape[1], "softmax"
        return Y.astype(np.float64), (y if y.ndim == 1 else None), Y.shape[1], "logistic"

    def _class_weights(self, y: NDArray[Any], incremental: bool) -> Any:
        if self.class_weight is None:
            return 1.0
        if y.ndim != 1:
            raise ValueError("class_weight: not available for multi-label targets; pass "
                             "sample_weight instead")
        if incremental and isinstance(self.class_weight, str):
            raise ValueError("class_weight='balanced' is not available in partial_fit (each "
                             "batch would be balanced on its own); pass a dict of weights")
        return compute_sample_weight(self.class_weight, y)

    def _validation_score(self, X: NDArray[Any], y: NDArray[Any],
                          sample_weight: NDArray[Any] | None) -> float:
        proba = np.asarray(self.model_.predict(X))
        if not np.isfinite(proba).all():
            return np.nan
        return accuracy_score(y, self._label_binarizer.inverse_transform(proba),
                              sample_weight=sample_weight)

    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
                    classes: ArrayLike | None = None) -> MLPClassifier:
        """One epoch over (X, y), continuing the training so far. The first call needs
        `classes`: every class the model will ever see."""
        self._validate_params()
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            target = y if type_of_target(y).startswith("multilabel") else self.classes_
            self._label_binarizer.fit(target)
        return self._fit(X, y, sample_weight, incremental=True)

    def predict_proba(self, X: ArrayLike) -> NDArray[Any]:
        """Class probabilities, (n_samples, n_classes); for multi-label y, one probability per
        label."""
        p = self._forward(X)
        if self.n_outputs_ == 1:
            return np.hstack([1 - p, p])
        return p

    def predict_log_proba(self, X: ArrayLike) -> NDArray[Any]:
        return np.log(self.predict_proba(X))

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """The predicted classes (for multi-label y, the 0/1 indicator rows)."""
        proba = self._forward(X)  # first: it raises NotFittedError before fit
        return self._label_binarizer.inverse_transform(proba)


class MLPRegressor(RegressorMixin, BaseMLP):
    __doc__ = """sklearn.neural_network.MLPRegressor, trained by fastnn's engine: squared error (the
    "poisson" loss is not offered), one output per target column.

    loss : "squared_error" (default; half the mean squared error, as scikit-learn's).
    """ + PARAMETERS_DOC

    _parameter_constraints: dict[str, Any] = {
        **BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error"})],
    }

    def __init__(self, loss: str = "squared_error",
                 hidden_layer_sizes: int | Sequence[int] = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: int | str = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: int | np.random.RandomState | None = None, tol: float = 1e-4,
                 verbose: bool | int = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10, max_fun: int = 15000,
                 dropout: float = 0.0, batch_norm: bool = False, device: str = "cpu",
                 precision: str = "fp32") -> None:
        keep_params(self, locals())

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _y_checks(self) -> dict[str, Any]:
        return {"y_numeric": True}

    def _encode_targets(self, y: NDArray[Any], first: bool,
                        incremental: bool) -> tuple[Any, Any, int, str]:
        targets = y.reshape(len(y), -1)
        return targets, None, targets.shape[1], "identity"

    def _validation_score(self, X: NDArray[Any], y: NDArray[Any],
                          sample_weight: NDArray[Any] | None) -> float:
        pred = np.asarray(self.model_.predict(X))
        if not np.isfinite(pred).all():
            return np.nan
        return r2_score(y, pred.reshape(np.shape(y)), sample_weight=sample_weight)

    def partial_fit(self, X: ArrayLike, y: ArrayLike,
                    sample_weight: ArrayLike | None = None) -> MLPRegressor:
        """One epoch over (X, y), continuing the training so far."""
        self._validate_params()
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """(n_samples,) for one target, (n_samples, n_targets) for several."""
        out = self._forward(X)
        return out[:, 0] if self.n_outputs_ == 1 else out
