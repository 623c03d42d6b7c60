"""The CUDA row reductions (column sums and means, row argmax, correct-prediction counts) against
math.fsum / the oracle and the CPU kernels, through fastnn.ops on CUDA tensors."""

import math

import numpy as np
import pytest

import oracle
from fastnn import ops
from gpu import dev, host, needs_gpu

pytestmark = needs_gpu

DTYPES = [np.float32, np.float64]
RED_SHAPES = [(1, 1), (1, 9), (7, 1), (8, 8), (9, 15), (16, 17), (31, 32), (33, 7), (1000, 1100),
              (100000, 3), (3, 5000), (0, 4), (70000, 33)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_and_mean_rows(dtype, rng):
    for n, f in RED_SHAPES:
        x = (rng.standard_normal((n, f)) + rng.uniform(-5, 5, f)).astype(dtype)
        ref = np.array([math.fsum(c) for c in x.astype(np.float64).T]) if n else np.zeros(f)
        tol = {np.float32: 1e-6, np.float64: 1e-12}[dtype]
        xd = dev(x)
        s = host(ops.sum_rows(xd))
        assert s.dtype == dtype and s.shape == (f,)
        np.testing.assert_allclose(s, ref, rtol=tol, atol=tol * max(n, 1), err_msg=f"{n}x{f}")
        assert np.array_equal(s, host(ops.sum_rows(xd))), "sum_rows is not deterministic"
        if n:
            np.testing.assert_allclose(host(ops.mean_rows(xd)), ref / n, rtol=tol, atol=tol,
                                       err_msg=f"mean {n}x{f}")


def tied(rng, shape, dtype):
    """Small integers (many ties) with NaN and infinities sprinkled in."""
    x = rng.integers(-3, 4, shape).astype(dtype)
    for value in (np.nan, np.inf, -np.inf):
        x[rng.random(shape) < 0.02] = value
    return x


@pytest.mark.parametrize("dtype", DTYPES)
def test_argmax_rows(dtype, rng):
    for n, f in [s for s in RED_SHAPES if s[1] > 0]:
        for x in (tied(rng, (n, f), dtype), rng.standard_normal((n, f)).astype(dtype)):
            assert np.array_equal(host(ops.argmax_rows(dev(x))), oracle.argmax_rows(x)), f"{n}x{f}"
    x = np.array([[1, 3, 3, 2], [np.nan, 5, np.nan, 1], [1, 2, np.nan, 9],
                  [-np.inf, -np.inf, -np.inf, -np.inf], [np.inf, 1, np.inf, 0]], dtype)
    assert host(ops.argmax_rows(dev(x))).tolist() == [1, 0, 2, 0, 0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_count_correct(dtype, rng):
    for n, c in [(1, 1), (7, 3), (1000, 10), (100000, 7), (300, 2000), (0, 5)]:
        scores = tied(rng, (n, c), dtype)
        labels = rng.integers(0, c, n).astype(np.int64)
        correct = ops.count_correct(dev(scores), dev(labels))
        assert correct == int(np.sum(oracle.argmax_rows(scores) == labels)) if n else correct == 0
        if n:
            assert correct == ops.count_correct(scores, labels)


def test_count_correct_out_of_range_labels_raise():
    labels = np.array([0, 5, -1, 3], np.int64)  # right, out of range, out of range, right
    scores = np.eye(4, 5, dtype=np.float32)
    with pytest.raises(ValueError, match=r"got 2 label\(s\) outside"):
        ops.count_correct(dev(scores), dev(labels))


def test_sum_rows_bad_arguments():
    with pytest.raises(ValueError, match="at least one row"):
        ops.mean_rows(dev(np.zeros((0, 3), np.float32)))
