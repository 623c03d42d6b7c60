"""The rng fixture (conftest.py): a fixed seed per test by default, fresh ones behind
--fresh-seeds, a given one with --seed, and a failing test reports the seed to replay."""

import pathlib
import re

pytest_plugins = ["pytester"]

_CONFTEST = (pathlib.Path(__file__).parent / "conftest.py").read_text()

_TESTS = """
def test_draws(rng):
    print("drew", rng.integers(0, 2**62))
    assert False
"""


def _run(pytester, *args):
    pytester.makeconftest(_CONFTEST)
    pytester.makepyfile(test_seeded=_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", *args)
    text = result.stdout.str()
    seed = re.search(r"seed=(\d+); replay with: pytest '.*test_draws' --seed=\1", text)
    assert seed, f"no seed section in:\n{text}"
    return int(seed.group(1)), re.search(r"drew (\d+)", text).group(1)


def test_default_seed_is_fixed_and_reported(pytester):
    first = _run(pytester)
    assert _run(pytester) == first


def test_fresh_seeds_differ_and_replay(pytester):
    seed, drawn = _run(pytester, "--fresh-seeds")
    assert _run(pytester, "--fresh-seeds") != (seed, drawn)
    assert _run(pytester, f"--seed={seed}") == (seed, drawn)
