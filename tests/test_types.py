"""fastnn's annotations, checked: `mypy --strict` (tests/mypy.ini says what is relaxed where) over
the package (from the source tree; the extension modules through their stubs) and over
tests/typed_user_code.py, a user's script whose assert_type lines pin what the public calls
return. One mypy run, with a fresh cache in a temporary directory. mypy is in the `test` extra;
without it the check skips."""

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("mypy", reason="the type check needs mypy (pip install mypy, or '.[test]')")

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_mypy_strict_passes_on_the_package_and_a_users_script(tmp_path):
    package = ROOT / "python" / "fastnn"
    if not package.is_dir():
        pytest.skip("needs the source tree (python/fastnn)")
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "tests" / "mypy.ini"),
         "--cache-dir", str(tmp_path / "mypy-cache"), "--no-error-summary",
         str(package), str(ROOT / "tests" / "typed_user_code.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"mypy --strict found type errors:\n{run.stdout}{run.stderr}"
