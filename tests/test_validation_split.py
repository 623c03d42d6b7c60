"""fit(validation_split=): Keras's rule (the last fraction, before shuffling), with a warning when
that slice and the training part do not hold the same classes."""

import warnings

import numpy as np
import pytest

import fastnn
from fastnn.layers import Dense


def model_for(loss, outputs, inputs=2):
    m = fastnn.Sequential([Dense(8, "tanh"), Dense(outputs)], input_dim=inputs, seed=0)
    m.compile(loss, "adam")
    return m


def class_sorted(rng, counts):
    y = np.repeat(np.arange(len(counts)), counts)
    X = (rng.standard_normal((len(y), 2)) + y[:, None]).astype(np.float32)
    return X, y


def test_class_sorted_rows_warn_naming_the_classes(rng):
    X, y = class_sorted(rng, [50, 50, 50])
    with pytest.warns(UserWarning, match=r"validation_split=0\.34") as record:
        model_for("softmax_cross_entropy", 3).fit(X, y, epochs=1, validation_split=0.34,
                                                  verbose=0)
    message = str(record[0].message)
    assert "holds classes [2] that the training part lacks" in message
    assert "lacks classes [0] that the training part has" in message
    assert "validation_data" in message and "stratify=True" in message
    assert record[0].filename == __file__  # points at the caller's fit line


def test_binary_targets_sorted_warn(rng):
    X = rng.standard_normal((100, 2)).astype(np.float32)
    y = np.repeat([0.0, 1.0], [80, 20])
    with pytest.warns(UserWarning, match=r"holds classes \[1\]"):
        model_for("binary_cross_entropy", 1).fit(X, y, epochs=1, validation_split=0.2,
                                                 verbose=0)


@pytest.mark.parametrize("case", ["shuffled classes", "regression"])
def test_no_warning_when_the_split_is_fine(rng, case):
    X, y = class_sorted(rng, [40, 40, 40])
    if case == "shuffled classes":
        order = rng.permutation(len(y))
        X, y, model = X[order], y[order], model_for("softmax_cross_entropy", 3)
    else:
        y, model = np.sort(rng.standard_normal(len(y))), model_for("mse", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(X, y, epochs=1, validation_split=0.25, verbose=0)


def test_the_validation_part_is_still_the_last_rows(rng):
    X, y = class_sorted(rng, [30, 30])
    order = rng.permutation(len(y))
    X, y = X[order], y[order]
    model = model_for("softmax_cross_entropy", 2)
    model.compile("softmax_cross_entropy", "adam", metrics=["accuracy"])
    history = model.fit(X, y, epochs=1, validation_split=0.25, verbose=0)
    last = model.evaluate(X[45:], y[45:])
    assert history.history["val_loss"][-1] == pytest.approx(last["loss"], rel=1e-5)
