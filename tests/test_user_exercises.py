"""The classic first exercises, written as a newcomer writes them (public API, float64 NumPy
arrays straight from NumPy or scikit-learn): y = sin(x) from one input, the logic gates, a
spiral, and scikit-learn's bundled data sets against scikit-learn's own MLP.

Against scikit-learn: the same hidden layer, epochs, batch size, Adam learning rate and no L2
penalty (alpha=0), on standardized features and a stratified held-out split. The test accuracy
of one small MLP moves by about a point with its initial weights alone: on wine (10 half/half
splits), scikit-learn's first initialization per split averages 97.6%, five per split 96.8%,
and fastnn 96.8% over five seeds per split; started from scikit-learn's own initial weights,
fastnn averages 97.5%. So each data set is compared over SPLITS splits, scikit-learn once per
split (random_state = the split), fastnn with SEEDS seeds per split (it is fast), and the mean
test accuracies must agree within 1 point."""

import functools
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.layers import Dense

SPLITS = 5
SEEDS = 4


# ---------------------------------------------------------------- toy problems

def test_sin_from_one_input():
    x = np.linspace(-np.pi, np.pi, 200).reshape(-1, 1)
    y = np.sin(x)
    model = fastnn.Sequential([Dense(32, "tanh"), Dense(1)], input_dim=1, seed=0)
    model.compile("mse", optim.Adam(lr=0.01))
    model.fit(x, y, epochs=300, batch_size=32, verbose=0)
    assert model.evaluate(x, y)["loss"] < 0.01
    assert float(np.mean((model.predict(x) - y) ** 2)) < 0.01


GATES = {
    "NOT": ([[0], [1]], [1, 0]),
    "AND": ([[0, 0], [0, 1], [1, 0], [1, 1]], [0, 0, 0, 1]),
    "OR": ([[0, 0], [0, 1], [1, 0], [1, 1]], [0, 1, 1, 1]),
    "XOR": ([[0, 0], [0, 1], [1, 0], [1, 1]], [0, 1, 1, 0]),
}


@pytest.mark.parametrize("gate", sorted(GATES))
def test_logic_gates(gate):
    X, y = (np.array(a) for a in GATES[gate])
    # XOR is not linearly separable: it needs a hidden layer, the others do not.
    layers = [Dense(8, "tanh"), Dense(1, "sigmoid")] if gate == "XOR" else [Dense(1, "sigmoid")]
    model = fastnn.Sequential(layers, input_dim=X.shape[1], seed=0)
    model.compile("binary_cross_entropy", optim.Adam(lr=0.1), metrics=["binary_accuracy"])
    history = model.fit(X, y, epochs=300, batch_size=4, verbose=0)
    assert history.history["binary_accuracy"][-1] == 1.0
    np.testing.assert_array_equal(model.predict_classes(X), y)


@pytest.mark.parametrize("gate", sorted(GATES))
def test_logic_gates_with_the_perceptron(gate):
    X, y = (np.array(a) for a in GATES[gate])
    p = fastnn.Perceptron(seed=0).fit(X, y)
    if gate == "XOR":
        assert not p.converged_  # the classic limit of a single layer
    else:
        assert p.converged_
        np.testing.assert_array_equal(p.predict(X), y)


def spiral(points, classes, noise_seed):
    """The cs231n spiral: `classes` arms of `points` points in 2-D."""
    rng = np.random.default_rng(noise_seed)
    X, y = [], []
    for k in range(classes):
        r = np.linspace(0.0, 1.0, points)
        t = np.linspace(4 * k, 4 * (k + 1), points) + 0.2 * rng.standard_normal(points)
        X.append(np.c_[r * np.sin(t), r * np.cos(t)])
        y.append(np.full(points, k))
    return np.concatenate(X), np.concatenate(y)


def test_spiral():
    X, y = spiral(100, 3, noise_seed=0)
    X_test, y_test = spiral(100, 3, noise_seed=1)
    model = fastnn.Sequential([Dense(64, "relu"), Dense(64, "relu"), Dense(3, "softmax")],
                              input_dim=2, seed=0)
    model.compile("softmax_cross_entropy", optim.Adam(lr=0.01), metrics=["accuracy"])
    model.fit(X, y, epochs=200, batch_size=32, verbose=0)
    assert model.evaluate(X, y)["accuracy"] > 0.97
    assert np.mean(model.predict_classes(X_test) == y_test) > 0.9


# ---------------------------------------------------------------- against scikit-learn

# hidden units, epochs, batch size (Adam, learning rate 0.01 throughout).
CLASSIFICATION = {"iris": (16, 60, 16), "wine": (16, 60, 16), "breast_cancer": (32, 30, 32),
                  "digits": (64, 20, 64)}
LR = 0.01


def split(name, index):
    """A stratified 70/30 split of a bundled data set, standardized on its training part."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = getattr(datasets, "load_" + name)(return_X_y=True)
    stratify = y if name != "diabetes" else None
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=stratify,
                                                        random_state=index)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


@functools.lru_cache(maxsize=None)
def sklearn_accuracy(name):
    """scikit-learn's MLPClassifier: mean test accuracy over the splits (shared by the softmax
    and the one-vs-all tests)."""
    from sklearn.neural_network import MLPClassifier

    hidden, epochs, batch_size = CLASSIFICATION[name]
    scores = []
    for index in range(SPLITS):
        X_train, X_test, y_train, y_test = split(name, index)
        clf = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=0.0, batch_size=batch_size,
                            learning_rate_init=LR, max_iter=epochs, n_iter_no_change=epochs,
                            random_state=index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter is the epoch count
            clf.fit(X_train, y_train)
        scores.append(clf.score(X_test, y_test))
    return float(np.mean(scores))


def fastnn_accuracy(name, one_vs_all):
    hidden, epochs, batch_size = CLASSIFICATION[name]
    scores = []
    for index in range(SPLITS):
        X_train, X_test, y_train, y_test = split(name, index)
        classes = len(np.unique(y_train))
        for seed in range(SEEDS):
            if one_vs_all:
                # One independent sigmoid per class on one-hot targets; the class is the most
                # confident one.
                model = fastnn.Sequential([Dense(hidden, "relu"), Dense(classes, "sigmoid")],
                                          input_dim=X_train.shape[1], seed=seed)
                model.compile("binary_cross_entropy", optim.Adam(lr=LR))
                model.fit(X_train, np.eye(classes)[y_train], epochs=epochs,
                          batch_size=batch_size, verbose=0)
                predicted = np.argmax(model.predict(X_test), axis=1)
            else:
                model = fastnn.Sequential([Dense(hidden, "relu"), Dense(classes, "softmax")],
                                          input_dim=X_train.shape[1], seed=seed)
                model.compile("softmax_cross_entropy", optim.Adam(lr=LR))
                model.fit(X_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0)
                predicted = model.predict_classes(X_test)
            scores.append(np.mean(predicted == y_test))
    return float(np.mean(scores))


@pytest.mark.parametrize("one_vs_all", [False, True], ids=["softmax", "one_vs_all"])
@pytest.mark.parametrize("name", sorted(CLASSIFICATION))
def test_classifier_matches_sklearn(name, one_vs_all):
    pytest.importorskip("sklearn")
    ours, theirs = fastnn_accuracy(name, one_vs_all), sklearn_accuracy(name)
    assert ours >= theirs - 0.01, f"{name}: fastnn {ours:.4f}, scikit-learn {theirs:.4f}"


def test_regressor_matches_sklearn_on_diabetes():
    pytest.importorskip("sklearn")
    from sklearn.metrics import r2_score
    from sklearn.neural_network import MLPRegressor

    hidden, epochs, batch_size = 16, 30, 32
    ours, theirs = [], []
    for index in range(SPLITS):
        X_train, X_test, y_train, y_test = split("diabetes", index)
        # The target standardized too (disease progression runs from 25 to 346).
        mean, std = y_train.mean(), y_train.std()
        reg = MLPRegressor(hidden_layer_sizes=(hidden,), alpha=0.0, batch_size=batch_size,
                           learning_rate_init=LR, max_iter=epochs, n_iter_no_change=epochs,
                           random_state=index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reg.fit(X_train, (y_train - mean) / std)
        theirs.append(r2_score(y_test, reg.predict(X_test) * std + mean))
        for seed in range(SEEDS):
            model = fastnn.Sequential([Dense(hidden, "relu"), Dense(1)], input_dim=10, seed=seed)
            model.compile("mse", optim.Adam(lr=LR))
            model.fit(X_train, (y_train - mean) / std, epochs=epochs, batch_size=batch_size,
                      verbose=0)
            ours.append(r2_score(y_test, model.predict(X_test)[:, 0] * std + mean))
    assert np.mean(ours) >= np.mean(theirs) - 0.02, (np.mean(ours), np.mean(theirs))
    assert np.mean(ours) > 0.3
