"""fastnn.ops losses (softmax cross-entropy, BCE with logits, MSE, MAE) against the float64
oracle, by central finite differences, at extreme logits, across thread counts, and on bad input.

The kernels cut rows into chunks of 2**14 elements and go parallel from 2**16 elements: (4096, 10)
spans several chunks run in turn, (128, 1000) several chunks run in parallel, and the small
shapes fit one chunk."""

import numpy as np
import pytest

import fastnn
from fastnn import ops as losses

import oracle
from check import assert_norm_close, finite_difference, rel_err, tol

DTYPES = [np.float32, np.float64]
SHAPES = [(1, 1), (1, 5), (7, 3), (5, 16), (33, 17), (3, 33), (128, 1000), (4096, 10)]


def check(result, ref, dtype, like, grad_scale=None):
    """result = (loss, grad) from fastnn, ref = (loss, grad) from the oracle. grad_scale: the
    size of the terms a gradient element is a difference of (default: the gradient itself)."""
    loss, grad = result
    ref_loss, ref_grad = ref
    assert isinstance(loss, float)
    assert grad.dtype == like.dtype and grad.shape == like.shape
    assert np.isfinite(loss) and np.all(np.isfinite(grad)), "NaN or inf in the output"
    loss_err = abs(loss - ref_loss) / max(abs(ref_loss), 1e-300)
    assert loss_err < tol("loss", dtype), \
        f"loss {loss!r} vs {ref_loss!r}: relative error {loss_err:.3g}"
    assert_norm_close(grad, ref_grad, tol("loss", dtype), "gradient", grad_scale)


def probabilities(rng, shape, dtype):
    p = rng.random(shape) + 1e-3
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


# ------------------------------------------------------------------ against the oracle
LABEL_DTYPES = [np.int64, np.int32, np.uint8, np.uint64, np.int16]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_index_labels(simd, threads, dtype, weighted, smoothing, rng):
    for k, (n, c) in enumerate(SHAPES):
        logits = (3 * rng.standard_normal((n, c))).astype(dtype)
        # uint8 cannot hold 1000 classes; use the widest dtypes where needed.
        label_dtype = LABEL_DTYPES[k % len(LABEL_DTYPES)] if c < 128 else np.int64
        labels = rng.integers(0, c, n).astype(label_dtype)
        w = rng.uniform(0.1, 2.0, c).astype(dtype) if weighted else None
        got = losses.softmax_cross_entropy(logits, labels, class_weight=w,
                                           label_smoothing=smoothing)
        check(got, oracle.softmax_cross_entropy(logits, labels, w, smoothing), dtype, logits)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_probability_labels(threads, dtype, weighted, smoothing, rng):
    for n, c in SHAPES:
        logits = (3 * rng.standard_normal((n, c))).astype(dtype)
        labels = probabilities(rng, (n, c), dtype)
        w = rng.uniform(0.1, 2.0, c).astype(dtype) if weighted else None
        got = losses.softmax_cross_entropy(logits, labels, class_weight=w,
                                           label_smoothing=smoothing)
        check(got, oracle.softmax_cross_entropy(logits, labels, w, smoothing), dtype, logits)


ELEMENTWISE = {
    "bce": (losses.binary_cross_entropy_with_logits, oracle.binary_cross_entropy_with_logits),
    "mse": (losses.mse, oracle.mse),
    "mae": (losses.mae, oracle.mae),
}


def elementwise_inputs(name, rng, shape, dtype):
    a = (3 * rng.standard_normal(shape)).astype(dtype)
    b = rng.random(shape).astype(dtype) if name == "bce" else rng.standard_normal(shape).astype(dtype)
    return a, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_losses(simd, threads, dtype, name, rng):
    fn, ref = ELEMENTWISE[name]
    for shape in SHAPES + [(5,), (2, 3, 4)]:
        a, b = elementwise_inputs(name, rng, shape, dtype)
        # BCE's gradient is (sigmoid(x) - t) / n: a float32 sigmoid can be only as exact as its
        # rounding, so the error is measured against the terms, not their difference.
        scale = (np.abs(ref(a, np.zeros_like(a))[1]) + np.abs(b) / b.size) if name == "bce" else None
        check(fn(a, b), ref(a, b), dtype, a, scale)


def test_bce_hard_targets(rng):
    x = 4 * rng.standard_normal((50, 7))
    t = (rng.random((50, 7)) > 0.5).astype(np.float64)
    check(losses.binary_cross_entropy_with_logits(x, t),
          oracle.binary_cross_entropy_with_logits(x, t), np.float64, x)


def test_mae_gradient_is_zero_where_equal():
    p = np.array([[1.0, 2.0, 3.0]], np.float32)
    t = np.array([[1.0, 1.0, 4.0]], np.float32)
    loss, grad = losses.mae(p, t)
    assert loss == pytest.approx(2.0 / 3.0)
    assert np.array_equal(grad, np.array([[0.0, 1.0, -1.0]], np.float32) / 3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(dtype, rng):
    base = rng.standard_normal((40, 30)).astype(dtype)
    logits = base[::2, ::-3]  # (20, 10), negative column stride
    labels = rng.integers(0, 10, 40)[::2]
    w = rng.uniform(0.5, 1.5, 20).astype(dtype)[::2]
    check(losses.softmax_cross_entropy(logits, labels, w), oracle.softmax_cross_entropy(logits, labels, w),
          dtype, logits)
    probs = np.asfortranarray(probabilities(rng, (20, 10), dtype))
    check(losses.softmax_cross_entropy(logits, probs), oracle.softmax_cross_entropy(logits, probs),
          dtype, logits)
    target = rng.standard_normal((30, 40)).astype(dtype).T[::2]
    check(losses.mse(logits, base[1::2, ::3]), oracle.mse(logits, base[1::2, ::3]), dtype, logits)
    check(losses.mae(target, target[::-1]), oracle.mae(target, target[::-1]), dtype, target)


def test_inputs_are_not_modified(rng):
    logits = rng.standard_normal((9, 4))
    labels = rng.integers(0, 4, 9)
    before = logits.copy(), labels.copy()
    losses.softmax_cross_entropy(logits, labels, label_smoothing=0.3)
    assert np.array_equal(logits, before[0]) and np.array_equal(labels, before[1])


# ------------------------------------------------------------------ finite differences
def assert_gradient_matches_fd(f, x):
    loss, grad = f(x)
    fd = finite_difference(lambda y: f(y)[0], x)
    assert rel_err(grad, fd) < 1e-7, f"analytic {grad} vs finite differences {fd}"


CE_CASES = {
    "plain": dict(),
    "weighted": dict(class_weight=np.array([0.3, 2.0, 1.0, 0.7, 1.5])),
    "smoothed": dict(label_smoothing=0.2),
    "weighted_smoothed": dict(class_weight=np.array([0.3, 2.0, 1.0, 0.7, 1.5]), label_smoothing=0.4),
}


@pytest.mark.parametrize("case", sorted(CE_CASES))
@pytest.mark.parametrize("probability_labels", [False, True])
def test_cross_entropy_finite_differences(case, probability_labels, rng):
    logits = rng.standard_normal((4, 5))
    labels = probabilities(rng, (4, 5), np.float64) if probability_labels else rng.integers(0, 5, 4)
    kwargs = CE_CASES[case]
    assert_gradient_matches_fd(lambda z: losses.softmax_cross_entropy(z, labels, **kwargs), logits)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_finite_differences(name, rng):
    fn = ELEMENTWISE[name][0]
    a, b = elementwise_inputs(name, rng, (3, 4), np.float64)
    if name == "mae":
        # |d| has a kink at 0: keep every difference well away from it.
        a = b + np.where(rng.random(a.shape) > 0.5, 1.0, -1.0) * rng.uniform(0.1, 1.0, a.shape)
    assert_gradient_matches_fd(lambda x: fn(x, b), a)


# ------------------------------------------------------------------ stability
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_extreme_logits(simd, dtype):
    for logits, label, expected in [([[1e4, 0.0]], 0, 0.0), ([[1e4, 0.0]], 1, 1e4),
                                    ([[-1e4, 1e4]], 0, 2e4), ([[-1e4, 1e4]], 1, 0.0)]:
        z = np.array(logits, dtype)
        loss, grad = losses.softmax_cross_entropy(z, np.array([label]))
        assert np.isfinite(loss) and np.all(np.isfinite(grad))
        assert loss == pytest.approx(expected)
        onehot = np.eye(2)[label]
        winner = np.eye(2)[int(np.argmax(logits[0]))]
        assert np.allclose(grad[0], winner - onehot)
        loss, grad = losses.softmax_cross_entropy(z, np.array([label]), label_smoothing=0.5,
                                                  class_weight=np.array([1.0, 3.0], dtype))
        assert np.isfinite(loss) and np.all(np.isfinite(grad))
        loss, grad = losses.softmax_cross_entropy(z, np.array([[0.5, 0.5]], dtype))
        # Half the mass sits on the losing class, which costs the whole gap between the two.
        assert loss == pytest.approx(0.5 * abs(logits[0][0] - logits[0][1]))
        assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_extreme_logits(simd, dtype):
    x = np.array([[1e4, -1e4, 0.0, 90.0, -90.0]], dtype)
    t = np.array([[0.0, 1.0, 0.5, 1.0, 0.0]], dtype)
    loss, grad = losses.binary_cross_entropy_with_logits(x, t)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx((1e4 + 1e4 + np.log(2) + 2 * np.exp(-90.0)) / 5)
    assert np.allclose(grad, np.array([[1.0, -1.0, 0.0, 0.0, 0.0]]) / 5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_untargeted_minus_infinity(simd, dtype):
    # A class that can never be chosen: its mass is 0, so it must not make the loss 0 * inf.
    z = np.array([[0.0, -np.inf, 1.0]], dtype)
    loss, grad = losses.softmax_cross_entropy(z, np.array([2]))
    assert loss == pytest.approx(np.log1p(np.exp(-1.0)))
    assert np.all(np.isfinite(grad)) and grad[0, 1] == 0.0


# ------------------------------------------------------------------ threads
def run_at(threads, fn, *args, **kwargs):
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        return fn(*args, **kwargs)
    finally:
        fastnn.set_num_threads(before)


def test_results_do_not_depend_on_thread_count(rng):
    n, c = 3001, 517
    logits = (3 * rng.standard_normal((n, c))).astype(np.float32)
    labels = rng.integers(0, c, n)
    w = rng.uniform(0.1, 2.0, c).astype(np.float32)
    probs = probabilities(rng, (n, c), np.float32)
    target = rng.random((n, c)).astype(np.float32)
    calls = [
        (losses.softmax_cross_entropy, (logits, labels), dict(class_weight=w, label_smoothing=0.1)),
        (losses.softmax_cross_entropy, (logits, probs), dict(class_weight=w)),
        (losses.binary_cross_entropy_with_logits, (logits, target), {}),
        (losses.mse, (logits, target), {}),
        (losses.mae, (logits, target), {}),
    ]
    counts = sorted({1, 2, 3, max(fastnn._C.hardware_threads(), 1)})
    for fn, args, kwargs in calls:
        loss1, grad1 = run_at(1, fn, *args, **kwargs)
        for t in counts[1:]:
            loss_t, grad_t = run_at(t, fn, *args, **kwargs)
            assert loss_t == loss1, f"{fn.__name__}: loss differs at {t} threads"
            assert np.array_equal(grad_t, grad1), f"{fn.__name__}: gradient differs at {t} threads"


# ------------------------------------------------------------------ bad input
def test_cross_entropy_bad_labels():
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 4\), got 4"):
        losses.softmax_cross_entropy(z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 4\), got -1"):
        losses.softmax_cross_entropy(z, np.array([0, -1, 1], np.int8))
    with pytest.raises(ValueError, match="labels: expected class indices in"):
        losses.softmax_cross_entropy(z, np.array([0, 2**63 + 5, 1], np.uint64))
    with pytest.raises(ValueError, match=r"labels: expected class indices of shape \(3,\).*\(2,\)"):
        losses.softmax_cross_entropy(z, np.array([0, 1]))
    with pytest.raises(TypeError, match="labels: class indices must have an integer dtype, got float32"):
        losses.softmax_cross_entropy(z, np.array([0, 1, 2], np.float32))
    with pytest.raises(TypeError, match="labels: probability labels must have logits' dtype float32, got float64"):
        losses.softmax_cross_entropy(z, np.full((3, 4), 0.25))
    with pytest.raises(ValueError, match=r"labels: probability labels must have logits' shape \(3, 4\), got \(3, 5\)"):
        losses.softmax_cross_entropy(z, np.full((3, 5), 0.2, np.float32))
    with pytest.raises(TypeError, match="labels: expected integer class indices or float32 probabilities, got bool"):
        losses.softmax_cross_entropy(z, np.array([True, False, True]))
    with pytest.raises(TypeError, match="labels: expected a NumPy array, got object"):
        losses.softmax_cross_entropy(z, object())


def test_cross_entropy_bad_arguments():
    z = np.zeros((3, 4))
    y = np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"logits: expected at least one row, got shape \(0, 4\)"):
        losses.softmax_cross_entropy(np.zeros((0, 4)), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="logits: expected at least one class"):
        losses.softmax_cross_entropy(np.zeros((3, 0)), y)
    with pytest.raises(ValueError, match="logits: expected a 2-D array, got shape"):
        losses.softmax_cross_entropy(np.zeros(4), y)
    with pytest.raises(TypeError, match="logits: expected float32 or float64, got int64"):
        losses.softmax_cross_entropy(np.zeros((3, 4), np.int64), y)
    for bad in [float("nan"), float("inf"), -float("inf")]:
        with pytest.raises(ValueError, match="label_smoothing: expected a finite number"):
            losses.softmax_cross_entropy(z, y, label_smoothing=bad)
    for bad in [-0.1, 1.5]:
        with pytest.raises(ValueError, match=r"label_smoothing: expected a number in \[0, 1\], got"):
            losses.softmax_cross_entropy(z, y, label_smoothing=bad)
    with pytest.raises(TypeError, match="label_smoothing: expected a real number, got str"):
        losses.softmax_cross_entropy(z, y, label_smoothing="0.1")
    with pytest.raises(ValueError, match=r"class_weight: expected shape \(4,\).*got \(3,\)"):
        losses.softmax_cross_entropy(z, y, class_weight=np.ones(3))
    with pytest.raises(TypeError, match="class_weight: dtype float32 does not match logits's float64"):
        losses.softmax_cross_entropy(z, y, class_weight=np.ones(4, np.float32))
    with pytest.raises(ValueError, match="class_weight: expected finite weights"):
        losses.softmax_cross_entropy(z, y, class_weight=np.array([1.0, np.nan, 1.0, 1.0]))
    with pytest.raises(ValueError, match="class_weight: the weights of the labelled classes sum to zero"):
        losses.softmax_cross_entropy(z, y, class_weight=np.array([0.0, 0.0, 0.0, 1.0]))


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_bad_input(name):
    fn = ELEMENTWISE[name][0]
    first, second = {"bce": ("logits", "targets"), "mse": ("pred", "target"),
                     "mae": ("pred", "target")}[name]
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=rf"{second}: expected shape \(2, 3\) to match {first}, got \(3, 2\)"):
        fn(a, np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match=f"{second}: dtype float64 does not match {first}'s float32"):
        fn(a, np.zeros((2, 3)))
    with pytest.raises(TypeError, match=f"{first}: expected float32 or float64, got int32"):
        fn(np.zeros((2, 3), np.int32), a)
    with pytest.raises(ValueError, match=f"{first}: expected at least one element"):
        fn(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))


def test_binding_rejects_what_python_would_not_pass():
    # The last line of defence: no call into _C may read out of bounds or crash.
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match="labels"):
        fastnn._C.softmax_cross_entropy(z, np.array([0, 7, 1]), None, 0.0)
    with pytest.raises(ValueError, match="labels"):
        fastnn._C.softmax_cross_entropy(z, np.array([0, 1]), None, 0.0)
    with pytest.raises(TypeError, match="labels"):
        fastnn._C.softmax_cross_entropy(z, np.array([0, 1, 2], np.int32), None, 0.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        fastnn._C.softmax_cross_entropy(np.zeros((3, 8))[:, ::2], np.array([0, 1, 2]), None, 0.0)
    with pytest.raises(ValueError, match="class_weight"):
        fastnn._C.softmax_cross_entropy(z, np.array([0, 1, 2]), np.ones(5), 0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        fastnn._C.softmax_cross_entropy(z, np.array([0, 1, 2]), None, 2.0)
    with pytest.raises(ValueError, match="at least one row"):
        fastnn._C.softmax_cross_entropy(np.zeros((0, 4)), np.zeros(0, np.int64), None, 0.0)
    with pytest.raises(ValueError, match="target"):
        fastnn._C.mse(np.zeros(3), np.zeros(4))
    with pytest.raises(TypeError, match="target"):
        fastnn._C.mae(np.zeros(3), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="at least one element"):
        fastnn._C.binary_cross_entropy_with_logits(np.zeros(0), np.zeros(0))


# ------------------------------------------------------------------ torch, when installed
def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits = rng.standard_normal((37, 11))
    labels = rng.integers(0, 11, 37)
    probs = probabilities(rng, (37, 11), np.float64)
    w = rng.uniform(0.1, 2.0, 11)
    target = rng.random((37, 11))

    def torch_ref(fn, x, *args, **kwargs):
        xt = torch.tensor(x, requires_grad=True)
        loss = fn(xt, *args, **kwargs)
        loss.backward()
        return loss.item(), xt.grad.numpy()

    for y in (labels, probs):
        for kwargs in (dict(), dict(label_smoothing=0.3), dict(class_weight=w, label_smoothing=0.2)):
            tk = dict(label_smoothing=kwargs.get("label_smoothing", 0.0))
            if "class_weight" in kwargs:
                tk["weight"] = torch.tensor(w)
            check(losses.softmax_cross_entropy(logits, y, **kwargs),
                  torch_ref(F.cross_entropy, logits, torch.tensor(y), **tk), np.float64, logits)
    tt = torch.tensor(target)
    check(losses.binary_cross_entropy_with_logits(logits, target),
          torch_ref(F.binary_cross_entropy_with_logits, logits, tt), np.float64, logits)
    check(losses.mse(logits, target), torch_ref(F.mse_loss, logits, tt), np.float64, logits)
    check(losses.mae(logits, target), torch_ref(F.l1_loss, logits, tt), np.float64, logits)
