import numpy as np
import pytest

from fastnn import model_selection as ms


class LeastSquares:
    """A stand-in for a compiled fastnn model: fit solves least squares on a random subset of the
    features (chosen by seed), so different seeds give models of different quality."""

    def __init__(self, seed=None, keep=None):
        self.seed, self.keep = seed, keep
        self.fit_calls = []
        self.stop_training = False

    def fit(self, X, y, validation_data=None, epochs=1, batch_size=32):
        self.fit_calls.append(dict(n=len(X), validation_data=validation_data, epochs=epochs,
                                   rows=X[:, 0].copy()))
        cols = np.arange(X.shape[1])
        if self.keep is not None:
            cols = np.random.default_rng(self.seed).choice(X.shape[1], self.keep, replace=False)
        self.cols = np.sort(cols)
        self.w, *_ = np.linalg.lstsq(X[:, self.cols], y.astype(np.float64), rcond=None)

    def predict(self, X):
        return X[:, self.cols] @ self.w

    def evaluate(self, X, y):
        err = self.predict(X) - y
        return {"loss": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err)))}


def _regression(rng, n=60, d=4):
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = X @ np.array([3.0, -2.0, 0.5, 0.0][:d]) + 0.01 * rng.standard_normal(n)
    return X, y


# ---- KFold / StratifiedKFold -------------------------------------------------------------------

def test_kfold_matches_sklearn_layout():
    folds = list(ms.KFold(3).split(np.zeros((10, 2))))
    assert [t.tolist() for _, t in folds] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    for train, test in folds:
        assert sorted(np.concatenate([train, test]).tolist()) == list(range(10))
        assert not set(train) & set(test)


def test_kfold_shuffle_is_seeded_and_partitions():
    a = [t.tolist() for _, t in ms.KFold(4, shuffle=True, seed=1).split(np.zeros((22, 1)))]
    b = [t.tolist() for _, t in ms.KFold(4, shuffle=True, seed=1).split(np.zeros((22, 1)))]
    c = [t.tolist() for _, t in ms.KFold(4, shuffle=True, seed=2).split(np.zeros((22, 1)))]
    assert a == b and a != c
    assert sorted(sum(a, [])) == list(range(22))
    assert sorted(len(t) for t in a) == [5, 5, 6, 6]


def test_stratified_kfold_balances_every_class(rng):
    y = np.repeat([0, 1, 2], [30, 15, 6])
    rng.shuffle(y)
    seen = []
    for train, test in ms.StratifiedKFold(3, shuffle=True, seed=0).split(np.zeros((51, 1)), y):
        assert np.bincount(y[test], minlength=3).tolist() == [10, 5, 2]
        assert not set(train) & set(test) and len(train) + len(test) == 51
        seen += test.tolist()
    assert sorted(seen) == list(range(51))


def test_stratified_kfold_uneven_classes_sizes_differ_by_one():
    y = np.repeat([0, 1], [7, 5])
    sizes = [len(t) for _, t in ms.StratifiedKFold(5).split(np.zeros((12, 1)), y)]
    assert sum(sizes) == 12 and max(sizes) - min(sizes) <= 1
    for _, test in ms.StratifiedKFold(5).split(np.zeros((12, 1)), y):
        assert set(y[test]) == {0, 1}


@pytest.mark.parametrize("make, n, y, exc, words", [
    (lambda: ms.KFold(1), 10, None, ValueError, ">= 2"),
    (lambda: ms.KFold(2.0), 10, None, TypeError, "int"),
    (lambda: ms.KFold(11), 10, None, ValueError, "at least 11 samples"),
    (lambda: ms.KFold(3, seed=1), 10, None, ValueError, "shuffle"),
    (lambda: ms.StratifiedKFold(3), 10, np.repeat([0, 1], [8, 2]), ValueError, "has 2"),
    (lambda: ms.StratifiedKFold(3), 10, None, ValueError, "labels"),
    (lambda: ms.KFold(3), 10, np.zeros(9), ValueError, "10 rows"),
])
def test_splitters_reject_bad_arguments(make, n, y, exc, words):
    with pytest.raises(exc, match=words):
        list(make().split(np.zeros((n, 1)), y))


# ---- cross_validate ----------------------------------------------------------------------------

def test_cross_validate_fits_fresh_model_per_fold(rng):
    X, y = _regression(rng)
    built = []

    def build():
        built.append(LeastSquares())
        return built[-1]

    res = ms.cross_validate(build, X, y, k=4, fit_kwargs={"epochs": 3})
    assert set(res) == {"loss", "mae", "fit_time"}
    assert all(len(v) == 4 for v in res.values())
    assert len(built) == 4 and all(len(m.fit_calls) == 1 for m in built)
    assert all(m.fit_calls[0]["n"] == 45 and m.fit_calls[0]["epochs"] == 3 for m in built)
    assert max(res["loss"]) < 1e-3                      # the data is nearly linear
    assert all(t >= 0 for t in res["fit_time"])
    # Training rows of the k models together cover every sample k - 1 times.
    rows = np.concatenate([m.fit_calls[0]["rows"] for m in built])
    assert np.isin(X[:, 0], rows).all() and len(rows) == 3 * len(X)


def test_cross_validate_is_seeded_and_stratifies_integer_labels():
    X = np.arange(40, dtype=np.float32)[:, None]
    y = np.repeat([0, 1], [30, 10])                     # sorted: plain folds would be one-class
    seen = []

    class Recorder(LeastSquares):
        def evaluate(self, X_test, y_test):
            seen.append(np.bincount(y_test, minlength=2).tolist())
            return {"loss": 0.0}

    ms.cross_validate(Recorder, X, y, k=5)
    assert seen == [[6, 2]] * 5
    first = ms.cross_validate(lambda: LeastSquares(), *_regression(np.random.default_rng(0)), k=3)
    again = ms.cross_validate(lambda: LeastSquares(), *_regression(np.random.default_rng(0)), k=3)
    assert first["loss"] == again["loss"]


def test_cross_validate_rejects_bad_input(rng):
    X, y = _regression(rng)
    with pytest.raises(TypeError, match="build_fn"):
        ms.cross_validate("model", X, y)
    with pytest.raises(ValueError, match="NaN or infinity at row 3"):
        X[3, 1] = np.nan
        ms.cross_validate(LeastSquares, X, y)

    class NoDict(LeastSquares):
        def evaluate(self, X, y):
            return 0.5

    with pytest.raises(TypeError, match="dict"):
        ms.cross_validate(NoDict, np.ones((10, 2)), np.ones(10), k=2)


# ---- random_restarts ---------------------------------------------------------------------------

def test_random_restarts_keeps_lowest_validation_loss(rng):
    X, y = _regression(rng, n=80)
    best, losses = ms.random_restarts(lambda seed: LeastSquares(seed, keep=2), X, y, n=6)
    assert len(losses) == 6 and best.seed == int(np.argmin(losses))
    # The best model's loss is the one recorded, measured on the last 20% (Keras's rule).
    assert best.evaluate(X[64:], y[64:])["loss"] == pytest.approx(min(losses))
    call = best.fit_calls[0]
    assert call["n"] == 64 and np.array_equal(call["rows"], X[:64, 0])
    np.testing.assert_array_equal(call["validation_data"][0], X[64:])
    assert len(set(losses)) > 1                         # seeds really differ


def test_random_restarts_seed_passing_rules(rng):
    X, y = _regression(rng, n=30)
    got = []
    ms.random_restarts(lambda s: got.append(("pos", s)) or LeastSquares(), X, y, n=2, seed=10)
    ms.random_restarts(lambda units=3, seed=0: got.append(("kw", seed)) or LeastSquares(),
                       X, y, n=2)
    ms.random_restarts(lambda units=3: got.append(("none", units)) or LeastSquares(), X, y, n=1)
    assert got == [("pos", 10), ("pos", 11), ("kw", 0), ("kw", 1), ("none", 3)]


def test_random_restarts_with_validation_data_and_nan_runs(rng):
    X, y = _regression(rng, n=40)
    X_val, y_val = _regression(rng, n=10)

    class Flaky(LeastSquares):
        def evaluate(self, X, y):
            out = super().evaluate(X, y)
            return {"loss": np.nan} if self.seed == 0 else out

    best, losses = ms.random_restarts(lambda seed: Flaky(seed), X, y, n=3,
                                      validation_data=(X_val, y_val), fit_kwargs={"epochs": 2})
    assert np.isnan(losses[0]) and best.seed in (1, 2)
    assert best.fit_calls[0]["n"] == 40 and best.fit_calls[0]["epochs"] == 2

    class AllNaN(LeastSquares):
        def evaluate(self, X, y):
            return {"loss": float("nan")}

    with pytest.raises(RuntimeError, match="non-finite"):
        ms.random_restarts(AllNaN, X, y, n=2)


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(n=0), ValueError, "n: expected >= 1"),
    (dict(n=2.0), TypeError, "n: expected an int"),
    (dict(validation_split=1.5), ValueError, "fraction"),
    (dict(fit_kwargs={"validation_split": 0.1}), ValueError, "fit_kwargs"),
    (dict(validation_data=(np.ones((3, 7)), np.ones(3))), ValueError, "features"),
    (dict(validation_data=np.ones((3, 4))), TypeError, "pair"),
])
def test_random_restarts_rejects_bad_arguments(rng, kwargs, exc, words):
    X, y = _regression(rng, n=20)
    with pytest.raises(exc, match=words):
        ms.random_restarts(LeastSquares, X, y, **kwargs)
