"""Model selection: k-fold splitters (plain and stratified, like sklearn's), cross-validation, and
random restarts that keep the model with the lowest validation loss.

A `build_fn` returns a fresh compiled model with fit(X, y, **kw) and evaluate(X, y) -> dict (at
least "loss"); fastnn.Sequential is one, but any object with those two methods works."""

from __future__ import annotations

import inspect
import itertools
import math
import numbers
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _parallel
from ._checks import flag, integer, seed_or_none
from .data import _group_ids, split_validation, validate_xy

__all__ = ["KFold", "StratifiedKFold", "cross_validate", "random_restarts", "search"]


def _check_n_splits(n_splits: int) -> int:
    if integer(n_splits, "n_splits") < 2:
        raise ValueError(f"n_splits: expected >= 2 (one fold is no cross-validation), "
                         f"got {n_splits}")
    return int(n_splits)


def _n_samples(X: Any) -> int:
    if hasattr(X, "shape") and len(X.shape) > 0:
        return int(X.shape[0])
    if isinstance(X, numbers.Integral) and not isinstance(X, bool):
        return int(X)                 # split(n) also works: only the count matters
    return len(X)


class KFold:
    """k consecutive folds; each is the test set once while the other k - 1 train.

    The first n % k folds hold one sample more, as in sklearn. shuffle=True permutes the samples
    once with np.random.default_rng(seed) before cutting the folds (seed=None draws fresh
    randomness; pass a seed for repeatable folds)."""

    def __init__(self, n_splits: int = 5, shuffle: bool = False, seed: int | None = None) -> None:
        self.n_splits = _check_n_splits(n_splits)
        self.shuffle = flag(shuffle, "shuffle")
        seed = seed_or_none(seed)
        if seed is not None and not shuffle:
            raise ValueError("seed: has no effect with shuffle=False; pass shuffle=True or "
                             "seed=None")
        self.seed = seed

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_splits={self.n_splits}, shuffle={self.shuffle}, " \
               f"seed={self.seed})"

    def get_n_splits(self, X: Any = None, y: Any = None) -> int:
        return self.n_splits

    def _test_folds(self, n: int, y: Any) -> NDArray[np.int64]:
        """Fold number of every sample."""
        if self.n_splits > n:
            raise ValueError(f"n_splits: {self.n_splits} folds need at least {self.n_splits} "
                             f"samples, got {n}")
        sizes = np.full(self.n_splits, n // self.n_splits)
        sizes[:n % self.n_splits] += 1
        folds = np.repeat(np.arange(self.n_splits), sizes)
        if self.shuffle:
            order = np.random.default_rng(self.seed).permutation(n)
            shuffled = np.empty(n, dtype=folds.dtype)
            shuffled[order] = folds
            folds = shuffled
        return folds

    def split(self, X: Any,
              y: Any = None) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int64]]]:
        """Yield (train_idx, test_idx): sorted int64 index arrays, every sample in exactly one
        test fold."""
        n = _n_samples(X)
        if y is not None and len(y) != n:
            raise ValueError(f"y: expected {n} rows to match X, got {len(y)}")
        folds = self._test_folds(n, y)
        for k in range(self.n_splits):
            yield np.flatnonzero(folds != k), np.flatnonzero(folds == k)


class StratifiedKFold(KFold):
    """KFold that keeps every class's share of y in each fold (sklearn's allocation: the sorted
    labels are dealt round-robin to the folds, so fold sizes differ by at most one).

    Every class needs at least n_splits samples (ValueError otherwise): a fold without a class
    cannot measure it. y may be labels or one-hot rows."""

    def _test_folds(self, n: int, y: Any) -> NDArray[np.int64]:
        if y is None:
            raise ValueError("y: StratifiedKFold needs the class labels, got None")
        groups = _group_ids(y)
        counts = np.bincount(groups)
        if counts.min() < self.n_splits:
            worst = int(np.argmin(counts))
            raise ValueError(f"n_splits: {self.n_splits} stratified folds need at least "
                             f"{self.n_splits} samples of every class, class #{worst} (in sorted "
                             f"order) has {int(counts[worst])}")
        # Deal the label-sorted samples round-robin: allocation[k, c] is how many samples of class
        # c fold k gets; this balances the total fold sizes as well as every class.
        sorted_groups = np.sort(groups)
        allocation = np.stack([np.bincount(sorted_groups[k::self.n_splits],
                                           minlength=len(counts))
                               for k in range(self.n_splits)])
        rng = np.random.default_rng(self.seed) if self.shuffle else None
        folds = np.empty(n, dtype=np.int64)
        for c in range(len(counts)):
            fold_of_class = np.repeat(np.arange(self.n_splits), allocation[:, c])
            if rng is not None:
                rng.shuffle(fold_of_class)
            folds[groups == c] = fold_of_class
        return folds


def _is_class_labels(y: ArrayLike) -> bool:
    y = np.asarray(y)
    return y.ndim == 1 and np.issubdtype(y.dtype, np.integer)


def cross_validate(build_fn: Callable[..., Any], X: Any, y: Any, k: int = 5,
                   fit_kwargs: Mapping[str, Any] | None = None, stratified: bool | None = None,
                   seed: int | None = 0, n_jobs: int | None = None) -> dict[str, list[float]]:
    """Fit a fresh model on each of k folds and evaluate it on the held-out fold.

    Returns a dict of per-fold lists: every key of model.evaluate(X_test, y_test) plus "fit_time"
    (seconds). stratified=None stratifies when y holds integer class labels (1-D); True forces it
    (one-hot y works), False turns it off. seed shuffles the samples before the folds are cut;
    seed=None keeps them in order. fit_kwargs are passed to every fit (epochs, batch_size, ...).
    n_jobs: folds fitted at once through joblib (-1: one per core; joblib.parallel_config picks
    the backend, e.g. "dask"), each with cores // jobs fastnn threads; the results are the
    serial run's, bit for bit."""
    X, y, folds, fit_kwargs = _folds(build_fn, X, y, k, fit_kwargs, stratified, seed)
    per_fold = _parallel.run(((_fold_scores, (build_fn, X, y, train, test, fit_kwargs))
                              for train, test in folds), n_jobs)
    return _fold_table(per_fold)


def _folds(build_fn: Callable[..., Any], X: Any, y: Any, k: int,
           fit_kwargs: Mapping[str, Any] | None, stratified: bool | None,
           seed: int | None) -> tuple[Any, Any, list[tuple[Any, Any]], dict[str, Any]]:
    """cross_validate's arguments checked, and its folds as (train, test) index pairs."""
    if not callable(build_fn):
        raise TypeError(f"build_fn: expected a callable returning a compiled model, "
                        f"got {type(build_fn).__name__}")
    X, y = validate_xy(X, y)
    fit_kwargs = dict(fit_kwargs or {})
    if stratified is None:
        stratified = _is_class_labels(y)
    splitter_cls = StratifiedKFold if stratified else KFold
    splitter = splitter_cls(k, shuffle=seed is not None, seed=seed)
    return X, y, list(splitter.split(X, y)), fit_kwargs


def _fold_scores(build_fn: Callable[..., Any], X: Any, y: Any, train: Any, test: Any,
                 fit_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """One fold: a fresh model fitted on the train rows, its scores on the test rows."""
    model = _built(build_fn())
    start = time.perf_counter()
    model.fit(X[train], y[train], **fit_kwargs)
    fit_time = time.perf_counter() - start
    scores = model.evaluate(X[test], y[test])
    if not isinstance(scores, dict):
        raise TypeError(f"build_fn: the model's evaluate must return a dict of metrics, "
                        f"got {type(scores).__name__}")
    return dict(scores, fit_time=fit_time)


def _fold_table(per_fold: list[dict[str, Any]]) -> dict[str, list[float]]:
    """The folds' score dicts as one dict of per-fold lists."""
    results = {}
    for fold, scores in enumerate(per_fold):
        if fold and set(scores) != set(results):
            raise ValueError(f"evaluate returned keys {sorted(scores)} in fold {fold}, "
                             f"{sorted(results)} before")
        for name, value in scores.items():
            results.setdefault(name, []).append(float(value))
    return results


def _built(model: Any) -> Any:
    """build_fn's result, checked: a model to fit and evaluate."""
    if not (callable(getattr(model, "fit", None)) and callable(getattr(model, "evaluate", None))):
        raise TypeError(f"build_fn: expected it to return a compiled model, got "
                        f"{type(model).__name__}")
    return model


def _seeded_builder(build_fn: Callable[..., Any]) -> Callable[[int], Any]:
    """build_fn as a function of the seed: build_fn(seed=s) if it has a `seed` parameter,
    build_fn(s) if it has a required positional parameter, else build_fn() (seed ignored)."""
    try:
        params = inspect.signature(build_fn).parameters.values()
    except (TypeError, ValueError):
        return lambda s: build_fn()
    if any(p.name == "seed" and p.kind != p.POSITIONAL_ONLY for p in params):
        return lambda s: build_fn(seed=s)
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind in positional and p.default is p.empty for p in params):
        return lambda s: build_fn(s)
    return lambda s: build_fn()


def random_restarts(build_fn: Callable[..., Any], X: Any, y: Any, n: int = 5,
                    validation_split: float = 0.2,
                    validation_data: tuple[Any, Any] | None = None,
                    fit_kwargs: Mapping[str, Any] | None = None,
                    seed: int | None = 0, n_jobs: int | None = None) -> tuple[Any, list[float]]:
    """Fit n fresh models and keep the one with the lowest validation loss.

    Model i is build_fn(seed + i) when build_fn takes a seed (see below), else build_fn(), so
    initialisations differ. Validation data is validation_data=(X_val, y_val) if given, else the
    last validation_split of (X, y) before any shuffling (Keras's rule, see
    fastnn.data.split_validation); the models train on the rest, get that data as fit's
    validation_data, and are scored by model.evaluate(X_val, y_val)["loss"].

    build_fn gets the seed as seed=... when it has a `seed` parameter, positionally when it has a
    required positional parameter, and not at all otherwise.

    Returns (best_model, val_losses) with val_losses the n losses in run order. Runs whose loss is
    NaN or infinite never win; RuntimeError if all of them are. n_jobs: runs at once, as in
    cross_validate (the models come back from the workers pickled)."""
    if not callable(build_fn):
        raise TypeError(f"build_fn: expected a callable returning a compiled model, "
                        f"got {type(build_fn).__name__}")
    if integer(n, "n") < 1:
        raise ValueError(f"n: expected >= 1 restarts, got {n}")
    seed = integer(seed, "seed")
    fit_kwargs = dict(fit_kwargs or {})
    for key in ("validation_split", "validation_data"):
        if key in fit_kwargs:
            raise ValueError(f"fit_kwargs: pass {key} to random_restarts itself, not in "
                             f"fit_kwargs")
    X, y = validate_xy(X, y)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data: expected a pair (X_val, y_val)")
        X_val, y_val = validate_xy(*validation_data)
        if X_val.shape[1:] != X.shape[1:]:
            raise ValueError(f"validation_data: X_val has {X_val.shape[1:]} features per "
                             f"sample, X has {X.shape[1:]}")
        X_tr, y_tr = X, y
    else:
        (X_tr, y_tr), (X_val, y_val) = split_validation(X, y, validation_split)
    runs = _parallel.run(((_restart, (build_fn, seed + i, X_tr, y_tr, X_val, y_val, fit_kwargs))
                          for i in range(int(n))), n_jobs)
    best_model, best_loss, losses = None, math.inf, []
    for model, loss in runs:
        losses.append(loss)
        if math.isfinite(loss) and loss < best_loss:
            best_model, best_loss = model, loss
    if best_model is None:
        raise RuntimeError(f"random_restarts: all {n} runs ended with a non-finite validation "
                           f"loss {losses}")
    return best_model, losses


def _restart(build_fn: Callable[..., Any], seed: int, X_tr: Any, y_tr: Any, X_val: Any,
             y_val: Any, fit_kwargs: Mapping[str, Any]) -> tuple[Any, float]:
    """One restart: (the fitted model, its validation loss)."""
    model = _built(_seeded_builder(build_fn)(seed))
    model.fit(X_tr, y_tr, validation_data=(X_val, y_val), **fit_kwargs)
    scores = model.evaluate(X_val, y_val)
    try:
        return model, float(scores["loss"])
    except (TypeError, KeyError):
        raise TypeError(f"build_fn: the model's evaluate must return a dict with 'loss', "
                        f"got {scores!r}") from None


def _candidates(params: Mapping[str, Any], n_iter: int | None,
                seed: int | None) -> list[dict[str, Any]]:
    """search's parameter sets: the whole grid, or n_iter random draws."""
    if not isinstance(params, dict) or not params:
        raise TypeError("params: expected a non-empty dict {name: list of values (or, with "
                        "n_iter, a function rng -> value)}")
    names = sorted(params)
    if n_iter is None:
        for name in names:
            if callable(params[name]) or isinstance(params[name], (str, bytes)) or \
                    not hasattr(params[name], "__iter__"):
                raise TypeError(f"params[{name!r}]: a grid needs a list of values; pass n_iter "
                                f"to draw from a function")
        return [dict(zip(names, values))
                for values in itertools.product(*(list(params[n]) for n in names))]
    if integer(n_iter, "n_iter") < 1:
        raise ValueError(f"n_iter: expected >= 1 draws, got {n_iter}")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(int(n_iter)):
        draw = {}
        for name in names:
            values = params[name]
            draw[name] = values(rng) if callable(values) else \
                list(values)[int(rng.integers(len(values)))]
        draws.append(draw)
    return draws


def search(build_fn: Callable[..., Any], params: Mapping[str, Any], X: Any, y: Any,
           n_iter: int | None = None, k: int = 3, fit_kwargs: Mapping[str, Any] | None = None,
           stratified: bool | None = None, seed: int | None = 0,
           n_jobs: int | None = None) -> list[dict[str, Any]]:
    """Cross-validate build_fn(**p) for each parameter set p and rank them by mean loss.

    params: {name: list of values}; every combination is tried (a grid), or with n_iter, that
    many random draws (a value from each list, or function(rng) -> value, with
    np.random.default_rng(seed)). Each candidate gets cross_validate's k folds (the same folds for
    every candidate). The candidates' folds run at once with n_jobs, as in cross_validate.

    Returns a list of dicts, best (lowest mean "loss") first: {"params", "mean_loss",
    "scores"} with scores cross_validate's dict of per-fold lists."""
    candidates = _candidates(params, n_iter, seed)
    X, y, folds, fit_kwargs = _folds(build_fn, X, y, k, fit_kwargs, stratified, seed)
    calls = [(_fold_scores, (_Bound(build_fn, p), X, y, train, test, fit_kwargs))
             for p in candidates for train, test in folds]
    per_fold = _parallel.run(calls, n_jobs)
    ranked = []
    for c, p in enumerate(candidates):
        scores = _fold_table(per_fold[c * len(folds):(c + 1) * len(folds)])
        ranked.append({"params": p, "mean_loss": float(np.mean(scores["loss"])),
                       "scores": scores})
    # A NaN mean loss ranks last; ties keep the candidates' order.
    ranked.sort(key=lambda r: (not math.isfinite(r["mean_loss"]), r["mean_loss"]))
    return ranked


class _Bound:
    """build_fn with a candidate's parameters: a picklable closure (joblib ships it)."""

    def __init__(self, build_fn: Callable[..., Any], params: dict[str, Any]) -> None:
        self.build_fn, self.params = build_fn, params

    def __call__(self) -> Any:
        return self.build_fn(**self.params)
