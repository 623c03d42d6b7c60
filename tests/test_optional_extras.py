"""A feature whose optional package is missing says which package and which extra of fastnn
installs it, as a user meets it: at the call, not at `import fastnn`."""

import sys

import numpy as np
import pytest

import fastnn
from fastnn.layers import Dense


def _hide(monkeypatch, *modules):
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError


def test_data_parallel_without_mpi4py_names_the_mpi_extra(monkeypatch):
    from fastnn.distributed import DataParallel

    _hide(monkeypatch, "mpi4py", "mpi4py.MPI")
    with pytest.raises(ImportError, match=r"fastnn.distributed needs the 'mpi4py' package: "
                                          r"pip install 'fastnn\[mpi\]'"):
        DataParallel()


def test_dask_predict_without_dask_names_the_dask_extra(monkeypatch):
    import fastnn.dask

    model = fastnn.Sequential([Dense(1)], input_dim=1)
    _hide(monkeypatch, "dask", "dask.array", "dask.delayed")
    with pytest.raises(ImportError, match=r"fastnn.dask needs the 'dask' package: "
                                          r"pip install 'fastnn\[dask\]'"):
        fastnn.dask.predict(model, np.zeros((1, 1), np.float32))
