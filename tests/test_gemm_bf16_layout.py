"""The index math of the BF16 tensor-core GEMM (csrc/cuda/gemm_bf16.cu), replayed in NumPy on the
CPU: the per-thread loaders (masks, partial float4s at the edges), the k-contiguous bf16 stores,
ldmatrix.x4's row addresses, the PTX m16n8k16 fragment layouts of A, B and the accumulators, and
the epilogue's element mapping. Every block of a small problem is run through them and the result
must equal op(A) @ op(B) on bf16-rounded operands exactly; every shared-memory element of a stage
must be written once and every C element once.

This checks the kernel's bookkeeping, which is what a reader has to trust without a GPU; it does
not check the PTX semantics it assumes (those come from the PTX ISA's fragment tables, quoted in
the kernel's header), nor the CUDA code itself: keep it in step with gemm_bf16.cu when that
changes. The kernel's own tests are the GPU tests in test_matmul_gpu.py."""

import numpy as np
import pytest

import oracle

BM = BN = 128
BK = 32
LDK = BK + 8
THREADS = 256
WARP_M, WARP_N, WARPS_N = 64, 32, 4


def _load4_masked(mem, off, row_ok, n):
    v = np.zeros(4, np.float32)
    if row_ok:
        for e in range(min(max(n, 0), 4)):
            v[e] = mem[off + e]
    return v


def _load_stage(kc, mem, ld, r0, rows, k0, K, tid):
    """StageLoader<KC>: the set-up once per thread, then load(k0)."""
    v = []
    if kc:
        r, k = r0 + tid // 8, (tid % 8) * 4
        base, k_left = r * ld + k, K - k
        for s in range(4):
            v.append(_load4_masked(mem, base + s * 32 * ld + k0, r + 32 * s < rows, k_left - k0))
    else:
        k, r = 2 * (tid % 16), r0 + (tid // 16) * 4
        base, k_left = k * ld + r, K - k
        n_left = [rows - r, rows - r - 64]
        q = base + k0 * ld
        for s in range(2):
            v.append(_load4_masked(mem, q + 64 * s, k0 < k_left, n_left[s]))
            v.append(_load4_masked(mem, q + ld + 64 * s, k0 + 1 < k_left, n_left[s]))
    return v


def _store_stage(kc, tile, v, tid, written):
    """store_stage<KC>: bf16 rounding, k-contiguous rows (as 64-bit or (k, k+1) 32-bit stores)."""
    if kc:
        for s in range(4):
            idx = tid + s * THREADS
            r, k = idx // 8, (idx % 8) * 4
            tile[r, k:k + 4] = oracle.round_bf16(v[s])
            written[r, k:k + 4] += 1
    else:
        for s in range(2):
            idx = tid + s * THREADS
            k, r = 2 * (idx % 16), (idx // 16) * 4
            even, odd = v[2 * s], v[2 * s + 1]
            for j in range(4):
                tile[r + j, k] = oracle.round_bf16(even[j])
                tile[r + j, k + 1] = oracle.round_bf16(odd[j])
                written[r + j, k:k + 2] += 1


def _ldmatrix_x4(tile, addr):
    """ldmatrix.m8n8.x4.b16: lanes 8q..8q+7 give the rows of matrix q (8 elements from each
    address); register q of lane l is row l // 4, elements 2 (l % 4) and 2 (l % 4) + 1."""
    regs = np.zeros((32, 4, 2), np.float32)
    for q in range(4):
        mat = np.array([tile[r, c:c + 8] for r, c in addr[8 * q:8 * q + 8]])
        for lane in range(32):
            regs[lane, q] = mat[lane // 4, 2 * (lane % 4):2 * (lane % 4) + 2]
    return regs


def _mma_m16n8k16(acc, a, b0, b1):
    """The PTX fragment tables for .bf16 A (row), B (col) and the f32 accumulators."""
    A = np.zeros((16, 16))
    B = np.zeros((16, 8))
    for lane in range(32):
        g, t = lane // 4, lane % 4
        A[g, 2 * t:2 * t + 2] = a[lane, 0]
        A[g + 8, 2 * t:2 * t + 2] = a[lane, 1]
        A[g, 2 * t + 8:2 * t + 10] = a[lane, 2]
        A[g + 8, 2 * t + 8:2 * t + 10] = a[lane, 3]
        B[2 * t:2 * t + 2, g] = b0[lane]
        B[2 * t + 8:2 * t + 10, g] = b1[lane]
    D = A @ B
    for lane in range(32):
        g, t = lane // 4, lane % 4
        acc[lane] += [D[g, 2 * t], D[g, 2 * t + 1], D[g + 8, 2 * t], D[g + 8, 2 * t + 1]]


def _stored(op, kc, pad=4):
    """op (rows, K) stored k-contiguous (rows, K + pad) or rows-contiguous (K, rows + pad), with
    NaN in the padding: a load past an edge would show."""
    rows, K = op.shape
    if kc:
        mem = np.full((rows, K + pad), np.nan, np.float32)
        mem[:, :K] = op
    else:
        mem = np.full((K, rows + pad), np.nan, np.float32)
        mem[:, :rows] = op.T
    return mem.ravel(), mem.shape[1]


def _simulate(opa, opb, a_kc, b_kc):
    M, K = opa.shape
    N = opb.shape[1]
    mem_a, lda = _stored(opa, a_kc)
    mem_b, ldb = _stored(opb.T, b_kc)  # B as (N, K): its "rows" are n
    C = np.full((M, N), np.nan)
    for m0 in range(0, M, BM):
        for n0 in range(0, N, BN):
            acc = np.zeros((8, 4, 4, 32, 4))  # warp, m16 tile, n8 tile, lane, element
            for k0 in range(0, K, BK):
                As = np.full((BM, LDK), np.nan, np.float32)
                Bs = np.full((BN, LDK), np.nan, np.float32)
                wa = np.zeros((BM, LDK), int)
                wb = np.zeros((BN, LDK), int)
                for tid in range(THREADS):
                    _store_stage(a_kc, As, _load_stage(a_kc, mem_a, lda, m0, M, k0, K, tid), tid, wa)
                    _store_stage(b_kc, Bs, _load_stage(b_kc, mem_b, ldb, n0, N, k0, K, tid), tid, wb)
                assert (wa[:, :BK] == 1).all() and (wa[:, BK:] == 0).all()
                assert (wb[:, :BK] == 1).all() and (wb[:, BK:] == 0).all()
                for w in range(8):
                    wm, wn = (w // WARPS_N) * WARP_M, (w % WARPS_N) * WARP_N
                    for ks in (0, 16):
                        af = [_ldmatrix_x4(As, [(wm + (ln & 15) + i * 16, ks + (ln >> 4) * 8)
                                                for ln in range(32)]) for i in range(4)]
                        bf = []
                        for jj in range(2):
                            r = _ldmatrix_x4(Bs, [(wn + (ln & 7) + ((ln >> 4) << 3) + jj * 16,
                                                   ks + ((ln >> 3) & 1) * 8) for ln in range(32)])
                            bf += [(r[:, 0], r[:, 1]), (r[:, 2], r[:, 3])]
                        for i in range(4):
                            for j in range(4):
                                _mma_m16n8k16(acc[w, i, j], af[i], *bf[j])
            for w in range(8):
                wm, wn = (w // WARPS_N) * WARP_M, (w % WARPS_N) * WARP_N
                for lane in range(32):
                    g, t = lane // 4, lane % 4
                    for i in range(4):
                        for h in range(2):
                            m = m0 + wm + i * 16 + g + h * 8
                            if m >= M:
                                continue
                            for j in range(4):
                                n = n0 + wn + j * 8 + t * 2
                                for e in range(2):
                                    if n + e < N:
                                        assert np.isnan(C[m, n + e]), "C element written twice"
                                        C[m, n + e] = acc[w, i, j, lane, h * 2 + e]
    return C


@pytest.mark.parametrize("M,N,K,a_kc,b_kc", [
    (130, 133, 37, True, True),    # 2x2 blocks, edge tiles in M and N, a K tail
    (130, 133, 37, True, False),
    (130, 133, 37, False, True),
    (130, 133, 37, False, False),
    (5, 9, 70, True, False),       # one partial block, three stages
])
def test_bf16_kernel_index_math(M, N, K, a_kc, b_kc):
    rng = np.random.default_rng(0)
    opa = rng.standard_normal((M, K)).astype(np.float32)
    opb = rng.standard_normal((K, N)).astype(np.float32)
    got = _simulate(opa, opb, a_kc, b_kc)
    assert not np.isnan(got).any(), "C element never written"
    want = oracle.round_bf16(opa).astype(np.float64) @ oracle.round_bf16(opb).astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
