"""Bad input through every public function (tests/bad_inputs.py), each batch of cases in a
subprocess so that a crash fails the test instead of killing pytest; and memory that stays
bounded over many predicts and fits.

Default: a hypothesis-drawn sample of the cases plus the named regressions, a few seconds.
--runslow: every case (about 7,500)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bad_inputs

HERE = Path(__file__).parent
CASES = bad_inputs.all_cases()


def run_in_subprocess(cases, timeout=300):
    """{case: outcome} for each case, run in a fresh interpreter; a case that killed it is
    reported with its exit status."""
    proc = subprocess.run([sys.executable, str(HERE / "bad_inputs.py")],
                          input=json.dumps(cases), capture_output=True, text=True,
                          timeout=timeout, cwd=HERE, env={**os.environ, "FASTNN_NUM_THREADS": "1"})
    outcomes, started = {}, None
    for line in proc.stdout.splitlines():
        if not line.startswith("["):
            continue  # something a function printed (verbose=1)
        name, arg, value, outcome = json.loads(line)
        if outcome is None:
            started = (name, arg, value)
        else:
            outcomes[(name, arg, value)] = outcome
    if proc.returncode != 0:
        outcomes[started] = f"process died (status {proc.returncode}): {proc.stderr[-2000:]}"
    return outcomes


def failures(cases):
    outcomes = run_in_subprocess(cases)
    assert len(outcomes) >= len(cases), "cases went missing"
    return {f"{n}({a}={v})": o for (n, a, v), o in outcomes.items() if o != "ok"}


def test_every_target_accepts_its_valid_arguments():
    """The probe means nothing if its baseline calls fail (every case would 'raise')."""
    for name, (fn, valid, kinds) in bad_inputs._targets().items():
        fn(**dict(valid))


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(CASES), min_size=1, max_size=400, unique=True))
def test_bad_inputs_sample(cases):
    assert failures([list(c) for c in cases]) == {}


# The defects the probe found on main, kept as named cases so they always run.
REGRESSIONS = [
    ("layers.Dense", "use_bias", "word"),                # "no" meant True
    ("Sequential.fit(mse)", "y", "complex_array"),       # imaginary part dropped
    ("Sequential.evaluate(mse)", "y", "complex_array"),
    ("Sequential.fit", "shuffle", "word"),
    ("Sequential.fit", "validation_split", "empty_list"),
    ("Sequential.fit", "verbose", "int_array"),
    ("Sequential.evaluate", "verbose", "word"),
    ("Sequential.compile", "metrics", "dict"),
    ("Sequential", "fused_mlp", "zero"),
    ("ops.matmul", "trans_a", "none"),
    ("ops.linear", "negative_slope", "nan"),
    ("ops.linear", "return_preactivation", "word"),
    ("ops.linear_grad", "need_dx", "word"),
    ("ops.batch_norm", "training", "word"),
    ("ops.sgd_step", "nesterov", "zero"),
    ("ops.sample_candidates", "unique", "word"),
    ("ops.sampled_softmax_cross_entropy", "subtract_log_q", "word"),
    ("callbacks.EarlyStopping", "restore_best_weights", "word"),
    ("callbacks.EarlyStopping", "verbose", "int_array"),
    ("data.train_test_split", "stratify", "word"),
    ("data.train_test_split", "seed", "true"),
    ("data.batches", "shuffle", "word"),
    ("model_selection.KFold", "shuffle", "word"),
    ("model_selection.cross_validate", "seed", "true"),
    ("Perceptron.fit", "y", "object_array"),
]


def test_bad_input_regressions():
    assert failures([list(c) for c in REGRESSIONS]) == {}


@pytest.mark.slow
def test_bad_inputs_all():
    assert failures([list(c) for c in CASES]) == {}


def test_integer_parameters_only_integral():
    import fastnn

    with pytest.raises(TypeError, match="units"):
        fastnn.layers.Dense(3.5)
    model = fastnn.Sequential([fastnn.layers.Dense(2)], input_dim=3).compile("mse")
    X, y = np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32)
    for kw in ({"epochs": 1.5}, {"batch_size": 2.0}, {"accumulate_steps": 1.0}):
        with pytest.raises(TypeError, match=next(iter(kw))):
            model.fit(X, y, verbose=0, **kw)


def test_nan_label_refused():
    import fastnn

    model = fastnn.Sequential([fastnn.layers.Dense(3)], input_dim=2).compile(
        "softmax_cross_entropy")
    with pytest.raises(ValueError, match="y: a NaN or infinite label is not a class"):
        model.fit(np.zeros((3, 2), np.float32), np.array([0.0, np.nan, 1.0]), verbose=0)


MEMORY_SCRIPT = """
import sys, numpy as np, fastnn
def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
predicts, fits = int(sys.argv[1]), int(sys.argv[2])
X = np.random.default_rng(0).standard_normal((64, 20)).astype(np.float32)
y = np.arange(64) % 4
model = fastnn.Sequential([fastnn.layers.Dense(32, "relu"), fastnn.layers.Dense(4)], input_dim=20)
model.compile("softmax_cross_entropy")
def work(n_pred, n_fit):
    for _ in range(n_pred):
        model.predict(X)
    for _ in range(n_fit):
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)
work(predicts // 10, max(1, fits // 10))  # warm up: caches, allocator pools
before = rss_kib()
work(predicts, fits)
print(rss_kib() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("predicts, fits", [
    (2000, 20),
    pytest.param(20000, 400, marks=pytest.mark.slow),
])
def test_memory_stays_bounded(predicts, fits):
    """A leak of even one 64x4 output per predict would add over 2 MB over 2,000 calls."""
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(predicts), str(fits)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    growth_kib = int(out.stdout.split()[-1])
    assert growth_kib < 2048, (f"RSS grew by {growth_kib} KiB over {predicts} predicts and "
                               f"{fits} fits")


def test_metric_loss_combinations_that_cannot_work():
    """On main these were accepted and the metric was silently missing from every log."""
    import fastnn

    model = fastnn.Sequential([fastnn.layers.Dense(2)], input_dim=3)
    for metric in ("accuracy", "top_k_accuracy"):
        with pytest.raises(ValueError, match=f"'{metric}' needs a classification loss"):
            model.compile("mse", metrics=[metric])
    with pytest.raises(ValueError, match="top_k_accuracy"):
        fastnn.Sequential([fastnn.layers.Dense(1)], input_dim=3).compile(
            "binary_cross_entropy", metrics=["top_k_accuracy"])
    model.compile("softmax_cross_entropy", metrics=["accuracy", "top_k_accuracy"])


def test_cross_validate_build_fn_must_return_a_model():
    """On main: AttributeError: 'int' object has no attribute 'fit'."""
    from fastnn.model_selection import cross_validate

    X, y = np.zeros((6, 2), np.float32), np.arange(6) % 2
    with pytest.raises(TypeError, match="build_fn"):
        cross_validate(lambda: 3, X, y, k=2)


def test_nan_label_is_no_class_in_stratified_splits():
    """On main a NaN label became a class of its own in train_test_split(stratify=True)."""
    from fastnn.data import train_test_split
    from fastnn.model_selection import StratifiedKFold

    X = np.zeros((8, 2), np.float32)
    y = np.array([0, 1, 0, 1, np.nan, 1, 0, 1])
    with pytest.raises(ValueError, match="NaN label"):
        train_test_split(X, y, stratify=True)
    with pytest.raises(ValueError, match="NaN label"):
        list(StratifiedKFold(2).split(X, y))
