"""fastnn.ops.batch_norm / batch_norm_grad against the float64 oracle (training and inference
forward, running-statistics update, backward), by central finite differences, across thread
counts (bit-identical), against torch.nn.BatchNorm1d when torch is installed, and on bad input.

Column sums cut features into blocks of 1024 and rows into chunks (at most 64); they go
parallel from 2**16 elements. (1000, 1100) spans two feature blocks, (100000, 3) many row
chunks, (3, 5000) several blocks of few rows; the small shapes run inline."""

import numpy as np
import pytest

import fastnn
from fastnn import ops

import oracle
from check import assert_max_close, finite_differences, tol

DTYPES = [np.float32, np.float64]
TOL = {d: tol("batchnorm", d) for d in DTYPES}
SHAPES = [(2, 1), (3, 7), (5, 8), (9, 9), (17, 15), (16, 16), (33, 17), (31, 32), (7, 33),
          (1000, 1100), (100000, 3), (3, 5000)]


def close(got, ref, dtype, what):
    assert_max_close(got, ref, tol("batchnorm", dtype), what)


def make(rng, n, f, dtype, affine=True):
    # Per-feature offsets and scales, so that wrong column indexing cannot pass by symmetry.
    x = (rng.uniform(-3, 3, f) + rng.uniform(0.1, 4, f) * rng.standard_normal((n, f)))
    gamma = rng.uniform(0.5, 2, f).astype(dtype) if affine else None
    beta = rng.standard_normal(f).astype(dtype) if affine else None
    return x.astype(dtype), gamma, beta


# ------------------------------------------------------------------ against the oracle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
def test_training_forward_and_running_update(threads, dtype, affine, rng):
    for n, f in SHAPES:
        x, gamma, beta = make(rng, n, f, dtype, affine)
        rm = rng.standard_normal(f).astype(dtype)
        rv = rng.uniform(0.5, 2, f).astype(dtype)
        momentum, eps = 0.1 + 0.8 * rng.random(), 1e-5
        ref = oracle.batch_norm_train(x, gamma, beta, rm, rv, momentum, eps)
        y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, training=True,
                                         momentum=momentum, eps=eps)
        assert y.dtype == mean.dtype == invstd.dtype == dtype
        assert y.shape == (n, f) and mean.shape == invstd.shape == (f,)
        close(y, ref[0], dtype, f"y {n}x{f}")
        close(mean, ref[1], dtype, "save_mean")
        np.testing.assert_allclose(invstd, ref[2], rtol=TOL[dtype])
        close(rm, ref[3], dtype, "running_mean")
        close(rv, ref[4], dtype, "running_var (unbiased)")


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_without_running_stats(dtype, rng):
    x, gamma, beta = make(rng, 33, 17, dtype)
    y, mean, invstd = ops.batch_norm(x, gamma, beta, None, None)
    ref = oracle.batch_norm_train(x, gamma, beta, None, None, 0.1, 1e-5)
    close(y, ref[0], dtype, "y")
    np.testing.assert_allclose(invstd, ref[2], rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_inference_forward(threads, dtype, rng):
    for n, f in SHAPES + [(1, 5), (0, 4)]:
        x, gamma, beta = make(rng, n, f, dtype)
        rm = rng.standard_normal(f).astype(dtype)
        rv = rng.uniform(0.1, 3, f).astype(dtype)
        rm0, rv0 = rm.copy(), rv.copy()
        y, a, b = ops.batch_norm(x, gamma, beta, rm, rv, training=False, eps=1e-3)
        assert a is None and b is None and y.dtype == dtype and y.shape == (n, f)
        close(y, oracle.batch_norm_infer(x, gamma, beta, rm, rv, 1e-3), dtype, f"y {n}x{f}")
        assert np.array_equal(rm, rm0) and np.array_equal(rv, rv0), "inference changed running stats"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
def test_backward(threads, dtype, affine, rng):
    for n, f in SHAPES:
        x, gamma, beta = make(rng, n, f, dtype, affine)
        _, mean, invstd = ops.batch_norm(x, gamma, beta, None, None)
        dy = rng.standard_normal((n, f)).astype(dtype)
        dx, dgamma, dbeta = ops.batch_norm_grad(dy, x, gamma, mean, invstd)
        assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype
        ref = oracle.batch_norm_grad(dy, x, gamma, mean, invstd)
        # dx = gamma invstd (dy - ...) cancels when N is small: measure the error against the
        # size of the terms, gamma invstd dy, not of the result.
        g = np.ones(f) if gamma is None else gamma.astype(np.float64)
        scale = max(np.max(np.abs(ref[0])), np.max(np.abs(g * invstd * dy)))
        # The saved statistics are rounded to float32 (torch keeps them in float32 too), and the
        # oracle's chain rule, unlike the fused form, does not assume that they are the exact
        # mean and std of x: up to |mean| / std * 2**-24 apart, amplified when N is small.
        assert_max_close(dx, ref[0], tol("batchnorm_dx", dtype), f"dx {n}x{f}", scale)
        sums_scale = np.sqrt(n)  # sums of n O(1) terms
        for got, want, name in ((dgamma, ref[1], "dgamma"), (dbeta, ref[2], "dbeta")):
            assert_max_close(got, want, TOL[dtype], f"{name} {n}x{f}",
                             max(np.max(np.abs(want)), sums_scale))


def test_backward_sums_vanish_for_constant_dy(rng):
    # sum over rows of dx is 0 for any dy (the mean is subtracted), and dx = 0 for constant dy.
    x, gamma, _ = make(rng, 64, 9, np.float64)
    _, mean, invstd = ops.batch_norm(x, gamma, None, None, None)
    dx, _, _ = ops.batch_norm_grad(rng.standard_normal((64, 9)), x, gamma, mean, invstd)
    assert np.max(np.abs(dx.sum(axis=0))) < 1e-12
    dx, _, dbeta = ops.batch_norm_grad(np.full((64, 9), 2.5), x, gamma, mean, invstd)
    assert np.max(np.abs(dx)) < 1e-12 and np.allclose(dbeta, 160.0)


# ------------------------------------------------------------------ finite differences
@pytest.mark.parametrize("shape", [(2, 1), (5, 3), (9, 4)])
def test_finite_differences(shape, rng):
    n, f = shape
    x, gamma, beta = make(rng, n, f, np.float64)
    w = rng.standard_normal((n, f))  # L = sum(w * y), so dy = w

    def loss(x_, g_, b_):
        return float(np.sum(w * ops.batch_norm(x_, g_, b_, None, None)[0]))

    _, mean, invstd = ops.batch_norm(x, gamma, beta, None, None)
    dx, dgamma, dbeta = ops.batch_norm_grad(w, x, gamma, mean, invstd)
    fds = finite_differences(loss, (x, gamma, beta))
    for grad, fd, name in zip((dx, dgamma, dbeta), fds, ("dx", "dgamma", "dbeta")):
        assert_max_close(grad, fd, 1e-6, f"{name}: analytic {grad} vs finite differences {fd}")


# ------------------------------------------------------------------ numerics
def test_large_offset_is_stable():
    # |mean| / std = 1e7: E[x^2] - E[x]^2 would lose every digit; two-pass keeps them.
    x = 1e5 + 1e-2 * np.random.default_rng(0).standard_normal((4096, 5))
    y, mean, invstd = ops.batch_norm(x, None, None, None, None, eps=0.0)
    ref = oracle.batch_norm_train(x, None, None, None, None, 0.1, 0.0)
    np.testing.assert_allclose(y.std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(invstd, ref[2], rtol=1e-12)
    np.testing.assert_allclose(y, ref[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_column(dtype):
    x = np.full((6, 3), 4.0, dtype)
    beta = np.array([1, 2, 3], dtype)
    y, mean, invstd = ops.batch_norm(x, np.ones(3, dtype), beta, None, None, eps=1e-5)
    assert np.all(np.isfinite(y)) and np.array_equal(y, np.tile(beta, (6, 1)))
    np.testing.assert_allclose(invstd, 1 / np.sqrt(1e-5), rtol=1e-6)


# ------------------------------------------------------------------ threads
@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_count_does_not_change_bits(dtype, rng):
    before = fastnn.get_num_threads()
    for n, f in [(1000, 1100), (100000, 3), (3, 5000), (300, 200)]:
        x, gamma, beta = make(rng, n, f, dtype)
        dy = rng.standard_normal((n, f)).astype(dtype)
        results = []
        for t in (1, 2, 3):
            fastnn.set_num_threads(t)
            rm, rv = np.zeros(f, dtype), np.ones(f, dtype)
            y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv)
            results.append((y, mean, invstd, rm, rv) + ops.batch_norm_grad(dy, x, gamma, mean, invstd))
        fastnn.set_num_threads(before)
        for other in results[1:]:
            for a, b in zip(results[0], other):
                assert np.array_equal(a, b), f"{n}x{f}: results depend on the thread count"


# ------------------------------------------------------------------ torch, when installed
def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    for n, f in [(2, 3), (33, 17), (256, 40)]:
        x = rng.standard_normal((n, f)) * 2 + 1
        bn = torch.nn.BatchNorm1d(f, momentum=0.3, eps=1e-4).double()
        with torch.no_grad():
            bn.weight.copy_(torch.from_numpy(rng.uniform(0.5, 2, f)))
            bn.bias.copy_(torch.from_numpy(rng.standard_normal(f)))
        gamma = bn.weight.detach().numpy().copy()
        beta = bn.bias.detach().numpy().copy()
        rm, rv = np.zeros(f), np.ones(f)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = bn(xt)
        dy = rng.standard_normal((n, f))
        yt.backward(torch.from_numpy(dy))
        y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, momentum=0.3, eps=1e-4)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(rm, bn.running_mean.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(rv, bn.running_var.numpy(), rtol=1e-10, atol=1e-12)
        dx, dgamma, dbeta = ops.batch_norm_grad(dy, x, gamma, mean, invstd)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(dgamma, bn.weight.grad.numpy(), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(dbeta, bn.bias.grad.numpy(), rtol=1e-9, atol=1e-10)
        bn.eval()
        with torch.no_grad():
            ye = bn(torch.from_numpy(x)).numpy()
        y_inf, _, _ = ops.batch_norm(x, gamma, beta, rm, rv, training=False, eps=1e-4)
        np.testing.assert_allclose(y_inf, ye, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ bad input
def test_bad_input():
    x = np.ones((4, 3), np.float32)
    g = np.ones(3, np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="at least 2 rows"):
        ops.batch_norm(np.ones((1, 3), np.float32), g, g, rm, rv)
    with pytest.raises(ValueError, match="2-D"):
        ops.batch_norm(np.ones(3, np.float32), g, g, rm, rv)
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.batch_norm(np.ones((4, 3), np.int32), None, None, None, None)
    with pytest.raises(TypeError, match="gamma: expected dtype float32"):
        ops.batch_norm(x, np.ones(3), None, rm, rv)
    with pytest.raises(ValueError, match=r"beta: expected shape \(3,\)"):
        ops.batch_norm(x, g, np.ones(4, np.float32), rm, rv)
    with pytest.raises(TypeError, match="running_var: expected dtype float32"):
        ops.batch_norm(x, g, g, rm, np.ones(3))
    with pytest.raises(TypeError, match="running_mean: expected a NumPy array"):
        ops.batch_norm(x, g, g, [0.0, 0.0, 0.0], rv)
    ro = rv.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="running_var: expected a writable"):
        ops.batch_norm(x, g, g, rm, ro)
    with pytest.raises(ValueError, match="running_mean: required"):
        ops.batch_norm(x, g, g, None, rv, training=False)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="momentum: expected a finite number"):
            ops.batch_norm(x, g, g, rm, rv, momentum=bad)
        with pytest.raises(ValueError, match="eps: expected a finite number"):
            ops.batch_norm(x, g, g, rm, rv, eps=bad)
    with pytest.raises(ValueError, match=r"momentum: expected a number in \[0, 1\]"):
        ops.batch_norm(x, g, g, rm, rv, momentum=1.5)
    with pytest.raises(ValueError, match="eps: expected a number >= 0"):
        ops.batch_norm(x, g, g, rm, rv, eps=-1.0)
    assert np.array_equal(rm, np.zeros(3)) and np.array_equal(rv, np.ones(3)), \
        "a rejected call changed the running stats"
    _, mean, invstd = ops.batch_norm(x, g, g, None, None)
    with pytest.raises(ValueError, match=r"dy: expected shape \(4, 3\)"):
        ops.batch_norm_grad(np.ones((4, 2), np.float32), x, g, mean, invstd)
    with pytest.raises(TypeError, match="dy: expected dtype float32"):
        ops.batch_norm_grad(np.ones((4, 3)), x, g, mean, invstd)
    with pytest.raises(ValueError, match="save_invstd: required"):
        ops.batch_norm_grad(x, x, g, mean, None)
    with pytest.raises(ValueError, match="at least one row"):
        ops.batch_norm_grad(x[:0], x[:0], g, mean, invstd)


def test_strided_input_is_read_correctly(rng):
    x = rng.standard_normal((40, 12))[::2, ::3]  # not contiguous
    y, _, _ = ops.batch_norm(x, None, None, None, None)
    ref = oracle.batch_norm_train(x, None, None, None, None, 0.1, 1e-5)[0]
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
