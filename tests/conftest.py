import zlib

import numpy as np
import pytest

import fastnn

SIMD_PATHS = [p for p in ("avx512", "avx2", "scalar") if fastnn._C.simd_supported(p)]


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")
    parser.addoption("--fresh-seeds", action="store_true",
                     help="draw a new seed for the rng fixture on every run (default: a fixed "
                          "seed per test, so CI runs are reproducible)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: give --runslow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng(request):
    """Random data from a seed fixed per test (its id), or fresh with --fresh-seeds; the seed is
    printed when a test fails so that it can be replayed."""
    if request.config.getoption("--fresh-seeds"):
        seed = np.random.SeedSequence().entropy % (2**32)
    else:
        seed = zlib.crc32(request.node.nodeid.encode())
    request.node.user_properties.append(("seed", seed))
    print(f"seed={seed}")
    return np.random.default_rng(seed)


@pytest.fixture(params=SIMD_PATHS)
def simd(request):
    """Run the test once per SIMD path this CPU supports, restoring the default afterwards."""
    fastnn.set_simd(request.param)
    yield request.param
    fastnn.set_simd(None)


@pytest.fixture(params=[1, 2])
def threads(request):
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(request.param)
    yield request.param
    fastnn.set_num_threads(before)
