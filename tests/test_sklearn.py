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


# ---------------------------------------------------------------- scikit-learn's semantics

import warnings  # noqa: E402

from sklearn.datasets import load_digits, load_iris  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402


def quiet_fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def test_early_stopping_holds_out_a_random_stratified_part_of_class_sorted_data():
    # Data sorted by class (as many files are): the last rows are all 9s. A held-out part taken
    # from the end leaves the model without 9s and monitors a score on 9s only.
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    order = np.argsort(ytr, kind="stable")
    Xtr, ytr = Xtr[order], ytr[order]
    params = dict(hidden_layer_sizes=(64,), early_stopping=True, random_state=0, max_iter=200)
    ours = quiet_fit(MLPClassifier(**params), Xtr, ytr)
    theirs = quiet_fit(SkMLPClassifier(**params), Xtr, ytr)
    assert ours.score(Xte, yte) > 0.9
    assert ours.score(Xte, yte) >= theirs.score(Xte, yte) - 0.03
    # scikit-learn's bookkeeping: one validation score per epoch, the best one kept.
    assert len(ours.validation_scores_) == ours.n_iter_ == len(ours.loss_curve_)
    assert ours.best_validation_score_ == max(ours.validation_scores_)
    assert ours.best_loss_ is None
    assert ours.n_iter_ < 200  # it stopped: n_iter_no_change epochs without improvement


def test_same_seed_same_split_and_model():
    X, y = load_iris(return_X_y=True)
    a = quiet_fit(MLPClassifier((8,), early_stopping=True, max_iter=20, random_state=1), X, y)
    b = quiet_fit(MLPClassifier((8,), early_stopping=True, max_iter=20, random_state=1), X, y)
    assert a.validation_scores_ == b.validation_scores_
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize("params, name", [
    (dict(batch_size=0), "batch_size"),
    (dict(max_iter=1.5), "max_iter"),
    (dict(max_iter=0), "max_iter"),
    (dict(hidden_layer_sizes=0), "hidden_layer_sizes"),
    (dict(activation="swish"), "activation"),
    (dict(shuffle=1), "shuffle"),
    (dict(learning_rate_init=0.0), "learning_rate_init"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(momentum=1.5), "momentum"),
    (dict(dropout=1.0), "dropout"),
    (dict(precision="fp16"), "precision"),
    (dict(class_weight="even"), "class_weight"),
])
def test_bad_parameters_raise_scikit_learns_error_naming_them(params, name):
    X, y = blobs(np.random.default_rng(0), 30)
    with pytest.raises(InvalidParameterError, match=name):
        MLPClassifier(**params).fit(X, y)
    assert issubclass(InvalidParameterError, ValueError)


def test_parameter_combinations_that_cannot_work_are_refused():
    X, y = blobs(np.random.default_rng(0), 30)
    with pytest.raises(ValueError, match="validation_fraction"):
        MLPClassifier(early_stopping=True, validation_fraction=0.0).fit(X, y)
    with pytest.raises(ValueError, match="lbfgs"):
        MLPClassifier(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="classes"):
        MLPClassifier().partial_fit(X, y)  # the first call must list the classes
    from sklearn.exceptions import NotFittedError

    clf = MLPClassifier(early_stopping=True, validation_fraction=0.02)
    with pytest.raises(ValueError, match="validation set is too small"):
        clf.fit(X, y)
    with pytest.raises(NotFittedError):
        clf.predict(X)  # a fit that failed leaves the estimator unfitted


def test_bad_targets_are_refused():
    X = np.random.default_rng(0).standard_normal((20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier().fit(X, np.where(y == 0, np.nan, 1.0))
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, np.linspace(0, 1, 20))  # regression targets
    with pytest.raises(ValueError, match="[Cc]omplex"):
        MLPClassifier().fit(X + 1j, y)
    with pytest.raises(ValueError, match="[Cc]omplex"):
        MLPRegressor().fit(X, y + 1j)
    with pytest.raises(ValueError, match="2 classes"):
        MLPClassifier().fit(X, np.zeros(20))
    with pytest.raises(ValueError, match="row 3"):
        MLPClassifier().fit(X, np.array(["a", "b", "a", None] * 5, dtype=object))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=[[2, 3]]).fit(X, y)


def test_fitted_attributes_have_scikit_learns_shapes_and_meanings():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    cases = [  # (estimator, y, n_outputs_, out_activation_, predict_proba columns)
        (MLPClassifier((5, 3)), np.arange(60) % 2, 1, "logistic", 2),
        (MLPClassifier((5, 3)), np.arange(60) % 3, 3, "softmax", 3),
        (MLPClassifier((5, 3)), (X[:, :2] > 0).astype(int), 2, "logistic", 2),  # multi-label
        (MLPRegressor(hidden_layer_sizes=(5, 3)), X[:, :3] @ np.ones((3, 2)), 2, "identity", None),
        (MLPRegressor(hidden_layer_sizes=(5, 3)), X[:, 0], 1, "identity", None),
    ]
    for est, y, n_out, out_act, n_proba in cases:
        quiet_fit(est.set_params(max_iter=7, random_state=0), X, y)
        assert est.n_outputs_ == n_out and est.out_activation_ == out_act
        assert est.n_layers_ == 4 and est.n_features_in_ == 4
        assert [c.shape for c in est.coefs_] == [(4, 5), (5, 3), (3, n_out)]
        assert [b.shape for b in est.intercepts_] == [(5,), (3,), (n_out,)]
        assert est.n_iter_ == len(est.loss_curve_) == 7 and est.t_ == 7 * 60
        assert est.loss_ == est.loss_curve_[-1] and est.best_loss_ == min(est.loss_curve_)
        assert est.validation_scores_ is None and est.best_validation_score_ is None
        assert est.predict(X).shape == np.shape(y)
        if n_proba:
            assert est.predict_proba(X).shape == (60, n_proba)
            np.testing.assert_allclose(est.predict_log_proba(X), np.log(est.predict_proba(X)))


def test_loss_is_scikit_learns_loss():
    # With a negligible learning rate, the epoch's loss is the loss of the model's predictions in
    # scikit-learn's units: mean log loss (summed over labels for sigmoid outputs), and half the
    # mean squared error.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 3))
    Y = (rng.random((400, 3)) > 0.5).astype(int)
    yc = np.arange(400) % 4
    yr = rng.standard_normal((400, 2))
    cases = [
        (MLPClassifier(), yc, lambda m: -np.mean(np.log(m.predict_proba(X)[np.arange(400), yc]))),
        (MLPClassifier(), Y, lambda m: -np.mean(np.sum(
            Y * np.log(m.predict_proba(X)) + (1 - Y) * np.log(1 - m.predict_proba(X)), axis=1))),
        (MLPRegressor(), yr, lambda m: 0.5 * np.mean((m.predict(X) - yr) ** 2)),
    ]
    for est, y, loss in cases:
        quiet_fit(est.set_params(max_iter=1, learning_rate_init=1e-9, alpha=0.0,
                                 random_state=0), X, y)
        assert est.loss_ == pytest.approx(loss(est), rel=1e-5)


def test_precision_follows_the_input():
    X, y = blobs(np.random.default_rng(0), 60)
    clf = quiet_fit(MLPClassifier((4,), max_iter=3, random_state=0), X, y)
    assert clf.predict_proba(X).dtype == np.float64 and clf.coefs_[0].dtype == np.float64
    assert clf.predict_proba(X.astype(np.float32)).dtype == np.float64
    clf32 = quiet_fit(MLPClassifier((4,), max_iter=3, random_state=0), X.astype(np.float32), y)
    assert clf32.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert clf32.predict_proba(X).dtype == np.float64


def test_sample_weight_and_class_weight():
    X, y = blobs(np.random.default_rng(0), 90)
    # Weight 2 is the same fit as each row twice (full batch, the same initial weights).
    twice = quiet_fit(MLPClassifier((4,), max_iter=5, random_state=0),
                      np.vstack([X, X]), np.concatenate([y, y]))
    weighted = quiet_fit(MLPClassifier((4,), max_iter=5, random_state=0), X, y,
                         sample_weight=np.full(90, 2.0))
    np.testing.assert_allclose(weighted.predict_proba(X), twice.predict_proba(X), rtol=1e-6)
    # class_weight={class: w} is sample_weight w for that class's rows.
    cw = quiet_fit(MLPClassifier((4,), max_iter=5, random_state=0, class_weight={"a": 3.0}),
                   X, y)
    sw = quiet_fit(MLPClassifier((4,), max_iter=5, random_state=0), X, y,
                   sample_weight=np.where(y == "a", 3.0, 1.0))
    np.testing.assert_allclose(cw.predict_proba(X), sw.predict_proba(X), rtol=1e-6)
    with pytest.raises(ValueError, match="sample_weight"):
        MLPClassifier().fit(X, y, sample_weight=np.ones(3))


def test_partial_fit_and_warm_start_continue_training():
    X, y = blobs(np.random.default_rng(0), 200)
    clf = MLPClassifier((16,), learning_rate_init=1e-2, random_state=0)
    clf.partial_fit(X[:100], y[:100], classes=["a", "b", "c"])
    first = clf.loss_
    for _ in range(20):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 21 and clf.t_ == 100 + 20 * 200
    assert clf.loss_ < first and clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X[:3], ["a", "b", "z"])
    warm = MLPClassifier((8,), max_iter=3, warm_start=True, random_state=0)
    quiet_fit(warm, X, y)
    before = [c.copy() for c in warm.coefs_]
    quiet_fit(warm, X, y)
    assert len(warm.loss_curve_) == 6 and warm.n_iter_ == 3
    assert not np.array_equal(before[0], warm.coefs_[0])
    with pytest.raises(ValueError, match="warm_start"):
        quiet_fit(warm, X[y != "c"], y[y != "c"])
    quiet_fit(warm.set_params(early_stopping=True), X, y)  # switching early stopping on
    assert len(warm.validation_scores_) == warm.n_iter_ and warm.best_loss_ is None


def test_warm_start_fit_uses_its_own_alpha():
    """A warm-started fit trains with the alpha (and batch size) it is given, not the first's."""
    X, y = blobs(np.random.default_rng(0), 200)

    def refit(alpha):
        est = quiet_fit(MLPClassifier((8,), alpha=0.0, max_iter=5, warm_start=True,
                                      learning_rate_init=0.05, random_state=0), X, y)
        return quiet_fit(est.set_params(alpha=alpha, max_iter=40), X, y)

    plain, penalized = refit(0.0), refit(10.0)
    norm = [sum(float(np.sum(c ** 2)) for c in est.coefs_) for est in (plain, penalized)]
    assert norm[1] < 0.5 * norm[0]


def test_sgd_learning_rate_schedules_follow_scikit_learn():
    X, y = blobs(np.random.default_rng(0), 100)
    inv = quiet_fit(MLPClassifier((4,), solver="sgd", learning_rate="invscaling", power_t=0.5,
                                  learning_rate_init=0.1, max_iter=4, random_state=0), X, y)
    # After each epoch: learning_rate_init / (t_ + 1) ** power_t, t_ counting samples seen.
    assert inv.model_.optimizer.lr == pytest.approx(0.1 / (400 + 1) ** 0.5)
    # "adaptive": the rate is divided by 5 instead of stopping when the loss stalls.
    ada = quiet_fit(MLPClassifier((4,), solver="sgd", learning_rate="adaptive", tol=10.0,
                                  n_iter_no_change=1, learning_rate_init=0.1, max_iter=6,
                                  random_state=0), X, y)
    assert ada.model_.optimizer.lr < 0.1 / 5 and ada.n_iter_ == 6
    # Otherwise training stops once n_iter_no_change + 1 epochs in a row improved by less than
    # tol (the first epoch improves on infinity): after 3 epochs here, as scikit-learn's.
    stalled = dict(hidden_layer_sizes=(4,), solver="sgd", tol=10.0, n_iter_no_change=1,
                   max_iter=6, random_state=0)
    assert quiet_fit(MLPClassifier(**stalled), X, y).n_iter_ == 3
    assert quiet_fit(SkMLPClassifier(**stalled), X, y).n_iter_ == 3


def test_convergence_warning_at_max_iter():
    X, y = blobs(np.random.default_rng(0), 60)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y)


def test_multilabel_and_multioutput_against_scikit_learn():
    from sklearn.datasets import make_multilabel_classification
    from sklearn.neural_network import MLPRegressor as SkMLPRegressor

    X, Y = make_multilabel_classification(n_samples=300, n_features=10, n_classes=4,
                                          random_state=0)
    X = X / X.max()
    ours = quiet_fit(MLPClassifier((32,), max_iter=200, random_state=0), X[:200], Y[:200])
    theirs = quiet_fit(SkMLPClassifier((32,), max_iter=200, random_state=0), X[:200], Y[:200])
    assert ours.predict(X[200:]).shape == (100, 4)
    assert ours.score(X[200:], Y[200:]) >= theirs.score(X[200:], Y[200:]) - 0.1
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    Y = np.column_stack([X @ [1.0, -1.0, 0.5, 0.0], np.sin(X[:, 0])])
    params = dict(hidden_layer_sizes=(32,), max_iter=200, random_state=0)
    ours = quiet_fit(MLPRegressor(**params), X[:200], Y[:200])
    theirs = quiet_fit(SkMLPRegressor(**params), X[:200], Y[:200])
    assert ours.predict(X[200:]).shape == (100, 2)
    assert ours.score(X[200:], Y[200:]) >= theirs.score(X[200:], Y[200:]) - 0.05


def test_dataframe_feature_names_checked_as_scikit_learn_does():
    pd = pytest.importorskip("pandas")
    X, y = blobs(np.random.default_rng(0), 60)
    df = pd.DataFrame(X, columns=list("vwxyz"))
    clf = quiet_fit(MLPClassifier((4,), max_iter=3, random_state=0), df, y)
    assert list(clf.feature_names_in_) == list("vwxyz")
    with pytest.raises(ValueError, match="same order"):
        clf.predict(df[list("zyxwv")])  # reordered columns: refused, not silently wrong
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)


def test_sparse_input_and_one_feature():
    sp = pytest.importorskip("scipy.sparse")
    X, y = blobs(np.random.default_rng(0), 60)
    dense = quiet_fit(MLPClassifier((4,), max_iter=3, random_state=0), X, y)
    sparse = quiet_fit(MLPClassifier((4,), max_iter=3, random_state=0), sp.csr_matrix(X), y)
    np.testing.assert_allclose(sparse.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X))
    x = np.linspace(-3, 3, 200)[:, None]
    reg = quiet_fit(MLPRegressor(hidden_layer_sizes=(32,), activation="tanh", max_iter=300,
                                 learning_rate_init=1e-2, random_state=0), x, np.sin(x[:, 0]))
    assert reg.score(x, np.sin(x[:, 0])) > 0.95


def test_fitted_estimators_pickle_and_copy():
    import copy
    import pickle

    X, y = blobs(np.random.default_rng(0), 60)
    clf = quiet_fit(MLPClassifier((4,), max_iter=3, random_state=0), X, y)
    for other in (pickle.loads(pickle.dumps(clf)), copy.deepcopy(clf)):
        np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))
        quiet_fit(other.set_params(warm_start=True), X, y)  # the copy trains on its own
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X),
                                  clf.predict_proba(X))


def test_our_parameters_dropout_and_batch_norm():
    from fastnn.layers import BatchNorm, Dropout

    X, y = blobs(np.random.default_rng(0), 120)
    clf = quiet_fit(MLPClassifier((16, 8), dropout=0.1, batch_norm=True, max_iter=30,
                                  learning_rate_init=1e-2, random_state=0), X, y)
    kinds = [type(layer) for layer in clf.model_.layers]
    assert kinds.count(BatchNorm) == 2 and kinds.count(Dropout) == 2
    assert [c.shape for c in clf.coefs_] == [(5, 16), (16, 8), (8, 3)]
    assert clf.score(X, y) > 0.9


@pytest.mark.parametrize("loader", ["load_wine", "load_breast_cancer"])
def test_accuracy_matches_scikit_learn_on_bundled_data(loader):
    import sklearn.datasets

    X, y = getattr(sklearn.datasets, loader)(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(StandardScaler().fit_transform(X), y, test_size=0.3,
                                          random_state=0, stratify=y)
    params = dict(hidden_layer_sizes=(32,), max_iter=200, random_state=0)
    ours = quiet_fit(MLPClassifier(**params), Xtr, ytr)
    theirs = quiet_fit(SkMLPClassifier(**params), Xtr, ytr)
    assert ours.score(Xte, yte) >= theirs.score(Xte, yte) - 0.03
    assert len(ours.loss_curve_) == ours.n_iter_ <= 200


def test_verbose_prints_scikit_learns_lines(capsys):
    X, y = blobs(np.random.default_rng(0), 60)
    quiet_fit(MLPClassifier((4,), max_iter=2, verbose=True, early_stopping=True,
                            random_state=0), X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Validation score: " in out
    quiet_fit(MLPClassifier((4,), max_iter=2, random_state=0), X, y)
    assert capsys.readouterr().out == ""  # nothing printed unless asked


def test_zero_weights_left_to_train_on_are_refused():
    X, y = blobs(np.random.default_rng(0), 30)
    with pytest.raises(ValueError, match="weight 0"):
        MLPClassifier(class_weight={"a": 0.0, "b": 0.0, "c": 0.0}).fit(X, y)
