"""Batch inference over Dask collections (fastnn.dask.predict): block by block equal to predict
on the whole array, with the model one task of the graph (shipped to each worker once)."""

import pickle

import numpy as np
import pytest

import fastnn
import fastnn.dask as fdask
from fastnn.layers import Dense

da = pytest.importorskip("dask.array", reason="dask is not installed (pip install 'fastnn[dask]')")

from _dask_cluster import dask_client  # noqa: E402,F401 (the fixture)


def fitted():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((203, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    m = fastnn.Sequential([Dense(8, "tanh"), Dense(3)], input_dim=5, seed=2)
    m.compile("softmax_cross_entropy", "adam")
    m.fit(X, y, epochs=2, verbose=0)
    return m, X


def _tasks_holding(graph, model):
    """The tasks of the graph that carry the model: those whose pickle is as big as the
    model's (pickling a task is what the scheduler does to send it)."""
    size = len(pickle.dumps(model))
    return sum(1 for task in dict(graph).values() if len(pickle.dumps(task)) >= size // 2)


def test_predict_over_a_dask_array_equals_predict_on_the_whole(dask_client):
    m, X = fitted()
    dX = da.from_array(X, chunks=((50, 50, 50, 53), (2, 3)))  # features split too
    P = fdask.predict(m, dX)
    assert P.shape == (203, 3) and P.dtype == np.float32
    np.testing.assert_array_equal(P.compute(), m.predict(X))
    np.testing.assert_array_equal(fdask.predict(m, dX, method="predict_classes").compute(),
                                  m.predict_classes(X))


def test_a_float64_model_predicts_in_float64(dask_client):
    # The blocks reach the model in its own dtype and the result says the dtype it holds.
    m32, X32 = fitted()
    m = fastnn.Sequential([Dense(8, "tanh"), Dense(3)], input_dim=5, seed=2, dtype="float64")
    m.set_weights(m32.get_weights())
    X = X32.astype(np.float64) + 1e-9  # a difference that float32 input would round away
    P = fdask.predict(m, da.from_array(X, chunks=50))
    assert P.dtype == np.float64
    computed = P.compute()
    assert computed.dtype == np.float64
    np.testing.assert_array_equal(computed, m.predict(X))


def test_the_model_is_one_task_of_the_graph():
    m, X = fitted()
    P = fdask.predict(m, da.from_array(X, chunks=20))
    assert P.numblocks[0] == 11
    assert _tasks_holding(P.__dask_graph__(), m) == 1


def test_predict_over_a_dask_dataframe(dask_client):
    dd = pytest.importorskip("dask.dataframe", reason="dask.dataframe needs pandas and pyarrow")
    import pandas as pd

    m, X = fitted()
    frame = dd.from_pandas(pd.DataFrame(X, columns=list("abcde")), npartitions=4)
    P = fdask.predict(m, frame).compute()
    assert list(P.columns) == ["0", "1", "2"]
    np.testing.assert_array_equal(P.to_numpy(), m.predict(X))
    classes = fdask.predict(m, frame, method="predict_classes").compute()
    np.testing.assert_array_equal(classes.to_numpy(), m.predict_classes(X))


def test_bad_inputs_are_named():
    m, X = fitted()
    with pytest.raises(ValueError, match=r"X: expected a Dask array \(n, 5\), got shape"):
        fdask.predict(m, da.zeros((10, 4)))
    with pytest.raises(TypeError, match="X: expected a Dask array or Dask DataFrame, got ndarray"):
        fdask.predict(m, X)
    with pytest.raises(ValueError, match="method: expected one of"):
        fdask.predict(m, da.from_array(X), method="evaluate")
