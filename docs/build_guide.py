"""Fill docs/guide.md with what the examples really print, and check that it still does.

The guide's prose is written by hand. Each section names its script between two markers:

    <!-- run: examples/logistic.py -->
    ... (written by this script: the code, its output, its figures) ...
    <!-- end run -->

`python docs/build_guide.py` runs every named example in full (not --quick), writes its
figures to docs/images/ and puts its code, its printed output and links to its figures between
the markers. `--check` runs them again (figures to a scratch folder) and fails when an output differs from
the guide's, ignoring wall times (the one thing that differs from run to run on the same
machine).
`--only NAME` (re)builds or checks the sections of that script alone. Each run's wall time is
printed, which is how the guide's "under a minute" is measured."""

import argparse
import ast
import pathlib
import re
import subprocess
import sys
import tempfile
import time

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
GUIDE = DOCS / "guide.md"
BLOCK = re.compile(r"(<!-- run: (\S+) -->\n)(.*?)(<!-- end run -->)", re.S)
# Wall times and the ratios computed from them: "1.23 s", "12.9x faster".
TIMING = re.compile(r"\d+(\.\d+)? s\b|\d+(\.\d+)?x faster")


def code_without_docstring(script):
    """The script's source after its module docstring (the guide's prose says the same)."""
    source = script.read_text()
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        source = "\n".join(source.splitlines()[body[0].end_lineno:])
    return source.strip("\n")


def run(script, out):
    """Run one example in full from the repository root, its figures into `out`; (its stdout,
    seconds)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{script.name} failed:\n{done.stdout}{done.stderr}")
    if done.stderr.strip():
        print(f"  note: {script.name} wrote to stderr:\n{done.stderr}", file=sys.stderr)
    return done.stdout, seconds


def block(script, stdout):
    """What goes between a section's markers."""
    printed = [line for line in stdout.splitlines() if not line.startswith("figure: ")]
    figures = re.findall(r"^figure: (\S+)$", stdout, re.M)
    parts = [f"```python\n{code_without_docstring(script)}\n```\n",
             f"`python examples/{script.name}` prints:\n",
             "```text\n" + "\n".join(printed) + "\n```\n"]
    parts += [f"![{name}](images/{name})\n" for name in figures]
    return "\n".join(parts) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare instead of writing; exit 1 on a difference")
    parser.add_argument("--only", help="one example's file name, e.g. logistic.py")
    args = parser.parse_args()
    text = GUIDE.read_text()
    stale = []
    # A check leaves the committed figures alone (those with wall times on an axis differ).
    scratch = tempfile.TemporaryDirectory()
    out = scratch.name if args.check else DOCS / "images"

    def section(match):
        head, name, old, tail = match.groups()
        script = ROOT / name
        if args.only and script.name != args.only:
            return match.group(0)
        stdout, seconds = run(script, out)
        new = block(script, stdout)
        print(f"{script.name:<28} {seconds:6.1f} s", flush=True)
        if TIMING.sub("<time>", new) != TIMING.sub("<time>", old):
            stale.append(script.name)
        return head + new + tail

    text = BLOCK.sub(section, text)
    if args.check:
        if stale:
            raise SystemExit(f"the guide's output differs from what these print now: {stale}; "
                             f"run python docs/build_guide.py")
        print("the guide matches the examples")
    else:
        GUIDE.write_text(text)


if __name__ == "__main__":
    main()
