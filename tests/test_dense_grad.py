"""ops.linear_grad (the fused dense backward) against the float64 oracle and finite differences.

dz = dy * act'(z) is formed while the two GEMMs pack it and db is summed in the same sweep, so the
shapes straddle the packing blocks: the batch is the K dimension of dw = x^T dz (K blocks of 128 to
256), out_features the K dimension of dx = dz w^T and the N dimension of dw (NR = 8 to 32, NC up to
2048), in_features the M dimension of dw (MR = 4 to 12, the one-row and short-M kernels)."""

import numpy as np
import pytest

import fastnn
from fastnn import ops

import oracle
from check import finite_differences, norm_checker, poisoned

# float64: gelu' cancels near its root (z = -0.75), one reason for more than 1e-12.
DTYPES = [np.float32, np.float64]
ACTIVATIONS = [None, "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step"]

# (batch, in_features, out_features)
SHAPES = [
    (1, 1, 1), (1, 7, 33), (5, 1, 3), (3, 13, 1), (12, 32, 16), (13, 33, 17), (7, 5, 65),
    (257, 12, 40), (31, 49, 300), (130, 100, 70), (3, 5, 2049),
]


# Relative error in norm; the scale (default: ref) is the size of the computation, e.g. the same
# sums over absolute values: a sum whose terms cancel can only be as exact as its terms.
assert_close = norm_checker("dense_grad")


def deriv_scale(z, activation, dtype, param):
    """|act'(z)| as the size of what a float32 kernel can get right: the kernels form 1 - t^2 and
    s (1 - s) from a float32 t = tanh(z) or s = sigmoid(z) (as torch's tanh_backward and
    sigmoid_backward do), and where t or s is near 1 (|z| > ~3) that difference carries an
    absolute error of a few 1e-7 -- a couple of float32 ulps of 1 --, not a relative one. The
    floor 0.025 is that error over the float32 tolerances."""
    deriv = np.abs(oracle._act_deriv(z, activation, param))
    if dtype == np.float32 and activation in ("tanh", "sigmoid"):
        deriv = deriv + 0.025
    return deriv


def magnitudes(dy, x, w, deriv):
    """(|dz| @ |w|^T, |x|^T @ |dz|, sum |dz|): the scale of each gradient's sums."""
    dz = np.abs(np.asarray(dy, np.float64) * deriv)
    x = np.abs(np.asarray(x, np.float64))
    w = np.abs(np.asarray(w, np.float64))
    return dz @ w.T, x.T @ dz, dz.sum(axis=0)


def layer(rng, n, fin, fout, dtype, activation):
    x = rng.standard_normal((n, fin)).astype(dtype)
    w = (rng.standard_normal((fin, fout)) / np.sqrt(fin)).astype(dtype)
    b = rng.standard_normal(fout).astype(dtype)
    y, z = ops.linear(x, w, b, activation=activation, negative_slope=0.2,
                      return_preactivation=True)
    dy = rng.standard_normal((n, fout)).astype(dtype)
    return x, w, b, y, z, dy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_linear_grad_matches_oracle(simd, threads, dtype, activation, rng):
    for n, fin, fout in SHAPES:
        x, w, b, y, z, dy = layer(rng, n, fin, fout, dtype, activation)
        ref_dx, ref_dw, ref_db = oracle.linear_grad(dy, x, w, z, activation, negative_slope=0.2)
        dx, dw, db = poisoned((n, fin), dtype), poisoned((fin, fout), dtype), poisoned(fout, dtype)
        got = ops.linear_grad(dy, x, w, activation=activation, z=z, negative_slope=0.2,
                              dx=dx, dw=dw, db=db)
        assert got[0] is dx and got[1] is dw and got[2] is db
        deriv = deriv_scale(z, activation, dtype, 0.2)
        scales = magnitudes(dy, x, w, deriv)
        for g, r, sc, name in zip(got, (ref_dx, ref_dw, ref_db), scales, ("dx", "dw", "db")):
            assert_close(g, r, dtype, f"{name} {n}x{fin}x{fout}", sc)
        if activation in ops.GRAD_FROM_OUTPUT:
            # From the output, act' is a function of the rounded y (1 - y^2 for tanh loses
            # digits where |y| is near 1), so the reference takes it from the same y.
            gy = ops.linear_grad(dy, x, w, activation=activation, y=y, negative_slope=0.2)
            refs = oracle.linear_grad_from_output(dy, x, w, y, activation, negative_slope=0.2)
            scales = magnitudes(dy, x, w, oracle.act_deriv_from_output(y, activation, 0.2))
            for g, r, sc, name in zip(gy, refs, scales, ("dx", "dw", "db")):
                assert_close(g, r, dtype, f"{name} from y, {n}x{fin}x{fout}", sc)


def test_linear_forward_returns_preactivation(rng):
    for n, fin, fout in [(1, 1, 1), (13, 33, 17), (130, 300, 70)]:
        x = rng.standard_normal((n, fin))
        w = rng.standard_normal((fin, fout))
        b = rng.standard_normal(fout)
        y, z = ops.linear(x, w, b, activation="gelu", return_preactivation=True)
        assert_close(z, oracle.linear(x, w, b), np.float64, "z")
        assert_close(y, oracle.linear(x, w, b, activation="gelu"), np.float64, "y")


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "gelu", "elu", "softplus", None])
def test_linear_grad_finite_differences(activation, rng):
    n, fin, fout = 4, 5, 3
    x = rng.standard_normal((n, fin))
    w = rng.standard_normal((fin, fout))
    b = rng.standard_normal(fout)
    g = rng.standard_normal((n, fout))  # L = sum(g * act(x @ w + b)), so dL/dy = g

    def loss(x_, w_, b_):
        return float(np.sum(g * oracle.linear(x_, w_, b_, activation=activation)))

    _, z = ops.linear(x, w, b, activation=activation, return_preactivation=True)
    dx, dw, db = ops.linear_grad(g, x, w, activation=activation, z=z)
    for grad, num in zip((dx, dw, db), finite_differences(loss, (x, w, b))):
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_grad_thread_invariant(dtype, rng):
    x, w, b, y, z, dy = layer(rng, 300, 70, 130, dtype, "relu")
    before = fastnn.get_num_threads()
    try:
        results = []
        for t in (1, 2):
            fastnn.set_num_threads(t)
            results.append(ops.linear_grad(dy, x, w, activation="relu", y=y))
    finally:
        fastnn.set_num_threads(before)
    for a, b_ in zip(*results):
        assert np.array_equal(a, b_)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_grad_accumulates(dtype, rng):
    x, w, b, y, z, dy = layer(rng, 37, 20, 50, dtype, "tanh")
    dw0 = rng.standard_normal((20, 50)).astype(dtype)
    db0 = rng.standard_normal(50).astype(dtype)
    dw, db = dw0.copy(), db0.copy()
    dx, dw_out, db_out = ops.linear_grad(dy, x, w, activation="tanh", y=y, dw=dw, db=db,
                                         accumulate=True, need_dx=False)
    assert dx is None and dw_out is dw and db_out is db
    _, ref_dw, ref_db = oracle.linear_grad(dy, x, w, z, "tanh")
    assert_close(dw, dw0 + ref_dw, dtype, "dw")
    assert_close(db, db0 + ref_db, dtype, "db")


def test_linear_grad_empty_sizes():
    # No rows: zero gradients for w and b, an empty dx. No inputs: db still needs the sums.
    dx, dw, db = ops.linear_grad(np.ones((0, 3)), np.ones((0, 4)), np.ones((4, 3)),
                                 activation="relu", y=np.ones((0, 3)))
    assert dx.shape == (0, 4) and np.array_equal(dw, np.zeros((4, 3)))
    assert np.array_equal(db, np.zeros(3))
    dy = np.arange(6.0).reshape(2, 3)
    dx, dw, db = ops.linear_grad(dy, np.ones((2, 0)), np.ones((0, 3)))
    assert dx.shape == (2, 0) and dw.shape == (0, 3)
    assert np.array_equal(db, dy.sum(0))


def test_linear_grad_non_contiguous_inputs(rng):
    x = rng.standard_normal((40, 30))[:, ::2]
    w = np.asfortranarray(rng.standard_normal((15, 9)))
    z = rng.standard_normal((9, 40)).T
    dy = rng.standard_normal((40, 9))
    got = ops.linear_grad(dy, x, w, activation="softplus", z=z)
    for g, r in zip(got, oracle.linear_grad(dy, x, w, z, "softplus")):
        assert_close(g, r, np.float64, "non-contiguous")


def test_linear_grad_bad_input():
    f = np.ones((4, 3), np.float32)
    w = np.ones((3, 2), np.float32)
    dy = np.ones((4, 2), np.float32)
    with pytest.raises(ValueError, match="x has 3 features"):
        ops.linear_grad(dy, f, np.ones((5, 2), np.float32))
    with pytest.raises(ValueError, match="dy: expected shape"):
        ops.linear_grad(np.ones((4, 3), np.float32), f, w)
    with pytest.raises(TypeError, match="dtype"):
        ops.linear_grad(dy.astype(np.float64), f, w)
    with pytest.raises(ValueError, match="needs z="):
        ops.linear_grad(dy, f, w, activation="relu")
    with pytest.raises(ValueError, match="gelu needs z"):
        ops.linear_grad(dy, f, w, activation="gelu", y=dy)
    with pytest.raises(ValueError, match="z: expected shape"):
        ops.linear_grad(dy, f, w, activation="relu", z=np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="accumulate=True needs"):
        ops.linear_grad(dy, f, w, accumulate=True)
    with pytest.raises(ValueError, match="dw: expected shape"):
        ops.linear_grad(dy, f, w, dw=np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="activation"):
        ops.linear_grad(dy, f, w, activation="swish", z=dy)
    with pytest.raises(ValueError, match="dw: must not overlap"):
        ops.linear_grad(dy, f, w, dw=w)
