"""The GEMM on a B packed once in column panels (cpu/gemm_packed.h), which the CPU engine runs
predict and evaluate on: against the float64 oracle on every SIMD path at 1 and 2 threads, and
bit for bit against the plain GEMM (ops.linear), whose K blocking it must share: a row predicted
alone must equal that row of a batch prediction.

Sizes: ones, odd, around the panel widths (32/16/8 float columns on avx512/avx2/scalar, the big kernel's
sliver, and the one-vector panels 16/8/4 of few-column layers), the row kernels (M = 1, short M, MR = 12/6/4,
and the short kernel taking the rows past the last whole big-kernel sliver: M = 16, 30, 32), the K block (256), A packed (rows 2 KiB apart) or read in place (otherwise), and a wide layer's batch-1 GEMV (the 784 x 2048 of the issue's wide network)."""

import numpy as np
import pytest

import fastnn
from fastnn import _C, ops

import oracle
from check import check_op

# (M, N, K)
SHAPES = [
    (1, 1, 1), (1, 10, 128), (2, 3, 1), (1, 7, 3), (5, 1, 9),
    (1, 4, 3), (1, 5, 3), (3, 8, 5), (2, 9, 7), (1, 16, 5), (1, 17, 5), (2, 31, 7), (1, 33, 9),
    (3, 63, 31), (4, 64, 257), (5, 65, 255), (1, 129, 300),
    (12, 32, 16), (13, 33, 17), (7, 8, 9), (6, 100, 513),
    (49, 130, 70), (145, 63, 31), (32, 300, 260), (16, 64, 300), (30, 48, 260),
    (1, 2048, 784),
    # Rows a multiple of 2 KiB apart: A packed (read in place otherwise), across K blocks.
    (13, 40, 512), (30, 33, 1024),
]
ACTIVATIONS = ["none", "relu", "gelu"]


def _inputs(rng, mnk, dtype):
    m, n, k = mnk
    return (rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype),
            rng.standard_normal(n).astype(dtype))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gemm_packed_matches_oracle(simd, threads, activation, rng):
    act = None if activation == "none" else activation

    def run(a, b, bias, out):
        _C.gemm_packed(a, b, out, bias, activation)

    check_op(run, lambda a, b, bias: oracle.linear(a, b, bias, act), SHAPES, np.float32,
             inputs=lambda mnk, dt: _inputs(rng, mnk, dt), outputs=lambda mnk: [mnk[:2]],
             kind="gemm", scale=lambda a, b, bias: [oracle.linear(np.abs(a), np.abs(b), np.abs(bias))],
             what=f"gemm_packed {activation}")


def test_gemm_packed_alpha_beta(simd, rng):
    for m, n, k in [(1, 70, 300), (20, 33, 40)]:
        a, b, _ = _inputs(rng, (m, n, k), np.float32)
        c = rng.standard_normal((m, n)).astype(np.float32)
        out = c.copy()
        _C.gemm_packed(a, b, out, alpha=-0.7, beta=1.3)
        ref = oracle.matmul(a, b, alpha=-0.7, beta=1.3, c=c)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gemm_packed_gives_the_plain_gemms_bits(simd, threads, activation, rng):
    for mnk in SHAPES:
        a, b, bias = _inputs(rng, mnk, np.float32)
        out = np.full(mnk[:2], np.nan, np.float32)
        _C.gemm_packed(a, b, out, bias, activation)
        np.testing.assert_array_equal(out, ops.linear(a, b, bias, None if activation == "none"
                                                      else activation), err_msg=str(mnk))


def test_gemm_packed_rejects_bad_arguments():
    a = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match="b: expected a C-contiguous float32"):
        _C.gemm_packed(a, np.ones((3, 4)), np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="do not fit"):
        _C.gemm_packed(a, np.ones((4, 4), np.float32), np.ones((2, 4), np.float32))
