"""Runs model_selection's independent fits (folds, restarts, search candidates) through joblib.

joblib is optional: without it, and with n_jobs=None when the caller has not imported joblib,
the fits run one after another here. Through joblib, the user's ``joblib.parallel_config(
backend="dask")`` (or "ray", "loky", ...) decides where they run, unchanged.

Each job's fastnn threads are limited so that jobs x threads <= cores: several jobs that each
start a thread per core would fight over the cores. A fit's results do not depend on its thread
count (the kernels split work, never sums, across threads), so the same seeds give the serial
run's results bit for bit."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# The thread count is the process's: jobs running as threads of one process (joblib's threading
# backend, Dask workers with processes=False) share it. The first job to start saves the count
# it finds and the last to end puts it back, so that no job restores another's limit.
_lock = threading.Lock()
_running = 0
_saved: int | None = None


def _with_threads(threads: int | None, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """fn(*args) with fastnn limited to `threads` threads (None: as it is)."""
    global _running, _saved
    if threads is None:
        return fn(*args)
    from fastnn import _config

    with _lock:
        if _running == 0:
            _saved = _config.get_num_threads()
        _running += 1
        _config.set_num_threads(min(threads, _saved or threads))
    try:
        return fn(*args)
    finally:
        with _lock:
            _running -= 1
            if _running == 0 and _saved is not None:
                _config.set_num_threads(_saved)


def _joblib(n_jobs: int | None) -> ModuleType | None:
    """joblib when the call goes through it: n_jobs given, or joblib already imported (the user
    may have set a parallel_config); None when the fits run here, one after another."""
    if n_jobs is None:
        return sys.modules.get("joblib")
    try:
        import joblib
    except ImportError:
        raise ImportError("n_jobs: running fits in parallel needs joblib (pip install joblib); "
                          "pass n_jobs=None to run them one after another") from None
    return joblib


def check_n_jobs(n_jobs: Any) -> int | None:
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int):
        raise TypeError(f"n_jobs: expected an int or None, got {type(n_jobs).__name__}")
    if n_jobs == 0:
        raise ValueError("n_jobs: expected a number of jobs >= 1, or -1 for one per core, got 0")
    return n_jobs


def run(calls: Iterable[tuple[Callable[..., Any], tuple[Any, ...]]],
        n_jobs: int | None) -> list[Any]:
    """[fn(*args) for fn, args in calls], through joblib when it applies (see the docstring),
    in the order of `calls`."""
    calls = list(calls)
    joblib = _joblib(check_n_jobs(n_jobs))
    if joblib is None:
        return [fn(*args) for fn, args in calls]
    jobs = min(joblib.effective_n_jobs(n_jobs), max(len(calls), 1))
    threads = max(1, _cores() // jobs) if jobs > 1 else None
    return joblib.Parallel(n_jobs=n_jobs)(
        joblib.delayed(_with_threads)(threads, fn, args) for fn, args in calls)
