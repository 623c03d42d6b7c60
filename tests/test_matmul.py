"""ops.matmul and ops.linear against the float64 oracle, on every SIMD path, at 1 and 2 threads.

Sizes straddle the micro-kernel tiles (MR = 12/6/4 rows, NR = 32/16/8 float columns on
avx512/avx2/scalar; half the columns for float64; the M == 1 and short-M kernels), the K block
(128 to 256), the M block (48 to 144) and the N block (256 to 2048), and the switch between
packed and in-place B (M <= 4 MR)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import ops

import oracle
from check import check_op, norm_checker

DTYPES = [np.float32, np.float64]
# Relative error in norm; the scale (e.g. |a| @ |b|) is the size of the sums, for results small
# enough to come from cancellation (a 1x1 product of 221 terms).
assert_close = norm_checker("gemm")


def operand(rng, shape, dtype, trans):
    """A random matrix of logical shape `shape`, stored transposed when `trans`."""
    rows, cols = shape
    x = rng.standard_normal((cols, rows) if trans else (rows, cols)).astype(dtype)
    return x


# (M, N, K): ones, tile edges, odd sizes; the last rows cross the M/N/K cache blocks.
SHAPES = [
    (1, 1, 1), (1, 7, 3), (5, 1, 9), (2, 3, 1),
    (1, 513, 300), (3, 70, 260), (4, 129, 31),  # the one-row and short-M kernels
    (6, 16, 8), (7, 17, 5), (11, 31, 13), (12, 32, 16), (13, 33, 17),
    (4, 8, 129), (25, 65, 255), (23, 47, 257),
    (145, 63, 31), (37, 513, 19), (143, 100, 300),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_matmul_matches_oracle(simd, threads, dtype, trans_a, trans_b, rng):
    check_op(lambda a, b, out: ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b, out=out),
             lambda a, b: oracle.matmul(a, b, trans_a, trans_b), SHAPES, dtype,
             inputs=lambda mnk, dt: (operand(rng, (mnk[0], mnk[2]), dt, trans_a),
                                     operand(rng, (mnk[2], mnk[1]), dt, trans_b)),
             outputs=lambda mnk: [mnk[:2]], kind="gemm",
             scale=lambda a, b: [oracle.matmul(np.abs(a), np.abs(b), trans_a, trans_b)],
             what=f"matmul trans_a={trans_a} trans_b={trans_b}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_large_blocks(simd, threads, dtype, rng):
    # Several K, M and N cache blocks, with remainders in each.
    m, n, k = 301, 529, 389
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    assert_close(ops.matmul(a, b), oracle.matmul(a, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_beta(simd, dtype, rng):
    for m, n, k in [(1, 1, 1), (13, 33, 300), (50, 70, 20)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        c = rng.standard_normal((m, n)).astype(dtype)
        ref = oracle.matmul(a, b, alpha=-0.7, beta=1.3, c=c)
        got = ops.matmul(a, b, alpha=-0.7, beta=1.3, out=c.copy())
        assert_close(got, ref, dtype)
        # beta == 0 ignores what out held, NaN included.
        got = ops.matmul(a, b, alpha=2.5, out=np.full((m, n), np.nan, dtype))
        assert_close(got, oracle.matmul(a, b, alpha=2.5), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_and_negative_strides(simd, dtype, rng):
    base_a = rng.standard_normal((90, 70)).astype(dtype)
    base_b = rng.standard_normal((120, 80)).astype(dtype)
    a = base_a[::3, ::-2]            # (30, 35), negative column stride
    b = base_b[1:71:2, ::-1][:, :40]  # (35, 40)
    out_base = np.full((60, 120), np.nan, dtype)
    out = out_base[::2, ::3]         # (30, 40), strided output
    ops.matmul(a, b, out=out)
    assert_close(out, oracle.matmul(a, b), dtype)
    # Elements of out_base outside the view are untouched.
    mask = np.ones_like(out_base, bool)
    mask[::2, ::3] = False
    assert np.all(np.isnan(out_base[mask]))
    # Fortran-ordered operands and output.
    fa, fb = np.asfortranarray(a), np.asfortranarray(b)
    fout = np.asfortranarray(np.full((30, 40), np.nan, dtype))
    ops.matmul(fa, fb, out=fout)
    assert_close(fout, oracle.matmul(a, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_sizes(dtype):
    for m, n, k in [(0, 3, 4), (3, 0, 4), (0, 0, 0)]:
        got = ops.matmul(np.ones((m, k), dtype), np.ones((k, n), dtype))
        assert got.shape == (m, n)
    # K == 0: the product is empty, so out = beta * out.
    got = ops.matmul(np.ones((3, 0), dtype), np.ones((0, 4), dtype), out=np.full((3, 4), np.nan, dtype))
    assert np.array_equal(got, np.zeros((3, 4)))
    c = np.arange(12, dtype=dtype).reshape(3, 4)
    got = ops.matmul(np.ones((3, 0), dtype), np.ones((0, 4), dtype), beta=2.0, out=c.copy())
    assert np.array_equal(got, 2 * c)
    got = ops.linear(np.ones((3, 0), dtype), np.ones((0, 4), dtype), np.arange(4, dtype=dtype) - 1,
                     activation="relu")
    assert np.array_equal(got, np.tile([0, 0, 1, 2], (3, 1)))


def test_results_do_not_depend_on_thread_count(simd, rng):
    a = rng.standard_normal((157, 601)).astype(np.float32)
    b = rng.standard_normal((601, 203)).astype(np.float32)
    fastnn.set_num_threads(1)
    one = ops.linear(a, b, b[0], activation="gelu")
    fastnn.set_num_threads(2)
    try:
        two = ops.linear(a, b, b[0], activation="gelu")
    finally:
        fastnn.set_num_threads(fastnn._C.hardware_threads())
    assert np.array_equal(one, two)


def test_output_aliasing_input(rng):
    a = rng.standard_normal((40, 40)).astype(np.float32)
    b = rng.standard_normal((40, 40)).astype(np.float32)
    ref = oracle.matmul(a, b)
    ops.matmul(a, b, out=a)
    assert_close(a, ref, np.float32)


ACTS = [None, "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTS)
def test_linear_matches_oracle(simd, dtype, activation, rng):
    for n, fin, fout in [(1, 1, 1), (7, 13, 33), (32, 64, 128), (129, 300, 70)]:
        x = rng.standard_normal((n, fin)).astype(dtype)
        w = (rng.standard_normal((fin, fout)) / np.sqrt(fin)).astype(dtype)
        b = rng.standard_normal(fout).astype(dtype)
        got = ops.linear(x, w, b, activation=activation, negative_slope=0.2)
        ref = oracle.linear(x, w, b, activation=activation, negative_slope=0.2)
        if activation == "step":
            # The step flips where x @ w + b rounds across 0; compare away from it.
            z = oracle.linear(x, w, b)
            keep = np.abs(z) > 1e-4
            assert np.array_equal(got[keep], ref[keep])
        else:
            assert_close(got, ref, dtype)
        assert_close(ops.linear(x, w, activation=activation, negative_slope=0.2) if activation != "step"
                     else oracle.linear(x, w, activation="step"),
                     oracle.linear(x, w, activation=activation, negative_slope=0.2), dtype)


def test_linear_relu_propagates_nan():
    x = np.array([[np.nan, 1.0]], np.float32)
    w = np.ones((2, 3), np.float32)
    assert np.all(np.isnan(ops.linear(x, w, activation="relu")))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [7, 64])  # edge tiles only; full register tiles and an edge
def test_linear_step_propagates_nan(simd, dtype, n, rng):
    # NaN in gives NaN out for every activation (core/ops/activation.h), step included: the GEMM
    # epilogue used to map a NaN pre-activation to 0 where ops.activation gave NaN.
    x = rng.standard_normal((13, 5)).astype(dtype)
    x[3, 2] = np.nan
    w = rng.standard_normal((5, n)).astype(dtype)
    y, z = ops.linear(x, w, activation="step", return_preactivation=True)
    assert np.all(np.isnan(y[3]))
    assert np.array_equal(np.delete(y, 3, axis=0), (np.delete(z, 3, axis=0) > 0).astype(dtype))


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 70), k=st.integers(1, 300),
       trans_a=st.booleans(), trans_b=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_matmul_random_shapes(m, n, k, trans_a, trans_b, seed):
    rng = np.random.default_rng(seed)
    a = operand(rng, (m, k), np.float32, trans_a)
    b = operand(rng, (k, n), np.float32, trans_b)
    assert_close(ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b),
                 oracle.matmul(a, b, trans_a, trans_b), np.float32, "random shape",
                 oracle.matmul(np.abs(a), np.abs(b), trans_a, trans_b))


# ------------------------------------------------------------------ bad input
def test_bad_dtypes():
    f32 = np.ones((2, 2), np.float32)
    with pytest.raises(TypeError, match="a: expected float32 or float64, got int64"):
        ops.matmul(np.ones((2, 2), np.int64), f32)
    with pytest.raises(TypeError, match="b: dtype float64 does not match a's float32"):
        ops.matmul(f32, np.ones((2, 2)))
    with pytest.raises(TypeError, match="out: expected dtype float32"):
        ops.matmul(f32, f32, out=np.ones((2, 2)))
    with pytest.raises(TypeError, match="b: dtype float64"):
        ops.linear(f32, f32, np.ones(2))
    with pytest.raises(TypeError, match="a: expected a NumPy array"):
        ops.matmul("nope", f32)


def test_bad_shapes_and_values():
    f32 = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"inner dimensions differ.*\(2, 3\).*\(2, 3\)"):
        ops.matmul(f32, f32)
    with pytest.raises(ValueError, match="a: expected a 2-D array"):
        ops.matmul(np.ones(3, np.float32), f32)
    with pytest.raises(ValueError, match=r"out: expected shape \(2, 2\)"):
        ops.matmul(f32, f32, trans_b=True, out=np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="beta"):
        ops.matmul(f32, f32, trans_b=True, beta=1.0)
    with pytest.raises(ValueError, match="alpha: expected a finite number"):
        ops.matmul(f32, f32, trans_b=True, alpha=float("nan"))
    with pytest.raises(ValueError, match="x has 3 features"):
        ops.linear(f32, f32)
    with pytest.raises(ValueError, match=r"b: expected shape \(3,\)"):
        ops.linear(f32, np.ones((3, 3), np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="activation: expected None or one of"):
        ops.linear(f32, np.ones((3, 3), np.float32), activation="swish")
    ro = np.ones((2, 2), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.matmul(f32, f32, trans_b=True, out=ro)


def test_non_native_byte_order(rng):
    a = rng.standard_normal((5, 6)).astype(">f4")
    b = rng.standard_normal((6, 7)).astype("<f4")
    assert_close(ops.matmul(a, b), oracle.matmul(a, b), np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_gelu_negative_tail(simd, dtype):
    # gelu far below 0 is tiny: 1 + erf(x / sqrt 2) would cancel there (gelu(-5.5) came out 22%
    # off on the scalar path); every path must keep the relative accuracy.
    z = np.array([[-3.0, -5.5, -7.0, -9.0, 2.0]], dtype)
    got = ops.linear(np.ones((1, 1), dtype), z, activation="gelu")
    ref = oracle.linear(np.ones((1, 1)), z.astype(np.float64), activation="gelu")
    np.testing.assert_allclose(got, ref, rtol=2e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "gelu", "elu", "softplus", "relu"])
def test_linear_row_equals_that_row_of_the_batch(simd, activation, rng):
    # One row runs on another micro-kernel (another tile width) than a batch, so a column can
    # fall in a full tile in one and an edge tile in the other: the activation must give the
    # same bits in both (it once went through the vector math in full tiles only).
    for n in (1, 17, 33, 65, 300):
        x = rng.standard_normal((57, 7)).astype(np.float32)
        w = rng.standard_normal((7, n)).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        batch = ops.linear(x, w, b, activation)
        for i in (0, 13, 56):
            np.testing.assert_array_equal(ops.linear(x[i:i + 1], w, b, activation)[0], batch[i],
                                          err_msg=f"{n} columns, row {i}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "sigmoid", None])
def test_narrow_products_read_rows_of_a_in_place(simd, threads, dtype, activation, rng):
    # N up to one column sliver with row-major A: the kernel reads A where it lies. Rows cross
    # the M tiles and blocks (with a short last tile), K crosses the K block (partial sums read
    # back), and N = 8/16/32 is a full sliver on some path (B then read in place too for M <= 4 MR).
    for m, n, k in [(145, 10, 300), (37, 16, 300), (13, 8, 257), (49, 32, 129), (200, 1, 40)]:
        x = rng.standard_normal((m, k)).astype(dtype)
        w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)
        b = rng.standard_normal(n).astype(dtype)
        assert_close(ops.matmul(x, w), oracle.matmul(x, w, False, False), dtype)
        assert_close(ops.linear(x, w, b, activation=activation),
                     oracle.linear(x, w, b, activation=activation), dtype)
        xs = rng.standard_normal((m, k + 5)).astype(dtype)[:, 2:k + 2]  # a row stride > k
        assert_close(ops.matmul(xs, w), oracle.matmul(np.ascontiguousarray(xs), w, False, False),
                     dtype)


@pytest.mark.parametrize("mnk", [(64, 32, 16), (61, 70, 47), (256, 96, 300)])
def test_transposed_operands_give_the_same_bits(simd, threads, mnk, rng):
    """A and B stored transposed are packed through the register transposes (gemm_transpose.h)
    into the same slivers as the plain layout, so the products agree bit for bit; sizes cover
    whole 16-wide k tiles, partial ones, and slivers cut by the edges."""
    m, n, k = mnk
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    plain = ops.matmul(a, b)
    at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
    np.testing.assert_array_equal(ops.matmul(at, b, trans_a=True), plain)
    np.testing.assert_array_equal(ops.matmul(a, bt, trans_b=True), plain)
    np.testing.assert_array_equal(ops.matmul(at, bt, trans_a=True, trans_b=True), plain)
