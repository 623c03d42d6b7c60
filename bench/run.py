"""Entry point: pick suites, run them, print tables, write JSON."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path

from bench.suites import (dist, gemm, gpu_kernels, gpu_train, gridsearch, infer, kernels,
                          linear, train)

SUITES = {mod.NAME: mod for mod in (gemm, linear, kernels, train, infer, gridsearch,
                                    gpu_kernels, gpu_train, dist)}
OUT_DIR = Path(__file__).resolve().parent / "out"


def _parser() -> argparse.ArgumentParser:
    listing = ", ".join(f"{name} ({mod.DESCRIPTION})" for name, mod in SUITES.items())
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=f"fastnn benchmarks. Suites: {listing}.")
    p.add_argument("suites", nargs="*", metavar="SUITE",
                   help="suites to run (default: all)")
    p.add_argument("--json", metavar="PATH", default=None,
                   help="write results here instead of bench/out/<suite>.json; "
                        "with several suites the file holds all of them")
    p.add_argument("--markdown", metavar="PATH", default=None,
                   help="also write the suites' tables as markdown here (infer, train and "
                        "the GPU suites provide them; for bench/RESULTS.md)")
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats, shorter quiet gaps and smaller sizes (a smoke run: "
                        "each CPU suite takes seconds to a minute, not a measurement)")
    return p


def _write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # default=str keeps odd values in show_config() from aborting the dump.
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"wrote {path}")


def _write_markdown(path: Path, docs: list[dict], desc: dict) -> None:
    parts = []
    for doc in docs:
        text = doc.get("markdown") or "(this suite has no markdown tables; see its JSON)\n"
        parts.append(f"## `{doc['suite']}` ({doc['date']}{', quick' if doc['quick'] else ''}, "
                     f"{doc['elapsed_s']:.0f} s)\n\n{text}")
    head = (f"fastnn {desc['fastnn'].get('version')}, host CPU {desc['cpu_model']}, "
            f"{desc['platform']}\n\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + "\n".join(parts))
    print(f"wrote {path}")


def main(suites: list[str], *, quick: bool = False, json_path: str | None = None) -> int:
    """Run ``suites`` (all when empty); returns a process exit status.

    The list may also carry the command-line flags, so ``main(["gemm", "--quick"])``
    behaves like ``python -m bench gemm --quick``.
    """
    args = _parser().parse_args(list(suites))
    quick = quick or args.quick
    json_path = args.json or json_path

    names = args.suites or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"error: unknown suite(s): {', '.join(unknown)}; "
              f"available suites: {', '.join(SUITES)}", file=sys.stderr)
        return 2
    # Keep first occurrence only so "gemm gemm" does not run twice.
    names = list(dict.fromkeys(names))

    # Imported here so `--help` and the unknown-suite error work even when the
    # extension is broken.
    from bench import machine
    from bench.suites._common import Context
    from bench.threads import BlasThreads
    from bench.timing import FULL, QUICK

    blas = BlasThreads()
    desc = machine.describe(blas.mechanism)
    mhz = desc["cpu_mhz"]
    ctx = Context(quick=quick, timer=QUICK if quick else FULL, blas=blas,
                  ghz=mhz / 1000.0 if mhz else None)

    cfg = desc["fastnn"]
    print(f"fastnn {cfg.get('version')} simd={cfg.get('simd')} "
          f"compiler={cfg.get('compiler')} hardware_threads={cfg.get('hardware_threads')}")
    print(f"cpu: {desc['cpu_model']} @ {mhz} MHz (/proc/cpuinfo); numpy {desc['numpy']}")
    print(f"NumPy BLAS thread control: {blas.mechanism}")
    if not blas.controlled:
        print("warning: NumPy may use every core in the 1-thread rows", file=sys.stderr)
    if quick:
        print("quick mode: reduced repeats and sizes; numbers are indicative only")

    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    docs = []
    for name in names:
        print(f"\n== {name}: {SUITES[name].DESCRIPTION} ==")
        t0 = time.perf_counter()
        result = SUITES[name].run(ctx)
        elapsed = time.perf_counter() - t0
        print(f"({name} took {elapsed:.1f} s)")
        doc = {
            "suite": name,
            "date": date,
            "quick": quick,
            "machine": desc,
            "timer": dataclasses.asdict(ctx.timer),
            "elapsed_s": elapsed,
            **result,
        }
        docs.append(doc)
        if json_path is None:
            _write_json(OUT_DIR / f"{name}.json", doc)

    if args.markdown:
        _write_markdown(Path(args.markdown), docs, desc)

    if json_path is not None:
        combined = docs[0] if len(docs) == 1 else {
            "date": date, "quick": quick, "machine": desc, "suites": docs}
        _write_json(Path(json_path), combined)

    bad = [f"{d['suite']} {r['shape']} t={r['threads']}"
           for d in docs for r in d["rows"] if not r["ok"]]
    if bad:
        print(f"error: fastnn results wrong (against NumPy or PyTorch) or failed in: "
              f"{'; '.join(bad)}", file=sys.stderr)
        return 1
    return 0
