"""The CUDA batch norm (training forward with the running update, inference, backward) against
the float64 oracle and the CPU kernels, through fastnn.ops on CUDA tensors. Column statistics use
32-feature tiles and up to 1024 row chunks of >= 64 rows."""

import numpy as np
import pytest

import oracle
from check import assert_max_close
from fastnn import ops
from gpu import dev, host, needs_gpu

pytestmark = needs_gpu

DTYPES = [np.float32, np.float64]
BN_SHAPES = [(2, 1), (3, 7), (9, 9), (17, 15), (31, 32), (7, 33), (65, 40), (1000, 1100),
             (100000, 3), (3, 5000), (4097, 70)]
# The forward on the GPU: float64 sums in another order than the oracle's, over up to 1e5 rows.
BN_TOL = {np.float32: 2e-6, np.float64: 1e-11}
# dx is a difference of O(1) terms: its error is relative to them, not to dx.
BN_GRAD_TOL = {np.float32: 2e-5, np.float64: 1e-10}


def make_bn(rng, n, f, dtype, affine=True):
    x = rng.uniform(-3, 3, f) + rng.uniform(0.1, 4, f) * rng.standard_normal((n, f))
    gamma = rng.uniform(0.5, 2, f).astype(dtype) if affine else None
    beta = rng.standard_normal(f).astype(dtype) if affine else None
    return x.astype(dtype), gamma, beta


def gpu_bn_train(x, gamma, beta, rm, rv, momentum=0.1, eps=1e-5):
    """(y, save_mean, save_invstd, running_mean, running_var) on the host."""
    drm, drv = dev(rm), dev(rv)
    y, sm, si = ops.batch_norm(dev(x), dev(gamma), dev(beta), drm, drv, training=True,
                               momentum=momentum, eps=eps)
    return (host(y), host(sm), host(si), None if drm is None else host(drm),
            None if drv is None else host(drv))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_training_forward(dtype, affine, rng):
    for n, f in BN_SHAPES:
        x, gamma, beta = make_bn(rng, n, f, dtype, affine)
        rm = rng.standard_normal(f).astype(dtype)
        rv = rng.uniform(0.5, 2, f).astype(dtype)
        y, sm, si, nrm, nrv = gpu_bn_train(x, gamma, beta, rm, rv, 0.1, 1e-5)
        ref = oracle.batch_norm_train(x, gamma, beta, rm, rv, 0.1, 1e-5)
        assert y.dtype == sm.dtype == si.dtype == dtype
        assert_max_close(y, ref[0], BN_TOL[dtype], f"y {n}x{f}")
        assert_max_close(sm, ref[1], BN_TOL[dtype], f"save_mean {n}x{f}")
        np.testing.assert_allclose(si, ref[2], rtol=BN_TOL[dtype], err_msg=f"save_invstd {n}x{f}")
        assert_max_close(nrm, ref[3], BN_TOL[dtype], f"running_mean {n}x{f}")
        assert_max_close(nrv, ref[4], BN_TOL[dtype], f"running_var {n}x{f}")
        # Deterministic: the same bits on a second run.
        again = gpu_bn_train(x, gamma, beta, rm, rv, 0.1, 1e-5)
        assert all(np.array_equal(a, b) for a, b in zip((y, sm, si, nrm, nrv), again))


def test_batch_norm_without_running_stats_and_large_offset(rng):
    x = 1e4 + rng.standard_normal((5000, 6))
    y, sm, si, _, _ = gpu_bn_train(x, None, None, None, None)
    ref = oracle.batch_norm_train(x, None, None, None, None, 0.1, 1e-5)
    np.testing.assert_allclose(si, ref[2], rtol=1e-10)
    np.testing.assert_allclose(y, ref[0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_constant_column(dtype):
    x = np.full((6, 3), 2.5, dtype)
    beta = np.array([1.0, -2.0, 0.5], dtype)
    y, _, si, _, _ = gpu_bn_train(x, np.ones(3, dtype), beta, None, None)
    assert np.all(np.isfinite(y)) and np.array_equal(y, np.tile(beta, (6, 1)))
    np.testing.assert_allclose(si, 1 / np.sqrt(1e-5), rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_inference(dtype, rng):
    for n, f in BN_SHAPES + [(0, 5)]:
        x, gamma, beta = make_bn(rng, n, f, dtype)
        rm = rng.standard_normal(f).astype(dtype)
        rv = rng.uniform(0.5, 2, f).astype(dtype)
        drm, drv = dev(rm), dev(rv)
        y = ops.batch_norm(dev(x), dev(gamma), dev(beta), drm, drv, training=False, eps=1e-5)[0]
        assert_max_close(host(y), oracle.batch_norm_infer(x, gamma, beta, rm, rv, 1e-5),
                         BN_TOL[dtype], f"{n}x{f}")
        assert np.array_equal(host(drm), rm) and np.array_equal(host(drv), rv)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_backward(dtype, affine, rng):
    tol = BN_GRAD_TOL[dtype]
    for n, f in BN_SHAPES:
        x, gamma, _ = make_bn(rng, n, f, dtype, affine)
        dy = rng.standard_normal((n, f)).astype(dtype)
        _, mean, invstd, _, _ = oracle.batch_norm_train(x, None, None, None, None, 0.1, 1e-5)
        mean, invstd = mean.astype(dtype), invstd.astype(dtype)
        ddx, dgam, dbet = (host(t) for t in ops.batch_norm_grad(dev(dy), dev(x), dev(gamma),
                                                                dev(mean), dev(invstd)))
        ref_dx, ref_dg, ref_db = oracle.batch_norm_grad(dy, x, gamma, mean, invstd)
        assert_max_close(ddx, ref_dx, tol, f"dx {n}x{f}")
        assert_max_close(dgam, ref_dg, tol * max(1.0, np.sqrt(n)), f"dgamma {n}x{f}")
        assert_max_close(dbet, ref_db, tol * max(1.0, np.sqrt(n)), f"dbeta {n}x{f}")
        # The CPU kernel on the same inputs.
        cdx, _, _ = ops.batch_norm_grad(dy, x, gamma, mean, invstd)
        assert_max_close(ddx, cdx.astype(np.float64), tol, f"dx vs CPU {n}x{f}")


def test_bad_arguments():
    x = dev(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="at least 2 rows"):
        ops.batch_norm(x, None, None, None, None, training=True)
    with pytest.raises(ValueError, match="running statistics|running_mean"):
        ops.batch_norm(dev(np.ones((4, 3))), None, None, None, None, training=False)
