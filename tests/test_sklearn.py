"""fastnn.sklearn estimators inside scikit-learn's tools."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


def blobs(rng, n=300):
    # Centres at least 5.6 apart (unit noise): separable to ~99.5% whatever the draw. Fully
    # random centres were occasionally close enough to make the accuracy bars fail by chance.
    centers = 4 * np.eye(3, 5)[:, rng.permutation(5)] + 0.3 * rng.standard_normal((3, 5))
    y = rng.integers(0, 3, n)
    return centers[y] + rng.standard_normal((n, 5)), np.array(["a", "b", "c"])[y]


def test_classifier_in_pipeline_and_cross_validation(rng):
    X, y = blobs(rng)
    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=200,
                                                        random_state=0))
    clf.fit(X, y)
    assert set(clf.predict(X)) <= {"a", "b", "c"} and clf.score(X, y) > 0.9
    proba = clf.predict_proba(X[:4])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    scores = cross_val_score(MLPClassifier(hidden_layer_sizes=(8,), max_iter=50,
                                           learning_rate_init=1e-2, random_state=0), X, y, cv=3)
    assert len(scores) == 3 and scores.mean() > 0.8


def test_grid_search_and_clone(rng):
    X, y = blobs(rng, 200)
    grid = GridSearchCV(MLPClassifier(max_iter=10, random_state=0),
                        {"hidden_layer_sizes": [(4,), (16,)], "alpha": [1e-4, 1e-2]}, cv=2)
    grid.fit(X, y)
    assert grid.best_params_["hidden_layer_sizes"] in [(4,), (16,)]
    c = clone(MLPClassifier(hidden_layer_sizes=(3, 2), solver="sgd"))
    assert c.get_params()["hidden_layer_sizes"] == (3, 2) and c.get_params()["solver"] == "sgd"


def test_regressor(rng):
    X = rng.standard_normal((400, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 1.0
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=100, learning_rate_init=1e-2,
                       random_state=0).fit(X, y)
    assert reg.predict(X).shape == (400,) and reg.score(X, y) > 0.95
    assert reg.n_iter_ <= 100 and len(reg.loss_curve_) == reg.n_iter_


def test_same_random_state_same_model_and_bad_params(rng):
    X, y = blobs(rng, 120)
    a = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=3).fit(X, y)
    b = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=3).fit(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    with pytest.raises(ValueError, match="lbfgs"):
        MLPClassifier(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier(activation="swish").fit(X, y)
