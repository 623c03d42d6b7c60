"""GridSearchCV over the digits data with n_jobs=1 and n_jobs=2: fastnn.sklearn.MLPClassifier,
and scikit-learn's MLPClassifier as the reference, in the same run. Each estimator keeps its
default thread settings, as a user's script would: with n_jobs=2 joblib's loky workers get
OMP_NUM_THREADS = cores // 2, and fastnn must follow it or 2 workers x all cores oversubscribe
the machine (issue 11, item 6)."""

from __future__ import annotations

import statistics
import time
import warnings

import numpy as np

from bench.suites._common import Context
from bench.table import Column, Table

NAME = "gridsearch"
DESCRIPTION = "GridSearchCV over digits, n_jobs=2 vs n_jobs=1, fastnn vs scikit-learn MLP"

GRID = {"hidden_layer_sizes": [(64,), (128,)], "alpha": [1e-4, 1e-3]}
CV = 3
EPOCHS = 30
QUIET_S = 0.3  # a quiet gap before each timed call, so one call's tail does not slow the next


def _estimator(kind: str):
    # Same layers, optimizer, batch and a fixed epoch count (no early stop) for both.
    params = dict(solver="adam", batch_size=200, learning_rate_init=1e-3, max_iter=EPOCHS,
                  tol=0.0, n_iter_no_change=EPOCHS + 1, random_state=0)
    if kind == "fastnn":
        from fastnn.sklearn import MLPClassifier
    else:
        from sklearn.neural_network import MLPClassifier
    return MLPClassifier(**params)


def _time_search(kind: str, n_jobs: int, X, y, repeats: int) -> tuple[float, list[float], float]:
    from sklearn.model_selection import GridSearchCV

    def once():
        search = GridSearchCV(_estimator(kind), GRID, cv=CV, n_jobs=n_jobs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
            search.fit(X, y)
        return search.best_score_

    once()  # warm-up: starts joblib's worker processes, which later calls reuse
    samples = []
    for _ in range(repeats):
        time.sleep(QUIET_S)
        t0 = time.perf_counter()
        score = once()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), samples, score


def run(ctx: Context) -> dict:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return {"rows": [{"shape": "gridsearch", "note": "scikit-learn not installed",
                          "ok": True, "threads": None}], "notes": []}
    import fastnn

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    repeats = 2 if ctx.quick else 5
    fits = CV * int(np.prod([len(v) for v in GRID.values()]))
    notes = [f"GridSearchCV({GRID}, cv={CV}): {fits} fits + refit, {EPOCHS} epochs each, "
             f"adam, batch 200; median of {repeats} after a warm-up, {QUIET_S} s quiet before "
             f"each; default threads (fastnn {fastnn.get_num_threads()} in this process)"]
    print(notes[0])
    table = Table([Column("shape", "estimator", width=24), Column("s1", "n_jobs=1 s", ".2f"),
                   Column("s2", "n_jobs=2 s", ".2f"), Column("speedup", "1/2 speed-up", ".2f"),
                   Column("score", "best cv score", ".4f")])
    table.header()
    rows = []
    for kind in ("fastnn", "sklearn"):
        t1, samples1, score1 = _time_search(kind, 1, X, y, repeats)
        t2, samples2, score2 = _time_search(kind, 2, X, y, repeats)
        row = {"shape": f"{kind} MLPClassifier", "threads": None, "s1": t1, "s2": t2,
               "speedup": t1 / t2, "score": score2, "samples_n_jobs_1": samples1,
               "samples_n_jobs_2": samples2, "score_n_jobs_1": score1,
               # the point of the row: two workers must beat one
               "ok": kind != "fastnn" or t2 < t1}
        table.row(row)
        rows.append(row)
    return {"rows": rows, "notes": notes}
