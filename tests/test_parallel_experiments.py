"""Many experiments at once: model_selection's cross_validate, random_restarts and search with
n_jobs through joblib (its own processes, and a Dask LocalCluster through joblib's dask backend)
give the serial run's results bit for bit, with each job's threads limited."""

import threading
import time

import numpy as np
import pytest

import fastnn
from fastnn import model_selection as ms
from fastnn.layers import Dense, Dropout

joblib = pytest.importorskip("joblib", reason="joblib is not installed")

from _dask_cluster import dask_client  # noqa: E402,F401 (the fixture)


def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 6)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    return X, y


def build(seed=0, units=8):
    m = fastnn.Sequential([Dense(units, "relu"), Dropout(0.1), Dense(2)], input_dim=6, seed=seed)
    m.compile("softmax_cross_entropy", fastnn.optim.Adam(lr=1e-2), metrics=["accuracy"])
    return m


class ThreadsSeen:
    """A model that records the fastnn thread count its fit ran with. With `together` (a
    threading.Barrier), fits wait for each other, so that jobs run as threads overlap."""

    together = None

    def fit(self, X, y, **kw):
        self.threads = fastnn.get_num_threads()
        if self.together is not None:
            try:
                if self.together.wait(timeout=2) == 0:
                    time.sleep(0.02)  # one of the two leaves last, either may
            except threading.BrokenBarrierError:  # joblib ran a job with no partner: no overlap
                self.together.reset()

    def evaluate(self, X, y):
        return {"loss": float(self.threads)}


FIT = {"epochs": 3, "batch_size": 16, "verbose": 0}


def _without_times(scores):
    return {k: v for k, v in scores.items() if k != "fit_time"}


def test_cross_validate_in_two_processes_equals_the_serial_run():
    X, y = data()
    serial = ms.cross_validate(build, X, y, k=3, fit_kwargs=FIT)
    parallel = ms.cross_validate(build, X, y, k=3, fit_kwargs=FIT, n_jobs=2)
    assert _without_times(parallel) == _without_times(serial)  # float equality: bit for bit


def test_each_job_gets_its_share_of_the_cores():
    X, y = data()
    before = fastnn.get_num_threads()
    ThreadsSeen.together = threading.Barrier(2)
    try:
        with joblib.parallel_config(backend="threading"):
            seen = ms.cross_validate(ThreadsSeen, X, y, k=8, n_jobs=2)["loss"]
    finally:
        ThreadsSeen.together = None
    cores = fastnn._parallel._cores()
    assert seen == [min(before, max(1, cores // 2))] * 8
    # Jobs that ran as threads of this process leave its thread count as they found it.
    assert fastnn.get_num_threads() == before
    assert ms.cross_validate(ThreadsSeen, X, y, k=2)["loss"] == [before] * 2


def test_bad_n_jobs_is_named():
    X, y = data()
    with pytest.raises(ValueError, match="n_jobs: expected a number of jobs >= 1"):
        ms.cross_validate(build, X, y, n_jobs=0)
    with pytest.raises(TypeError, match="n_jobs: expected an int or None, got str"):
        ms.random_restarts(build, X, y, n_jobs="2")


def test_search_ranks_a_grid_and_random_draws():
    X, y = data()
    grid = ms.search(build, {"units": [2, 16]}, X, y, k=2, fit_kwargs=FIT)
    assert sorted(r["params"]["units"] for r in grid) == [2, 16]
    assert grid[0]["mean_loss"] <= grid[1]["mean_loss"]
    assert grid[0]["mean_loss"] == np.mean(grid[0]["scores"]["loss"])
    drawn = ms.search(build, {"units": lambda rng: int(rng.integers(2, 20)), "seed": [0, 1]},
                      X, y, n_iter=3, k=2, fit_kwargs=FIT, seed=5)
    again = ms.search(build, {"units": lambda rng: int(rng.integers(2, 20)), "seed": [0, 1]},
                      X, y, n_iter=3, k=2, fit_kwargs=FIT, seed=5)
    assert [r["params"] for r in drawn] == [r["params"] for r in again]
    with pytest.raises(TypeError, match="a grid needs a list of values"):
        ms.search(build, {"units": lambda rng: 3}, X, y)


def test_experiments_on_a_dask_cluster_equal_the_serial_run(dask_client):
    pytest.importorskip("joblib._dask", reason="this joblib has no dask backend")
    X, y = data()
    serial_cv = ms.cross_validate(build, X, y, k=3, fit_kwargs=FIT)
    serial_best, serial_losses = ms.random_restarts(build, X, y, n=3, fit_kwargs=FIT)
    serial_search = ms.search(build, {"units": [4, 8]}, X, y, k=2, fit_kwargs=FIT)
    with joblib.parallel_config(backend="dask"):
        cv = ms.cross_validate(build, X, y, k=3, fit_kwargs=FIT, n_jobs=-1)
        best, losses = ms.random_restarts(build, X, y, n=3, fit_kwargs=FIT, n_jobs=-1)
        found = ms.search(build, {"units": [4, 8]}, X, y, k=2, fit_kwargs=FIT, n_jobs=-1)
    assert _without_times(cv) == _without_times(serial_cv)
    assert losses == serial_losses
    for a, b in zip(best.get_weights(), serial_best.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [(r["params"], _without_times(r["scores"])) for r in found] == \
        [(r["params"], _without_times(r["scores"])) for r in serial_search]
