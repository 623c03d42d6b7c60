"""fastnn.ops row reductions (sum_rows, mean_rows, argmax_rows) and accuracy counts
(count_correct, top_k_correct, binary_correct) against NumPy / the oracle, with ties, NaN and
infinities, across thread counts, and on bad input.

Column sums cut features into blocks of 1024 and rows into at most 64 chunks, parallel from 2**16
elements: (1000, 1100) spans two feature blocks, (100000, 3) 64 row chunks."""

import math

import numpy as np
import pytest

import fastnn
from fastnn import ops

import oracle
from check import REDUCTION_ABS, tol

DTYPES = [np.float32, np.float64]
SHAPES = [(1, 1), (1, 9), (7, 1), (8, 8), (9, 15), (16, 17), (31, 32), (33, 7), (1000, 1100),
          (100000, 3), (3, 5000), (0, 4)]


# ------------------------------------------------------------------ sums and means
@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_and_mean_rows(threads, dtype, rng):
    for n, f in SHAPES:
        x = (rng.uniform(-5, 5, f) + rng.standard_normal((n, f))).astype(dtype)
        exact = np.array([math.fsum(col) for col in x.astype(np.float64).T])
        s = ops.sum_rows(x)
        assert s.dtype == dtype and s.shape == (f,)
        bound = (np.abs(x.astype(np.float64)).sum(axis=0) * REDUCTION_ABS
                 + np.abs(exact) * tol("reduction", dtype))
        assert np.all(np.abs(s - exact) <= bound), f"sum_rows {n}x{f}"
        if n:
            m = ops.mean_rows(x)
            assert m.dtype == dtype
            assert np.all(np.abs(m - exact / n) <= bound / n), f"mean_rows {n}x{f}"
    assert np.array_equal(ops.sum_rows(np.zeros((0, 4), np.float32)), np.zeros(4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_count_does_not_change_bits(dtype, rng):
    before = fastnn.get_num_threads()
    for n, f in [(1000, 1100), (100000, 3), (3, 5000)]:
        x = rng.standard_normal((n, f)).astype(dtype)
        results = []
        for t in (1, 2, 3):
            fastnn.set_num_threads(t)
            results.append((ops.sum_rows(x), ops.mean_rows(x), ops.argmax_rows(x)))
        fastnn.set_num_threads(before)
        for other in results[1:]:
            assert all(np.array_equal(a, b) for a, b in zip(results[0], other))


def test_non_finite_sums():
    x = np.array([[1.0, np.inf, np.nan], [2.0, 1.0, 0.0]], np.float32)
    s = ops.sum_rows(x)
    assert s[0] == 3 and s[1] == np.inf and np.isnan(s[2])


def test_strided_input(rng):
    x = rng.standard_normal((50, 40))[::3, 1::2]
    np.testing.assert_allclose(ops.sum_rows(x), x.sum(axis=0), rtol=1e-12, atol=1e-12)
    assert np.array_equal(ops.argmax_rows(x), x.argmax(axis=1))


# ------------------------------------------------------------------ argmax
def tied(rng, shape, dtype, special=False):
    """Scores from a few integer levels, so rows have ties; optionally with NaN and inf."""
    x = rng.integers(-3, 4, shape).astype(dtype)
    if special and x.size:
        for value in (np.nan, np.inf, -np.inf):
            mask = rng.random(shape) < 0.02
            x[mask] = value
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("special", [False, True])
def test_argmax_rows(threads, dtype, special, rng):
    for n, f in SHAPES:
        for x in (tied(rng, (n, f), dtype, special), rng.standard_normal((n, f)).astype(dtype)):
            got = ops.argmax_rows(x)
            assert got.dtype == np.int64 and got.shape == (n,)
            assert np.array_equal(got, oracle.argmax_rows(x)), f"{n}x{f}"


def test_argmax_nan_and_ties_documented():
    x = np.array([[1, 3, 3, 2], [np.nan, 5, np.nan, 1], [1, 2, np.nan, 9],
                  [-np.inf, -np.inf, -np.inf, -np.inf], [np.inf, 1, np.inf, 0]])
    assert ops.argmax_rows(x).tolist() == [1, 0, 2, 0, 0]


# ------------------------------------------------------------------ accuracy counts
LABEL_DTYPES = [np.int64, np.int32, np.uint8, np.int16, np.uint64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("special", [False, True])
def test_count_and_top_k(threads, dtype, special, rng):
    for k_shape, (n, c) in enumerate(SHAPES):
        if c > 255:
            continue  # uint8 labels; the big-class shapes are covered below
        labels = rng.integers(0, c, n).astype(LABEL_DTYPES[k_shape % len(LABEL_DTYPES)])
        x = tied(rng, (n, c), dtype, special)
        want = int(np.sum(oracle.argmax_rows(x) == labels))
        assert ops.count_correct(x, labels) == want
        assert ops.top_k_correct(x, labels, 1) == want
        for k in sorted({2, 3, c - 1, c, c + 5} - {0, -1}):
            if k >= 1:
                assert ops.top_k_correct(x, labels, k) == oracle.top_k_correct(x, labels, k), \
                    f"{n}x{c} k={k}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_counts_large(threads, dtype, rng):
    for n, c in [(20000, 10), (300, 1000)]:
        x = rng.standard_normal((n, c)).astype(dtype)
        labels = rng.integers(0, c, n)
        x[np.arange(n), labels] += rng.random(n) < 0.5  # make about half of them right
        assert ops.count_correct(x, labels) == int(np.sum(x.argmax(axis=1) == labels))
        k = 5
        ref = int(np.sum(np.sum(x > x[np.arange(n), labels][:, None], axis=1) < k))
        assert ops.top_k_correct(x, labels, k) == ref  # no ties in continuous data


def test_count_correct_one_hot_labels(rng):
    x = rng.standard_normal((50, 6))
    labels = rng.integers(0, 6, 50)
    one_hot = np.eye(6)[labels]
    assert ops.count_correct(x, one_hot) == ops.count_correct(x, labels)
    assert isinstance(ops.count_correct(x, labels), int)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_correct(threads, dtype, rng):
    for shape in [(1,), (7,), (33, 1), (16, 17), (200000,), (0, 3)]:
        logits = (2 * rng.standard_normal(shape)).astype(dtype)
        if logits.size:
            logits.flat[0] = 0.0  # exactly on the threshold: predicts 0
        targets = rng.random(shape) < 0.5
        for t, threshold in ((targets, 0.0), (targets.astype(np.int32), 0.0),
                             (targets.astype(dtype), 0.3), (rng.random(shape), -0.2)):
            got = ops.binary_correct(logits, t, threshold=threshold)
            assert isinstance(got, int)
            assert got == oracle.binary_correct(logits, t, threshold), f"{shape} {threshold}"
    nan = np.array([np.nan, np.nan], dtype)
    assert ops.binary_correct(nan, np.array([0, 1])) == 1  # NaN predicts 0


# ------------------------------------------------------------------ bad input
def test_bad_input():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="x: expected a 2-D"):
        ops.sum_rows(np.zeros(3))
    with pytest.raises(TypeError, match="x: expected float32 or float64"):
        ops.mean_rows(np.zeros((3, 3), np.int64))
    with pytest.raises(ValueError, match="x: expected at least one row"):
        ops.mean_rows(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="x: expected at least one class"):
        ops.argmax_rows(np.zeros((3, 0)))
    assert ops.argmax_rows(np.zeros((0, 3))).shape == (0,)
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 3\), got 3"):
        ops.count_correct(x, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 3\), got -1"):
        ops.top_k_correct(x, np.array([0, -1, 2, 1]), 2)
    with pytest.raises(ValueError, match=r"labels: expected shape \(4,\)"):
        ops.count_correct(x, np.array([0, 1]))
    with pytest.raises(TypeError, match="labels: expected integer class indices"):
        ops.count_correct(x, np.array([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="labels: one-hot labels must have scores' shape"):
        ops.count_correct(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="k: expected k >= 1"):
        ops.top_k_correct(x, np.zeros(4, np.int64), 0)
    with pytest.raises(TypeError, match="k: expected an int"):
        ops.top_k_correct(x, np.zeros(4, np.int64), 1.0)
    with pytest.raises(ValueError, match=r"targets: expected shape \(4, 3\)"):
        ops.binary_correct(x, np.zeros((4, 2)))
    with pytest.raises(TypeError, match="targets: expected bool, integer or float"):
        ops.binary_correct(x, np.zeros((4, 3), "U1"))
    with pytest.raises(ValueError, match="threshold: expected a finite number"):
        ops.binary_correct(x, np.zeros((4, 3)), threshold=float("nan"))
