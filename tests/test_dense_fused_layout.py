"""The bookkeeping of the fused dense backward kernel (csrc/cuda/dense.cu), replayed in NumPy on
the CPU: the host's split-K choice and workspace layout (splits_for, fused_grid, split_layout,
split_workspace_bytes), the launch-order tile walk (group_tile), the per-thread float4 loaders
and shared-memory stores of both products, the warp tiling of the accumulators, the split-K
slices and partial-tile layout, db's column sums and the epilogue's element mapping. Every block
of small problems runs through them, in float64, for both tile sizes; the results must equal
X^T dZ, dZ W^T and the column sums of dZ, every staged shared element must be written once per
step, every output element once, and every workspace access must stay inside its piece.

It checks the index math a reader has to trust without a GPU, not the CUDA code itself (keep it
in step with dense.cu when that changes) nor the memory ordering of the split-K hand-off; the
kernel's own tests are the GPU tests in test_dense_grad_gpu.py."""

import numpy as np
import pytest

THREADS = 256
GROUP_M = 8
ALIGN = 256


def cdiv(a, b):
    return -(-a // b)


def round_up(b):
    return cdiv(b, ALIGN) * ALIGN


# ---------------------------------------------------------------- host side (dense.cu)
def slices(total, min_mn, tiles128):
    length = max(128, min_mn)
    s = cdiv(total, length)
    s = min(s, 512 // max(tiles128, 1))
    return max(1, min(s, 16))


def splits_for(M, K, N):
    min_mn = min(M, N)
    return (slices(M, min_mn, cdiv(K, 128) * cdiv(N, 128)),
            slices(N, min_mn, cdiv(M, 128) * cdiv(K, 128)))


def fused_grid(M, K, N, T, has_db, has_dx, accumulate, sp):
    dw_tiles = not (M == 0 and accumulate)
    wn = cdiv(N, T) if dw_tiles else 0
    wm = max(cdiv(K, T), 1 if has_db else 0) if dw_tiles else 0
    dx = has_dx and M > 0 and K > 0
    xm, xn = (cdiv(M, T), cdiv(K, T)) if dx else (0, 0)
    sw = sp[0] if wm * wn else 1
    sx = sp[1] if xm * xn else 1
    dw_first = cdiv(M, sw) >= cdiv(N, sx)
    return dict(wm=wm, wn=wn, xm=xm, xn=xn, sw=sw, sx=sx, dw_first=dw_first)


def split_layout(g, T):
    """Byte offsets and sizes of (pw, px, pdb, counters); total 0 without slices."""
    if g["sw"] == 1 and g["sx"] == 1:
        return None, 0
    tt, ntw, ntx = T * T, g["wm"] * g["wn"], g["xm"] * g["xn"]
    bw = round_up((g["sw"] * ntw * tt if g["sw"] > 1 else 0) * 4)
    bx = round_up((g["sx"] * ntx * tt if g["sx"] > 1 else 0) * 4)
    bdb = round_up((g["sw"] * g["wn"] * T if g["sw"] > 1 else 0) * 8)
    bc = round_up((ntw + ntx) * 4)
    pieces = dict(pw=(0, bw), px=(bw, bx), pdb=(bw + bx, bdb), cw=(bw + bx + bdb, ntw * 4),
                  cx=(bw + bx + bdb + ntw * 4, ntx * 4))
    return pieces, bw + bx + bdb + bc


def split_workspace_bytes(M, K, N):
    sw, sx = splits_for(M, K, N)
    if sw == 1 and sx == 1:
        return 0
    mp, kp, np_ = cdiv(M, 128) * 128, cdiv(K, 128) * 128, cdiv(N, 128) * 128
    counters = max(cdiv(K, 64), 1) * cdiv(N, 64) + cdiv(M, 64) * cdiv(K, 64)
    return (round_up(sw * max(kp, 128) * np_ * 4) + round_up(sx * mp * kp * 4) +
            round_up(sw * np_ * 8) + round_up(counters * 4))


def group_tile(pid, tiles_m, tiles_n):
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    rows = min(tiles_m - first_m, GROUP_M)
    return first_m + (pid % per_group) % rows, (pid % per_group) // rows


# ---------------------------------------------------------------- device side (tile_product)
def load_tile4(mat, row, rows, col, cols):
    """(THREADS, 4) values of rows `row`, columns col .. col+3 (vectors over threads), zeros
    outside; also the in-range mask."""
    c = col[:, None] + np.arange(4)[None, :]
    ok = (row[:, None] < rows) & (c < cols)
    out = np.zeros((len(row), 4))
    if ok.any():
        r = np.broadcast_to(row[:, None], c.shape)
        out[ok] = mat[r[ok], c[ok]]
    return out


def run_block(prod, pid, tiles_m, tiles_n, splits, T, X, W, dZ, out, written, db_out, db_written,
              part, pdb, counters, has_db, bounds):
    S, BK, LDS = T // 64, 1024 // T, T + 4
    WM, WN = 32 * S, 16 * S
    dw = prod == "dw"
    M, K = X.shape
    N = W.shape[1]
    Mg, Ng, Kg = (K, N, M) if dw else (M, K, N)
    ntiles = tiles_m * tiles_n
    tile, sl = pid % ntiles, pid // ntiles
    tm, tn = group_tile(tile, tiles_m, tiles_n)
    assert 0 <= tm < tiles_m and 0 <= tn < tiles_n
    m0, n0 = tm * T, tn * T
    tid = np.arange(THREADS)
    warp, lane = tid // 32, tid % 32
    am = (warp // 4) * WM + (lane // 4) * 4
    bn = (warp % 4) * WN + (lane % 4) * 4
    r_mn, c_mn = tid // (T // 4), (tid % (T // 4)) * 4
    r_k, c_k = tid // (BK // 4), (tid % (BK // 4)) * 4

    # The accumulator element (ii, jj) of thread t is C[am + 32 (ii // 4) + ii % 4,
    # bn + 16 (jj // 4) + jj % 4] of the tile: each tile element exactly once.
    ii = np.arange(4 * S)
    rows_of = am[:, None] + 32 * (ii // 4)[None, :] + (ii % 4)[None, :]  # (THREADS, 4S)
    cols_of = bn[:, None] + 16 * (ii // 4)[None, :] + (ii % 4)[None, :]
    cover = np.zeros((T, T), int)
    np.add.at(cover, (rows_of[:, :, None], cols_of[:, None, :]), 1)
    assert (cover == 1).all()

    def stage(k0):
        As = np.full((BK, LDS), np.nan)
        Bs = np.full((BK, LDS), np.nan)
        wa = np.zeros((BK, LDS), int)
        wb = np.zeros((BK, LDS), int)
        if dw:
            a = load_tile4(X, k0 + r_mn, Kg, m0 + c_mn, Mg)
            b = load_tile4(dZ, k0 + r_mn, Kg, n0 + c_mn, Ng)
            for j in range(4):
                As[r_mn, c_mn + j] = a[:, j]
                Bs[r_mn, c_mn + j] = b[:, j]
                np.add.at(wa, (r_mn, c_mn + j), 1)
                np.add.at(wb, (r_mn, c_mn + j), 1)
        else:
            a = load_tile4(dZ, m0 + r_k, Mg, k0 + c_k, Kg)
            b = load_tile4(W, n0 + r_k, Ng, k0 + c_k, Kg)
            for j in range(4):
                As[c_k + j, r_k] = a[:, j]
                Bs[c_k + j, r_k] = b[:, j]
                np.add.at(wa, (c_k + j, r_k), 1)
                np.add.at(wb, (c_k + j, r_k), 1)
        # the T columns the threads read, every one staged once; the 4 pad columns never read
        assert (wa[:, :T] == 1).all() and (wb[:, :T] == 1).all()
        return As, Bs

    nk = cdiv(Kg, BK)
    slice_steps = (cdiv(Kg, splits) + 15) // 16 * (16 // BK)
    kt0 = min(nk, sl * slice_steps)
    kt1 = min(nk, kt0 + slice_steps)
    bounds.append((prod, tile, sl, kt0 * BK, min(kt1 * BK, Kg)))
    colsum = dw and has_db and tm == 0
    acc = np.zeros((T, T))
    cs = np.zeros(T)
    for kt in range(kt0, kt1):
        As, Bs = stage(kt * BK)
        if colsum:
            cs += Bs[:, :T].sum(axis=0)
        acc += As[:, :T].T @ Bs[:, :T]

    if splits > 1:
        # element r of thread t's partial at [r * THREADS + t]: the tile's T*T floats
        base = (tile * splits + sl) * T * T
        r = np.arange(16 * S * S)
        idx = base + r[:, None] * THREADS + tid[None, :]
        assert idx.max() < part.size, "partial tile outside the pw / px piece"
        flat = acc[rows_of[:, :, None], cols_of[:, None, :]].reshape(THREADS, -1)  # [t][r]
        part[idx] = flat.T
        if colsum:
            j = (tn * splits + sl) * T + tid[:T]
            assert j.max() < pdb.size, "db partial outside the pdb piece"
            pdb[j] = cs
        counters[tile] += 1
        if counters[tile] != splits:
            return
        first = tile * splits * T * T
        total = np.zeros((16 * S * S, THREADS))
        for s2 in range(splits):
            total += part[first + s2 * T * T + r[:, None] * THREADS + tid[None, :]]
        acc = np.zeros((T, T))
        acc[rows_of[:, :, None], cols_of[:, None, :]] = total.T.reshape(THREADS, 4 * S, 4 * S)
        if colsum:
            cs = sum(pdb[(tn * splits + s2) * T + tid[:T]] for s2 in range(splits))

    rows = np.arange(m0, min(m0 + T, Mg))
    cols = np.arange(n0, min(n0 + T, Ng))
    out[np.ix_(rows, cols)] = acc[np.ix_(rows - m0, cols - n0)]
    written[np.ix_(rows, cols)] += 1
    if colsum:
        db_out[cols] = cs[cols - n0]
        db_written[cols] += 1


def run_fused(M, K, N, T, has_db=True, has_dx=True, split=True, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((M, K))
    W = rng.standard_normal((K, N))
    dZ = rng.standard_normal((M, N))
    sp = splits_for(M, K, N) if split else (1, 1)
    g = fused_grid(M, K, N, T, has_db, has_dx, False, sp)
    pieces, need = split_layout(g, T)
    if split:
        assert need <= split_workspace_bytes(M, K, N), "split_workspace_bytes is not a bound"
    pw = np.full(pieces["pw"][1] // 4 if pieces else 0, np.nan)
    px = np.full(pieces["px"][1] // 4 if pieces else 0, np.nan)
    pdb = np.full(pieces["pdb"][1] // 8 if pieces else 0, np.nan)
    cw = np.zeros(g["wm"] * g["wn"], int)
    cx = np.zeros(g["xm"] * g["xn"], int)
    dW, dX, db = np.full((K, N), np.nan), np.full((M, K), np.nan), np.full(N, np.nan)
    wW, wX, wdb = np.zeros((K, N), int), np.zeros((M, K), int), np.zeros(N, int)
    nw = g["wm"] * g["wn"] * g["sw"]
    nx = g["xm"] * g["xn"] * g["sx"]
    bounds = []
    order = list(range(nw + nx))
    rng.shuffle(order)  # blocks run in any order; the last arrival of a tile adds the partials
    for pid in order:
        dw_block = pid < nw if g["dw_first"] else pid >= nx
        p = (pid if g["dw_first"] else pid - nx) if dw_block else \
            (pid - nw if g["dw_first"] else pid)
        if dw_block:
            run_block("dw", p, g["wm"], g["wn"], g["sw"], T, X, W, dZ, dW, wW, db, wdb, pw, pdb,
                      cw, has_db, bounds)
        else:
            run_block("dx", p, g["xm"], g["xn"], g["sx"], T, X, W, dZ, dX, wX, None, None, px,
                      None, cx, False, bounds)
    # every tile of a split product counted in by each of its slices (the last one added them)
    assert g["sw"] == 1 or (cw == g["sw"]).all()
    assert g["sx"] == 1 or (cx == g["sx"]).all()
    assert (wW == 1).all(), "a dW element written twice or never"
    np.testing.assert_allclose(dW, X.T @ dZ, rtol=1e-12, atol=1e-10)
    if has_db:
        assert (wdb == 1).all(), "a db element written twice or never"
        np.testing.assert_allclose(db, dZ.sum(axis=0), rtol=1e-12, atol=1e-10)
    if has_dx and M > 0 and K > 0:
        assert (wX == 1).all(), "a dX element written twice or never"
        np.testing.assert_allclose(dX, dZ @ W.T, rtol=1e-12, atol=1e-10)
    return g, sorted(bounds)


SHAPES = [(1, 1, 1), (5, 3, 7), (63, 64, 65), (65, 130, 63), (130, 70, 33), (6, 0, 5),
          (0, 3, 4), (1000, 64, 10), (300, 20, 1000), (1100, 9, 130), (129, 140, 2000)]


@pytest.mark.parametrize("T", [64, 128])
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_fused_kernel_bookkeeping(M, K, N, T):
    run_fused(M, K, N, T)
    run_fused(M, K, N, T, split=False)
    run_fused(M, K, N, T, has_db=False, has_dx=False)


@pytest.mark.parametrize("M,K,N", [(1000, 64, 10), (300, 20, 1000), (1100, 9, 130),
                                   (129, 140, 2000)])
def test_shapes_above_really_split(M, K, N):
    assert max(splits_for(M, K, N)) > 1


@pytest.mark.parametrize("M,K,N", SHAPES)
def test_both_tile_sizes_cut_the_sums_at_the_same_terms(M, K, N):
    """Slices start at multiples of 16 terms and cover the sum once, identically for tiles of
    64 (BK 16) and 128 (BK 8): the two kernels add the same terms in the same order."""
    def cuts(T):
        _, b = run_fused(M, K, N, T)
        out = {}
        for prod, _, sl, lo, hi in b:
            out.setdefault(prod, set()).add((sl, lo, hi))
        return out

    c64, c128 = cuts(64), cuts(128)
    assert c64 == c128
    for prod, spans in c64.items():
        total = M if prod == "dw" else N
        covered = sorted((lo, hi) for _, lo, hi in spans if hi > lo)
        assert all(lo % 16 == 0 for lo, _ in covered)
        pos = 0
        for lo, hi in covered:
            assert lo == pos
            pos = hi
        assert pos == total


def test_workspace_bound_over_many_shapes():
    """split_workspace_bytes(M, K, N) bounds what either tile size lays out, with or without
    db / dX; the (M, K, N) examples of dense.h split as documented."""
    rng = np.random.default_rng(1)
    dims = [0, 1, 3, 63, 64, 65, 127, 128, 129, 200, 1000, 4096, 5000]
    shapes = [(a, b, c) for a in dims for b in dims for c in dims]
    shapes += [tuple(int(v) for v in rng.integers(1, 20000, 3)) for _ in range(300)]
    for M, K, N in shapes:
        bound = split_workspace_bytes(M, K, N)
        for T in (64, 128):
            for has_db in (False, True):
                for has_dx in (False, True):
                    g = fused_grid(M, K, N, T, has_db, has_dx, False, splits_for(M, K, N))
                    assert split_layout(g, T)[1] <= bound, (M, K, N, T, has_db, has_dx)
    assert splits_for(4096, 1024, 1024) == (4, 1)
    assert splits_for(256, 1024, 1024) == (1, 4)
    assert splits_for(128, 784, 256) == (1, 2)
    assert splits_for(4096, 784, 4096) == (1, 1)
