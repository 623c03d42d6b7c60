"""scikit-learn's per-epoch rules for fastnn.sklearn's estimators, as a fastnn callback.

sklearn.neural_network decides after every epoch (one "iteration") whether the loss or the
validation score improved by more than ``tol``, stops once ``n_iter_no_change`` epochs in a row
have not (for ``learning_rate="adaptive"`` with SGD: divides the learning rate by 5 instead, until
it is below 1e-6), keeps the best weights for ``early_stopping``, and for ``"invscaling"`` sets
the SGD rate to ``learning_rate_init / (t_ + 1) ** power_t``, ``t_`` counting the samples seen.
The estimator's fitted attributes (``n_iter_``, ``t_``, ``loss_curve_``, ``best_loss_``,
``validation_scores_``, ...) are written here, epoch by epoch, with scikit-learn's meanings; the
best epoch's weights (``_best_weights``) too: a warm-started fit that never beats an earlier
fit's best validation score ends with that fit's best weights, as scikit-learn's does.
"""

from __future__ import annotations

import math
from typing import Any

from fastnn.callbacks import Callback


class SklearnEpochs(Callback):
    """est: the estimator being fitted (its attributes are updated in place); n_train: rows
    trained on per epoch; validation: (X_val, y_val, sample_weight_val) for early stopping, or
    None; incremental: partial_fit (one epoch, no stopping decision)."""

    def __init__(self, est: Any, n_train: int, validation: Any, incremental: bool) -> None:
        super().__init__()
        self.est = est
        self.n_train = n_train
        self.validation = validation
        self.incremental = incremental
        self.converged = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        est, model = self.est, self.model
        loss = float(logs["loss"])
        est.n_iter_ += 1
        est.t_ += self.n_train
        est.loss_ = loss
        est.loss_curve_.append(loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        if not math.isfinite(loss):
            return  # Sequential.fit stops on its own; the estimator reports it
        self._count_no_improvement(loss)
        sgd = est.solver == "sgd"
        if sgd and est.learning_rate == "invscaling":
            model.optimizer.lr = est.learning_rate_init / (est.t_ + 1) ** est.power_t
        if self.incremental or est._no_improvement_count <= est.n_iter_no_change:
            return
        what = ("Validation score" if self.validation is not None else "Training loss")
        msg = (f"{what} did not improve more than tol={est.tol:f} for "
               f"{est.n_iter_no_change} consecutive epochs.")
        if sgd and est.learning_rate == "adaptive" and model.optimizer.lr > 1e-6:
            model.optimizer.lr = model.optimizer.lr / 5.0
            est._no_improvement_count = 0
            if est.verbose:
                print(f"{msg} Setting learning rate to {model.optimizer.lr:f}")
            return
        if est.verbose:
            print(f"{msg} Stopping.")
        self.converged = True
        model.stop_training = True

    def _count_no_improvement(self, loss: float) -> None:
        est = self.est
        if self.validation is None:
            est._no_improvement_count = (est._no_improvement_count + 1
                                         if loss > est.best_loss_ - est.tol else 0)
            est.best_loss_ = min(est.best_loss_, loss)
            return
        score = est._validation_score(*self.validation)
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {score:f}")
        # A NaN score never improves (both comparisons are False).
        est._no_improvement_count = (0 if score >= est.best_validation_score_ + est.tol
                                     else est._no_improvement_count + 1)
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            est._best_weights = self.model.get_weights()
