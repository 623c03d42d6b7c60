"""The Dask cluster of the tests that need one: a LocalCluster of two in-process workers
(processes=False: started in about a second), one thread each, with its Client."""

import pytest


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed",
                                      reason="dask.distributed is not installed "
                                             "(pip install 'fastnn[dask]')")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client
