"""Run one bench measurement in a fresh Python process and read back what it left.

Engines measured in one process disturb each other: a peer's worker threads that keep spinning
after its calls (ONNX Runtime's, PyTorch's OpenMP pool) take a core from whoever runs next, through
any quiet gap. The `infer` and `train` suites therefore time each engine in a child of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: children import bench from it
RESULT = "result.json"


class ChildFailed(Exception):
    """The child exited with an error; args: a short note for the table, then its stderr tail."""


def run_in_child(module: str, function: str, args: list, out_dir) -> dict:
    """Call ``module.function(*args)`` (JSON-able args) in a fresh interpreter and return the
    dict it wrote to ``out_dir``/result.json (``write_result``)."""
    code = (f"import json, sys; from {module} import {function}; "
            f"{function}(*json.loads(sys.argv[1]))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise ChildFailed(f"failed: {last[:60]}", proc.stderr[-2000:])
    return json.loads((Path(out_dir) / RESULT).read_text())


def write_result(out_dir, result: dict) -> None:
    (Path(out_dir) / RESULT).write_text(json.dumps(result))
