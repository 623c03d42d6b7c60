"""Regenerates python/fastnn/_C.pyi and _cuda.pyi, the type stubs of the extension modules.

Run it with the Python of a build that has both modules (a CUDA build: fastnn._cuda is only
compiled where nvcc is), after a binding changes:

    pip install pybind11-stubgen && python tools/gen_stubs.py [_C] [_cuda]

pybind11-stubgen writes what the bindings' docstrings say; the pass below only makes that
acceptable to `mypy --strict` (bare containers get type arguments, **kwargs an annotation) and
drops what depends on the machine that built the module (the compiler string's value).
tests/test_stubs.py checks the checked-in files against the modules, so a binding that changes
without a rerun fails there.
"""

import pathlib
import re
import subprocess
import sys
import tempfile

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "python" / "fastnn"

# (pattern, replacement), applied in order to each generated line.
_FIXES = [
    (re.compile(r"\btuple(?=[:,)=]| =)"), "tuple[typing.Any, ...]"),
    (re.compile(r"\blist(?=[:,)=]| =)"), "list[typing.Any]"),
    (re.compile(r"\bdict(?=[:,)=]| =)"), "dict[str, typing.Any]"),
    (re.compile(r"\*\*kwargs\)"), "**kwargs: typing.Any)"),
    (re.compile(r"\*args\)"), "*args: typing.Any)"),
    (re.compile(r"^compiler: str = .*$"), "compiler: str"),
]


def tidy(text):
    lines = []
    for line in text.splitlines():
        if not line.startswith("__all__"):
            for pattern, replacement in _FIXES:
                line = pattern.sub(replacement, line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def generate(module):
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "pybind11_stubgen", f"fastnn.{module}", "-o", out],
                       check=True)
        text = (pathlib.Path(out) / "fastnn" / f"{module}.pyi").read_text()
    (PACKAGE / f"{module}.pyi").write_text(tidy(text))


if __name__ == "__main__":
    for name in sys.argv[1:] or ["_C", "_cuda"]:
        generate(name)
