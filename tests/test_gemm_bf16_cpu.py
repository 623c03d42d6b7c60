"""The CPU bf16 GEMM (fastnn._C.gemm_bf16: operands rounded to bfloat16, round to nearest even,
FP32 accumulation) against the float64 oracle on the same rounded operands (oracle.round_bf16,
as the GPU bf16 tests round), on the vdpbf16ps kernel where the CPU has AVX512_BF16 and on the
forced fallback (FP32 FMA on the rounded operands) under each SIMD path.

What is left after the rounding is accumulation error only, so the shape sweep holds the kernel
to the FP32 GEMM's own bound ("gemm" in norm against |a| @ |b|); the epilogue variants use the
GPU bf16 GEMM's element-wise bound (check.gemm_bf16_bound). Sizes straddle the 12-row (vdpbf16ps)
and 4-row (fallback) tiles, the 32-column panels, and the K pairs (odd K pads one zero)."""

import numpy as np
import pytest

import fastnn
from fastnn import _C

import oracle
from check import check_op, gemm_bf16_bound

NATIVE = _C.bf16_native_supported()
PATHS = ([("native", "avx512")] if NATIVE else []) + [
    ("fallback", s) for s in ("avx512", "avx2", "scalar") if _C.simd_supported(s)]


@pytest.fixture(params=PATHS, ids=[f"{k}-{s}" for k, s in PATHS])
def path(request):
    """The bf16 kernel under test, restored to the default afterwards."""
    kind, simd = request.param
    fastnn.set_simd(simd)
    _C.set_bf16_fallback(kind == "fallback")
    try:
        want = "vdpbf16ps" if kind == "native" else "fallback"
        assert want in _C.bf16_kernel()
        yield request.param
    finally:
        _C.set_bf16_fallback(False)
        fastnn.set_simd(None)


def rounded(x):
    return oracle.round_bf16(x).astype(np.float64)


def gemm_bf16(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, bias=None,
              activation="none", param=0.0, z=None, prepacked=False):
    _C.gemm_bf16(a, b, out, trans_a, trans_b, alpha, beta, bias, activation, param, z=z,
                 prepacked=prepacked)


# (M, N, K): ones, odd sizes, K = 1, 2, 3 (the pair edge), tile edges (11/12/13 and 3/4/5 rows,
# 31/32/33 and 63/64/65 columns), then large enough to run on the thread pool.
SHAPES = [
    (1, 1, 1), (1, 1, 2), (1, 7, 3), (2, 3, 1), (5, 1, 9), (3, 5, 4),
    (11, 31, 13), (12, 32, 16), (13, 33, 17), (4, 64, 2), (5, 65, 3), (24, 63, 65),
    (1, 2048, 784), (25, 97, 255), (97, 130, 257), (300, 257, 515),
]


@pytest.mark.parametrize("prepacked", [False, True], ids=["packed-per-call", "prepacked"])
def test_shapes_against_oracle(path, prepacked, rng):
    def inputs(shape, dtype):
        M, N, K = shape
        return (rng.standard_normal((M, K)).astype(dtype),
                rng.standard_normal((K, N)).astype(dtype))

    check_op(lambda a, b, out: gemm_bf16(a, b, out, prepacked=prepacked),
             lambda a, b: rounded(a) @ rounded(b), SHAPES, np.float32, inputs=inputs,
             kind="gemm", outputs=lambda s: [(s[0], s[1])],
             scale=lambda a, b: [np.abs(rounded(a)) @ np.abs(rounded(b))], what="gemm_bf16")


# Transposed and row-strided operands (views with a leading dimension wider than their rows),
# as the engine's weight-gradient (X^T) and input-gradient (W^T) products take them.
@pytest.mark.parametrize("M,N,K", [(1, 33, 7), (13, 31, 17), (26, 70, 129), (130, 40, 64)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("prepacked", [False, True])
def test_transposes_strides_epilogue(path, M, N, K, trans_a, trans_b, prepacked, rng):
    def stored(rows, cols, trans):
        shape = (cols, rows) if trans else (rows, cols)
        full = rng.standard_normal((shape[0], shape[1] + 3)).astype(np.float32)
        return full[:, :shape[1]]  # row-strided view

    a, b = stored(M, K, trans_a), stored(K, N, trans_b)
    bias = rng.standard_normal(N).astype(np.float32)
    c0 = rng.standard_normal((M, N)).astype(np.float32)
    for alpha, beta, activation in [(1.0, 0.0, "relu"), (0.5, 0.25, "tanh"), (-2.0, 1.0, "none")]:
        out = c0.copy() if beta else np.full((M, N), np.nan, np.float32)
        z = np.full((M, N), np.nan, np.float32)
        gemm_bf16(a, b, out, trans_a, trans_b, alpha, beta, bias, activation, z=z,
                  prepacked=prepacked)
        want, pre, S = oracle.gemm_bf16(a, b, c0, trans_a, trans_b, alpha, beta,
                                        bias, activation, 0.0)
        bound = gemm_bf16_bound(S, want, K)
        assert np.isfinite(out).all() and np.isfinite(z).all(), "unwritten output"
        assert (np.abs(out - want) <= bound).all(), f"out, alpha={alpha} beta={beta} {activation}"
        assert (np.abs(z - pre) <= gemm_bf16_bound(S, pre, K)).all(), "z"


def test_large_on_threads(path, threads, rng):
    M, N, K = 260, 700, 1031
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((N, K)).astype(np.float32)
    out = np.full((M, N), np.nan, np.float32)
    gemm_bf16(a, b, out, trans_b=True)
    want, _, S = oracle.gemm_bf16(a, b, None, False, True, 1.0, 0.0, None, "none", 0.0)
    assert (np.abs(out - want) <= gemm_bf16_bound(S, want, K)).all()


def test_rounds_to_nearest_even(path):
    # 1 + 2^-8 lies halfway between bf16 neighbours 1 and 1 + 2^-7 (even: 1); 1 + 3 * 2^-8
    # halfway between 1 + 2^-7 and 1 + 2^-6 (even: 1 + 2^-6). Truncation would give 1 and
    # 1 + 2^-7; the largest float32 overflows to Inf; a NaN stays NaN in its row only.
    a = np.array([[1 + 2**-8], [1 + 3 * 2**-8], [1 + 2**-8 + 2**-20], [3.4028235e38],
                  [np.nan]], np.float32)
    b = np.ones((1, 3), np.float32)
    out = np.full((5, 3), 7.0, np.float32)
    gemm_bf16(a, b, out)
    np.testing.assert_array_equal(out[:4, 0], [1.0, 1 + 2**-6, 1 + 2**-7, np.inf])
    assert np.isnan(out[4]).all()
    np.testing.assert_array_equal(out[:4], np.repeat(out[:4, :1], 3, axis=1))


def test_no_product_follows_blas(path, rng):
    # K == 0: act(beta C + bias), A and B unread; alpha == 0 likewise.
    c0 = rng.standard_normal((3, 4)).astype(np.float32)
    out = c0.copy()
    bias = np.arange(4, dtype=np.float32)
    gemm_bf16(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32), out, beta=2.0,
              bias=bias)
    np.testing.assert_allclose(out, 2 * c0 + bias, rtol=1e-6)


def test_kernel_name_and_forced_fallback():
    name = _C.bf16_kernel()
    assert name == fastnn.show_config()["bf16_gemm"]
    if NATIVE and fastnn.get_simd() == "avx512":
        assert name == "avx512_bf16 (vdpbf16ps)"
    _C.set_bf16_fallback(True)
    try:
        assert _C.bf16_kernel() == "fallback: fp32 FMA on bf16-rounded operands"
    finally:
        _C.set_bf16_fallback(False)


# The engine's bf16 dense backward: dZ = dY * act'(gate) in FP32 (the derivative is not
# rounded), then dW = bf16(X)^T bf16(dZ), dX = bf16(dZ) bf16(W)^T; db the FP32 column sums of dZ.
@pytest.mark.parametrize("M,K,N", [(1, 3, 5), (13, 17, 33), (64, 129, 70), (256, 300, 31)])
@pytest.mark.parametrize("activation,from_output", [("none", False), ("relu", True),
                                                    ("tanh", False)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_dense_backward_bf16(path, M, K, N, activation, from_output, accumulate, rng):
    x = rng.standard_normal((M, K)).astype(np.float32)
    w = rng.standard_normal((K, N)).astype(np.float32)
    dy = rng.standard_normal((M, N)).astype(np.float32)
    z = rng.standard_normal((M, N)).astype(np.float32)
    gate = oracle.activation(activation, z).astype(np.float32) if from_output else z
    dw0 = rng.standard_normal((K, N)).astype(np.float32)
    db0 = rng.standard_normal(N).astype(np.float32)
    dw = dw0.copy() if accumulate else np.full((K, N), np.nan, np.float32)
    db = db0.copy() if accumulate else np.full(N, np.nan, np.float32)
    dx = np.full((M, K), np.nan, np.float32)
    _C.dense_backward_bf16(dy, x, w, gate, activation, 0.0, from_output, dw, db, dx, accumulate)

    if activation == "none":
        deriv = np.ones((M, N))
    elif from_output:
        deriv = oracle.act_deriv_from_output(gate, activation)
    else:
        deriv = oracle.activation_derivative(activation, z.astype(np.float64))
    dz = dy.astype(np.float64) * deriv
    dz32 = dz.astype(np.float32)  # the kernel forms dZ in float32, then rounds it to bf16
    want_dx = rounded(dz32) @ rounded(w).T
    want_dw = rounded(x).T @ rounded(dz32) + (dw0 if accumulate else 0)
    want_db = dz.sum(axis=0) + (db0 if accumulate else 0)
    S_dx = np.abs(rounded(dz32)) @ np.abs(rounded(w)).T
    S_dw = np.abs(rounded(x)).T @ np.abs(rounded(dz32)) + (np.abs(dw0) if accumulate else 0)
    # dZ's own float32 rounding (and act' in float32) can move a bf16 rounding of dZ by one
    # bf16 ulp: 2^-8 of the term, so that much of S on top of the accumulation bound.
    assert (np.abs(dx - want_dx) <= gemm_bf16_bound(S_dx, want_dx, N) + 2**-8 * S_dx).all()
    assert (np.abs(dw - want_dw) <= gemm_bf16_bound(S_dw, want_dw, M) + 2**-8 * S_dw).all()
    np.testing.assert_allclose(db, want_db, rtol=1e-5, atol=1e-5 * np.abs(dz).sum(axis=0).max())


@pytest.mark.parametrize("env,want", [({"FASTNN_BF16": "fallback"}, "fallback"),
                                      ({"FASTNN_SIMD": "scalar"}, "fallback"),
                                      ({}, "vdpbf16ps" if NATIVE else "fallback")])
def test_kernel_choice_from_environment(env, want):
    import os
    import subprocess
    import sys

    code = "import fastnn; print(fastnn.show_config()['bf16_gemm'])"
    full = {k: v for k, v in os.environ.items() if k not in ("FASTNN_BF16", "FASTNN_SIMD")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**full, **env}, check=True)
    assert want in out.stdout


@pytest.mark.parametrize("trans", [False, True])
def test_rounding_on_the_vector_packing_paths(path, trans, rng):
    # Rows long enough for the vector conversion loops (32 and 16 values at a time) and their
    # tails: one product per output against an identity, so the result is the rounded operand.
    n = 71
    ties = np.float32(1.0) + np.float32(2**-8) * rng.integers(0, 256, (n, n)).astype(np.float32)
    ties[3, 5] = np.nan
    ties[7, 9] = 3.4028235e38
    eye = np.eye(n, dtype=np.float32)
    want = oracle.round_bf16(ties)
    stored = ties.T.copy() if trans else ties
    for side in ("a", "b"):
        out = np.full((n, n), -1.0, np.float32)
        if side == "a":
            gemm_bf16(stored, eye, out, trans_a=trans)
            clean = np.ones((n, n), bool)
            clean[[3, 7], :] = False  # NaN * 0 and Inf * 0 spread along the row
        else:
            gemm_bf16(eye, stored, out, trans_b=trans)
            clean = np.ones((n, n), bool)
            clean[:, [5, 9]] = False  # ... or the column
        np.testing.assert_array_equal(out[clean], want[clean], err_msg=f"{side} packing")
        assert np.isnan(out[3, 5]) and out[7, 9] == np.inf, f"{side} packing"
