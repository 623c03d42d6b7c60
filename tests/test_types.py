"""fastnn's annotations, checked: `mypy --strict` (tests/mypy.ini says what is relaxed where) over
the package (from the source tree; the extension modules through their stubs) and over
tests/typed_user_code.py, a user's script whose assert_type lines pin what the public calls
return. One mypy run, with a fresh cache in a temporary directory. mypy is in the `test` extra;
without it the check skips."""

import ast
import inspect
import pathlib
import subprocess
import sys

import pytest

from fastnn import optim

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_mypy_strict_passes_on_the_package_and_a_users_script(tmp_path):
    pytest.importorskip("mypy", reason="the type check needs mypy (pip install mypy, or '.[test]')")
    package = ROOT / "python" / "fastnn"
    if not package.is_dir():
        pytest.skip("needs the source tree (python/fastnn)")
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "tests" / "mypy.ini"),
         "--cache-dir", str(tmp_path / "mypy-cache"), "--no-error-summary",
         str(package), str(ROOT / "tests" / "typed_user_code.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"mypy --strict found type errors:\n{run.stdout}{run.stderr}"


def _declared_init(cls):
    """(name, default) of the __init__ an optimizer class declares for type checkers only (in
    its `if TYPE_CHECKING:` block), read from the source."""
    tree = ast.parse(inspect.getsource(cls))
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    args = fn.args.args[1:]
    defaults = [inspect.Parameter.empty] * (len(args) - len(fn.args.defaults))
    defaults += [ast.literal_eval(d) for d in fn.args.defaults]
    return [(a.arg, d) for a, d in zip(args, defaults)]


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW, optim.Adagrad, optim.RMSprop],
                         ids=lambda c: c.__name__)
def test_optimizer_signature_for_type_checkers_matches_its_table(cls):
    # The constructors are made from each class's field table at run time; type checkers read
    # the __init__ written out for them, which must say the same.
    made = [(p.name, p.default) for p in cls.__signature__.parameters.values()]
    assert _declared_init(cls) == made
