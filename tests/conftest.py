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
    parser.addoption("--seed", type=int, default=None,
                     help="replay: seed the rng fixture with this value (the one a failure "
                          "printed)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: give --runslow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng(request):
    """Random data from a seed fixed per test (the crc32 of its id), fresh with --fresh-seeds
    or given with --seed; a failing test reports its seed (see pytest_runtest_makereport)."""
    if request.config.getoption("--seed") is not None:
        seed = request.config.getoption("--seed")
    elif request.config.getoption("--fresh-seeds"):
        seed = np.random.SeedSequence().entropy % (2**32)
    else:
        seed = zlib.crc32(request.node.nodeid.encode())
    request.node.user_properties.append(("seed", seed))
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failure of a test that drew from `rng` says which seed to replay, in a report section
    of its own (shown whatever the capture mode)."""
    outcome = yield
    report = outcome.get_result()
    seeds = [v for k, v in item.user_properties if k == "seed"]
    if report.failed and seeds:
        seed = seeds[-1]
        report.sections.append(
            ("rng seed", f"seed={seed}; replay with: pytest '{item.nodeid}' --seed={seed}"))


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
