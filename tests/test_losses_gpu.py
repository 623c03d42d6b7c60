"""The CUDA losses (softmax cross-entropy with index or probability labels, class weights and
label smoothing; binary cross-entropy with logits, MSE, MAE) against the float64 oracle, through
fastnn.ops on CUDA tensors. Tolerance: tests/check.py "loss_gpu"."""

import numpy as np
import pytest

import oracle
from check import assert_norm_close, tol
from fastnn import ops
from gpu import dev, host, needs_gpu

pytestmark = needs_gpu

DTYPES = [np.float32, np.float64]


def check_loss(loss, grad, ref, dtype, what):
    ref_loss, ref_grad = ref
    assert isinstance(loss, float)
    loss_err = abs(loss - ref_loss) / max(abs(ref_loss), 1e-300)
    assert loss_err < tol("loss_gpu", dtype), f"{what}: loss {loss!r} vs {ref_loss!r} ({loss_err:.3g})"
    assert_norm_close(grad, ref_grad, tol("loss_gpu", dtype), f"{what}: gradient")


XENT_SHAPES = [(1, 1), (1, 5), (7, 3), (1001, 2), (5, 16), (1003, 10), (33, 17), (3, 33),
               (128, 1000), (4096, 10), (20000, 10), (70001, 3), (5, 1025), (4, 20000)]


def run_xent(logits, labels, weight=None, smoothing=0.0):
    loss, grad = ops.softmax_cross_entropy(dev(logits), dev(labels), class_weight=dev(weight),
                                           label_smoothing=smoothing)
    assert grad.is_cuda
    return loss, host(grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_index_labels(dtype, weighted, smoothing, rng):
    for n, c in XENT_SHAPES:
        logits = (3 * rng.standard_normal((n, c))).astype(dtype)
        labels = rng.integers(0, c, n)
        w = rng.uniform(0.1, 2.0, c).astype(dtype) if weighted else None
        loss, grad = run_xent(logits, labels, weight=w, smoothing=smoothing)
        ref = oracle.softmax_cross_entropy(logits, labels, class_weight=w, label_smoothing=smoothing)
        check_loss(loss, grad, ref, dtype, f"xent {n}x{c}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_probabilities(dtype, weighted, smoothing, rng):
    for n, c in XENT_SHAPES:
        logits = (3 * rng.standard_normal((n, c))).astype(dtype)
        p = rng.random((n, c)) + 1e-3
        p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
        w = rng.uniform(0.1, 2.0, c).astype(dtype) if weighted else None
        loss, grad = run_xent(logits, p, weight=w, smoothing=smoothing)
        ref = oracle.softmax_cross_entropy(logits, p, class_weight=w, label_smoothing=smoothing)
        check_loss(loss, grad, ref, dtype, f"xent probs {n}x{c}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_extreme_logits(dtype, rng):
    """Logits of 1e4 (no overflow) and a confident correct class (1 - p_y kept to its
    precision)."""
    n, c = 64, 100
    logits = rng.standard_normal((n, c)).astype(dtype)
    labels = rng.integers(0, c, n)
    logits[np.arange(n), labels] += 12
    logits[0] += 1e4
    loss, grad = run_xent(logits, labels)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    ref = oracle.softmax_cross_entropy(logits, labels)
    check_loss(loss, grad, ref, dtype, "xent extreme")
    # The labelled class's gradient (p_y - 1) / N, small here, to its own relative precision.
    gy = grad[np.arange(n), labels].astype(np.float64)
    ry = ref[1][np.arange(n), labels]
    assert np.all(np.abs(gy - ry) <= 1e-4 * np.abs(ry) + 1e-30)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [3, 2000])
def test_cross_entropy_untargeted_minus_infinity(dtype, c):
    # A class that can never be chosen: its mass is 0, so it must not make the loss 0 * inf;
    # placed first, it is also the first element the online max sees.
    z = np.zeros((2, c), dtype)
    z[:, 0] = -np.inf
    z[:, 2] = 1.0
    loss, grad = run_xent(z, np.array([2, 2]))
    assert loss == pytest.approx(np.log1p((c - 2) * np.exp(-1.0)), rel=1e-6)
    assert np.all(np.isfinite(grad)) and np.all(grad[:, 0] == 0.0)


def test_cross_entropy_bad_label_raises_and_the_next_call_works(rng):
    logits = rng.standard_normal((50, 10)).astype(np.float32)
    for bad in (10, -1, 2**40):
        labels = rng.integers(0, 10, 50)
        labels[17] = bad
        labels[33] = 11
        with pytest.raises(ValueError, match=f"got {bad} at position 17"):
            run_xent(logits, labels)
    # The cached workspace is fine for the next call.
    labels = rng.integers(0, 10, 50)
    loss, grad = run_xent(logits, labels)
    check_loss(loss, grad, oracle.softmax_cross_entropy(logits, labels), np.float32, "after error")


def test_cross_entropy_zero_weights_raise(rng):
    logits = rng.standard_normal((4, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="class_weight"):
        run_xent(logits, np.array([0, 0, 1, 1]), weight=np.array([0, 0, 1], np.float32))


def test_cross_entropy_argument_errors():
    t = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="at least one row"):
        run_xent(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="label_smoothing"):
        run_xent(t, np.zeros(2, np.int64), smoothing=1.5)


def test_cross_entropy_deterministic(rng):
    logits = (3 * rng.standard_normal((30000, 37))).astype(np.float32)
    labels = rng.integers(0, 37, 30000)
    a = run_xent(logits, labels)
    b = run_xent(logits, labels)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])


def run_elem(fn, a, b):
    loss, grad = getattr(ops, fn)(dev(a), dev(b))
    return loss, host(grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", ["binary_cross_entropy_with_logits", "mse", "mae"])
def test_elementwise_losses(fn, dtype, rng):
    for n in [1, 3, 4, 5, 33, 1000, 100003, 3_000_001]:
        a = (4 * rng.standard_normal(n)).astype(dtype)
        if fn == "binary_cross_entropy_with_logits":
            a[0] = 1e4 if n > 1 else a[0]
            b = rng.random(n).astype(dtype)
        else:
            b = (4 * rng.standard_normal(n)).astype(dtype)
            b[0] = a[0]  # a zero difference: MAE's slope 0
        loss, grad = run_elem(fn, a, b)
        ref = getattr(oracle, fn)(a, b)
        check_loss(loss, grad, ref, dtype, f"{fn} n={n}")
        again = run_elem(fn, a, b)
        assert again[0] == loss and np.array_equal(again[1], grad), "not deterministic"


def test_elementwise_loss_empty_raises():
    e = np.zeros(0, np.float32)
    with pytest.raises(ValueError, match="at least one element"):
        run_elem("mse", e, e)
