"""The classic single-layer perceptron (Rosenblatt): a step activation and the perceptron
learning rule, one sample at a time."""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastnn._checks import finite_real, integer
from fastnn._model_data import as_features


class Perceptron:
    """``Perceptron(lr=1.0, max_epochs=100, seed=0)``: labels 0/1, prediction
    ``step(x @ weights_ + bias_)`` (1 where the sum is > 0).

    fit visits the samples in a seeded random order each epoch and, for each mistake, moves the
    weights by ``lr * (y - prediction) * x`` (the bias by ``lr * (y - prediction)``); it stops
    early after an epoch with no mistake (the data are separated). ``errors_`` holds the
    mistakes per epoch, ``converged_`` whether the last epoch had none.
    """

    lr: float
    max_epochs: int
    seed: int
    weights_: NDArray[np.float32] | None
    bias_: np.float32 | None
    errors_: list[int]
    converged_: bool

    def __init__(self, lr: float = 1.0, max_epochs: int = 100, seed: int = 0) -> None:
        self.lr = finite_real(lr, "lr")
        if self.lr <= 0:
            raise ValueError(f"lr: expected a positive number, got {self.lr}")
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, numbers.Integral) or max_epochs < 1:
            raise ValueError(f"max_epochs: expected a positive int, got {max_epochs!r}")
        self.max_epochs = int(max_epochs)
        self.seed = integer(seed, "seed")
        self.weights_ = None
        self.bias_ = None
        self.errors_ = []
        self.converged_ = False

    def fit(self, X: ArrayLike, y: ArrayLike) -> Perceptron:
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X: expected a 2-D array (samples, features), got shape {X.shape}")
        X = as_features(X, X.shape[1]).astype(np.float64)
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"y: expected numeric labels 0 or 1, got dtype {y.dtype}")
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"y: expected {len(X)} labels of shape ({len(X)},), got shape {y.shape}")
        if len(X) == 0:
            raise ValueError("X: no samples to train on")
        if not np.isin(y, (0, 1)).all():
            raise ValueError("y: perceptron labels must be 0 or 1")
        y = y.astype(np.float64)
        rng = np.random.default_rng(self.seed)
        w = np.zeros(X.shape[1])
        b = 0.0
        self.errors_ = []
        self.converged_ = False
        for _ in range(self.max_epochs):
            mistakes = 0
            for i in rng.permutation(len(X)):
                pred = 1.0 if X[i] @ w + b > 0 else 0.0
                delta = y[i] - pred
                if delta:
                    w += self.lr * delta * X[i]
                    b += self.lr * delta
                    mistakes += 1
            self.errors_.append(mistakes)
            if mistakes == 0:
                self.converged_ = True
                break
        self.weights_ = w.astype(np.float32)
        self.bias_ = np.float32(b)
        return self

    def decision_function(self, X: ArrayLike) -> NDArray[np.float32]:
        if self.weights_ is None:
            raise RuntimeError("Perceptron: call fit first")
        X = as_features(X, len(self.weights_))
        return X @ self.weights_ + self.bias_

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:
        """0/1 labels: step(x @ weights_ + bias_)."""
        return (self.decision_function(X) > 0).astype(np.int64)

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y)))
