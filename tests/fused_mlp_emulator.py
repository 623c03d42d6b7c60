"""A host emulation of csrc/cuda/fused_mlp.cu's blocks, thread by thread, for the CPU test suite.

It mirrors the kernel's index math line by line -- the shared-memory plan (plan_smem, carve),
stage_b's item order, the FP32 SIMT product's float4 reads, the TF32 / BF16 mma.sync fragment
addressing, the epilogues' column pairs, the edge slab -- and runs it against

- the PTX ISA's fragment layouts (the registers a lane loads are placed in the 16x8 / 16x16 A
  tile and the B tile where the ISA says that register lives, and the accumulators are read back
  the same way), so an addressing slip shows up as a wrong product;
- a race detector: every shared-memory word's accesses are recorded between block barriers
  (a word written by one warp and touched by another in the same interval is a race) and, within
  a warp, between __syncwarp()s (written by one lane, touched by another);
- poisoned memory: dynamic shared memory starts as NaN, outputs start as NaN, so a read of a
  word nobody wrote (stale padding included) or an output nobody wrote shows;
- bounds: every global and shared index is checked.

Values are float64 of the operands rounded as the kernel rounds them (tf32: cvt.rna; bf16:
nearest even) with float32 stores to global memory; the products accumulate in float64, so the
results agree with the GPU to its FP32 accumulation error, which the callers' tolerances cover.
It is slow (pure Python): small stacks and batches only.
"""

import math

import numpy as np

import oracle

K_MAX_WIDTH = 128
K_MAX_ROWS = 128
K_CHUNK = 8
NAN = float("nan")


def round_up(x, m):
    return (x + m - 1) // m * m


class RaceError(AssertionError):
    pass


class Shared:
    """Dynamic shared memory as 32-bit words, with access tracking for races."""

    def __init__(self, words, nwarps):
        self.v = [NAN] * words  # a float, or a (lo, hi) bf16 pair
        self.nwarps = nwarps
        self.block = {}  # word -> {warp: wrote?} since the last barrier
        self.warp = [dict() for _ in range(nwarps)]  # word -> {lane: wrote?} since __syncwarp

    def _track(self, i, warp, lane, write):
        if not 0 <= i < len(self.v):
            raise IndexError(f"shared word {i} outside the {len(self.v)} allocated")
        b = self.block.setdefault(i, {})
        b[warp] = b.get(warp, False) or write
        if len(b) > 1 and any(b.values()):
            raise RaceError(f"shared word {i}: warps {sorted(b)} in one barrier interval, "
                            f"one of them writing")
        w = self.warp[warp].setdefault(i, {})
        w[lane] = w.get(lane, False) or write
        if len(w) > 1 and any(w.values()):
            raise RaceError(f"shared word {i}: lanes {sorted(w)} of warp {warp} between "
                            f"__syncwarp()s, one of them writing")

    def read(self, i, warp, lane):
        self._track(i, warp, lane, False)
        return self.v[i]

    def write(self, i, value, warp, lane):
        self._track(i, warp, lane, True)
        self.v[i] = value

    def syncwarp(self, warp):
        self.warp[warp] = {}

    def barrier(self):
        self.block = {}
        self.warp = [dict() for _ in range(self.nwarps)]


class Global:
    """A float32 matrix in device memory: bounds-checked flat reads and writes."""

    def __init__(self, arr):
        self.a = arr.reshape(-1)

    def read(self, i):
        if not 0 <= i < self.a.size:
            raise IndexError(f"global read {i} outside {self.a.size}")
        return float(self.a[i])

    def write(self, i, v):
        if not 0 <= i < self.a.size:
            raise IndexError(f"global write {i} outside {self.a.size}")
        self.a[i] = np.float32(v)


def _f32(v):
    return float(np.float32(v))


def _tf32(v):
    return float(oracle.round_tf32(np.array([v], np.float32))[0])


def _bf16(v):
    return float(oracle.round_bf16(np.array([v], np.float32))[0])


def _act(name, param, z):
    return float(oracle.mlp_activation(name, np.array([z]), param)[0])


def _deriv(name, param, y):
    return float(oracle.mlp_act_deriv_from_output(name, np.array([y]), param)[0])


class Plan:
    """plan_smem + carve + smem_bytes."""

    def __init__(self, wp, rows, precision):
        self.rows, self.wp, self.precision = rows, wp, precision
        self.ldz = wp + 4
        self.ldb = wp + 8
        if precision == "bf16":
            self.lda = round_up(wp // 2, 32) + 4
            self.a_words = rows * self.lda
            self.b_words = (wp // 2) * self.ldb
        else:
            self.lda = self.ldz
            self.a_words = 0
            self.b_words = wp * self.ldb
        self.Z = 0
        self.A = rows * self.ldz if self.a_words else 0
        self.B = rows * self.ldz + self.a_words
        self.bias = self.B + 2 * self.b_words
        self.words = rows * self.ldz + self.a_words + 2 * self.b_words + 2 * K_MAX_WIDTH
        self.bytes = 4 * self.words


def fit_rows(wp, precision, rows, limit):
    """fit_rows: the largest slab of at most `rows` rows (halving down to 16) whose plan fits in
    `limit` bytes of shared memory; 0 where none does."""
    while rows >= 16:
        if Plan(wp, rows, precision).bytes <= limit:
            return rows
        rows //= 2
    return 0


class Block:
    def __init__(self, layers, M, rows, precision, block_index, mem):
        self.L, self.M, self.rows, self.P = layers, M, rows, precision
        self.threads = 2 * rows
        self.nwarps = self.threads // 32
        wmax = max([layers[0]["in"]] + [l["out"] for l in layers])
        self.plan = Plan(round_up(wmax, 32), rows, precision)
        self.s = mem if mem is not None else Shared(self.plan.words, self.nwarps)
        self.m0 = block_index * rows
        self.wide = self.plan.wp > 64

    # ---------------------------------------------------------------- helpers
    def put_pair(self, r, c, v0, v1, warp, lane):
        p, s = self.plan, self.s
        if self.P == "bf16":
            s.write(p.A + r * p.lda + c // 2, (_bf16(v0), _bf16(v1)), warp, lane)
        else:
            f = _tf32 if self.P == "tf32" else _f32
            s.write(p.A + r * p.lda + c, f(v0), warp, lane)
            s.write(p.A + r * p.lda + c + 1, f(v1), warp, lane)

    def staged_cols(self, N):
        return round_up(N, 32) if self.P == "fp32" else round_up(N, 16)

    def stage_b(self, buf, W, K, N, Kp, Nc, transposed):
        p, s = self.plan, self.s
        B = p.B + buf * p.b_words

        def position(idx):
            if self.P == "bf16":
                Kh = Kp // 2
                if transposed:
                    group, lane, kblocks = idx // 32, idx % 32, Kh // 4
                    return (group % kblocks) * 4 + lane % 4, (group // kblocks) * 8 + lane // 4
                return idx // Nc, idx - (idx // Nc) * Nc
            if transposed:
                group, lane, kblocks = idx // 32, idx % 32, Kp // 8
                return (group % kblocks) * 8 + lane % 8, (group // kblocks) * 4 + lane // 8
            return idx // Nc, idx - (idx // Nc) * Nc

        def at(k, n):
            if k < K and n < N:
                return W.read(n * K + k if transposed else k * N + n)
            return 0.0

        total = (Kp // 2 if self.P == "bf16" else Kp) * Nc
        seen = set()
        for idx in range(total):  # thread idx % threads; per-thread order does not matter here
            t = idx % self.threads
            k, n = position(idx)
            assert (k, n) not in seen, "stage_b: two items on one B element"
            seen.add((k, n))
            if self.P == "bf16":
                v = (_bf16(at(2 * k, n)), _bf16(at(2 * k + 1, n)))
            else:
                v = (_tf32 if self.P == "tf32" else _f32)(at(k, n))
            s.write(B + k * p.ldb + n, v, t // 32, t % 32)
        assert len(seen) == total

    def stage_bias(self, buf, b, N):
        p, s = self.plan, self.s
        for n in range(K_MAX_WIDTH):
            t = n % self.threads
            v = b.read(n) if (b is not None and n < N) else 0.0
            s.write(p.bias + buf * K_MAX_WIDTH + n, _f32(v), t // 32, t % 32)

    # ---------------------------------------------------------------- the product
    def product(self, warp, buf, Kp, Np):
        p, s = self.plan, self.s
        A, B, Z = p.A, p.B + buf * p.b_words, p.Z
        lda, ldb, ldz = p.lda, p.ldb, p.ldz
        if self.P == "fp32":
            NJ = 4 if self.wide else 2
            accs = {}
            for lane in range(32):
                rg, cg = lane // 8, lane % 8
                r0 = warp * 16 + rg
                acc = [[[0.0] * 4 for _ in range(NJ)] for _ in range(4)]
                for k in range(0, Kp, 4):
                    assert ((A + (r0) * lda + k) % 4) == 0, "unaligned float4 read of A"
                    a = [[s.read(A + (r0 + 4 * i) * lda + k + e, warp, lane) for e in range(4)]
                         for i in range(4)]
                    for kk in range(4):
                        for j in range(NJ):
                            if 32 * j >= Np:
                                break
                            base = B + (k + kk) * ldb + 32 * j + 4 * cg
                            assert base % 4 == 0, "unaligned float4 read of B"
                            w = [s.read(base + e, warp, lane) for e in range(4)]
                            for i in range(4):
                                for q in range(4):
                                    acc[i][j][q] += a[i][kk] * w[q]
                accs[lane] = acc
            s.syncwarp(warp)
            for lane in range(32):
                rg, cg = lane // 8, lane % 8
                r0 = warp * 16 + rg
                for j in range(NJ):
                    c = 32 * j + 4 * cg
                    if c >= Np:
                        continue
                    for i in range(4):
                        for q in range(4):
                            s.write(Z + (r0 + 4 * i) * ldz + c + q, accs[lane][i][j][q], warp, lane)
            s.syncwarp(warp)
            return
        NT = 16 if self.wide else 8
        nt = Np // 8
        assert Np <= 8 * NT
        acc = {lane: [[0.0] * 4 for _ in range(NT)] for lane in range(32)}
        step = 8 if self.P == "tf32" else 16
        for k0 in range(0, Kp, step):
            regs_a, regs_b = {}, {}
            for lane in range(32):
                g, t = lane // 4, lane % 4
                r = warp * 16 + g
                kw = k0 if self.P == "tf32" else k0 // 2
                regs_a[lane] = [s.read(A + r * lda + kw + t, warp, lane),
                                s.read(A + (r + 8) * lda + kw + t, warp, lane),
                                s.read(A + r * lda + kw + t + 4, warp, lane),
                                s.read(A + (r + 8) * lda + kw + t + 4, warp, lane)]
                b = B + (kw + t) * ldb + g
                regs_b[lane] = [(s.read(b + 8 * j, warp, lane), s.read(b + 4 * ldb + 8 * j, warp,
                                                                        lane))
                                for j in range(nt)]
            # The PTX ISA's fragment layouts (9.7.14.5.7 m16n8k8 .tf32, 9.7.14.5.8 m16n8k16
            # .bf16): where each register's elements sit in the A (16 x k) and B (k x 8) tiles.
            kk = 8 if self.P == "tf32" else 16
            At = np.full((16, kk), np.nan)
            Bt = [np.full((kk, 8), np.nan) for _ in range(nt)]
            for lane in range(32):
                g, t = lane // 4, lane % 4
                a = regs_a[lane]
                if self.P == "tf32":
                    At[g, t], At[g + 8, t], At[g, t + 4], At[g + 8, t + 4] = a
                    for j in range(nt):
                        Bt[j][t, g], Bt[j][t + 4, g] = regs_b[lane][j]
                else:  # .bf16x2 registers: the lower half holds the lower-numbered element
                    (At[g, 2 * t], At[g, 2 * t + 1]) = a[0]
                    (At[g + 8, 2 * t], At[g + 8, 2 * t + 1]) = a[1]
                    (At[g, 2 * t + 8], At[g, 2 * t + 9]) = a[2]
                    (At[g + 8, 2 * t + 8], At[g + 8, 2 * t + 9]) = a[3]
                    for j in range(nt):
                        b0, b1 = regs_b[lane][j]
                        (Bt[j][2 * t, g], Bt[j][2 * t + 1, g]) = b0
                        (Bt[j][2 * t + 8, g], Bt[j][2 * t + 9, g]) = b1
            for j in range(nt):
                D = At @ Bt[j]
                for lane in range(32):
                    g, t = lane // 4, lane % 4
                    for e in range(4):
                        acc[lane][j][e] += D[g + (8 if e >= 2 else 0), 2 * t + (e & 1)]
        s.syncwarp(warp)
        for lane in range(32):
            g, t = lane // 4, lane % 4
            r = warp * 16 + g
            for j in range(nt):
                s.write(Z + r * ldz + 8 * j + 2 * t, acc[lane][j][0], warp, lane)
                s.write(Z + r * ldz + 8 * j + 2 * t + 1, acc[lane][j][1], warp, lane)
                s.write(Z + (r + 8) * ldz + 8 * j + 2 * t, acc[lane][j][2], warp, lane)
                s.write(Z + (r + 8) * ldz + 8 * j + 2 * t + 1, acc[lane][j][3], warp, lane)
        s.syncwarp(warp)

    def warp_pairs(self, warp, Np):
        half = Np // 2
        for idx in range(16 * half):
            r = idx // half
            yield idx % 32, warp * 16 + r, 2 * (idx - r * half)

    def slab_pairs(self, half):
        for idx in range(self.rows * half):
            r = idx // half
            t = idx % self.threads
            yield t // 32, t % 32, r, 2 * (idx - r * half)

    # ---------------------------------------------------------------- the kernels
    def forward(self, X, outs):
        p, s, L = self.plan, self.s, self.L
        K0 = L[0]["in"]
        for warp, lane, r, c in self.slab_pairs(round_up(K0, 16) // 2):
            row = self.m0 + r
            v0 = v1 = 0.0
            if row < self.M:
                if c < K0:
                    v0 = X.read(row * K0 + c)
                if c + 1 < K0:
                    v1 = X.read(row * K0 + c + 1)
            self.put_pair(r, c, v0, v1, warp, lane)
        for l, lay in enumerate(L):
            K, N = lay["in"], lay["out"]
            Kp, Np = round_up(K, 16), round_up(N, 16)
            self.stage_b(l & 1, lay["W"], K, N, Kp, self.staged_cols(N), False)
            self.stage_bias(l & 1, lay["b"], N)
            s.barrier()
            last = l + 1 == len(L)
            for warp in range(self.nwarps):
                self.product(warp, l & 1, Kp, Np)
                for lane, r, c in self.warp_pairs(warp, Np):
                    z0 = s.read(p.Z + r * p.ldz + c, warp, lane)
                    z1 = s.read(p.Z + r * p.ldz + c + 1, warp, lane)
                    b0 = s.read(p.bias + (l & 1) * K_MAX_WIDTH + c, warp, lane)
                    b1 = s.read(p.bias + (l & 1) * K_MAX_WIDTH + c + 1, warp, lane)
                    y0 = _f32(_act(lay["act"], lay["param"], _f32(z0 + b0))) if c < N else 0.0
                    y1 = _f32(_act(lay["act"], lay["param"], _f32(z1 + b1))) if c + 1 < N else 0.0
                    row = self.m0 + r
                    if outs[l] is not None and row < self.M:
                        if c < N:
                            outs[l].write(row * N + c, y0)
                        if c + 1 < N:
                            outs[l].write(row * N + c + 1, y1)
                    if not last:
                        self.put_pair(r, c, y0, y1, warp, lane)

    def backward(self, outs, dY, dZ, dX):
        p, s, L = self.plan, self.s, self.L
        n = len(L)
        last = L[n - 1]
        N = last["out"]
        for warp, lane, r, c in self.slab_pairs(round_up(N, 16) // 2):
            row = self.m0 + r
            v0 = v1 = 0.0
            if row < self.M:
                o = row * N + c
                if c < N:
                    v0 = _f32(dY.read(o) * _deriv(last["act"], last["param"], outs[n - 1].read(o)))
                    dZ[n - 1].write(o, v0)
                if c + 1 < N:
                    v1 = _f32(dY.read(o + 1) *
                              _deriv(last["act"], last["param"], outs[n - 1].read(o + 1)))
                    dZ[n - 1].write(o + 1, v1)
            self.put_pair(r, c, v0, v1, warp, lane)
        for l in range(n - 1, -1, -1):
            if l == 0 and dX is None:
                break
            lay = L[l]
            K, Nn = lay["out"], lay["in"]
            Kp, Np = round_up(K, 16), round_up(Nn, 16)
            self.stage_b(l & 1, lay["W"], K, Nn, Kp, self.staged_cols(Nn), True)
            s.barrier()
            for warp in range(self.nwarps):
                self.product(warp, l & 1, Kp, Np)
                for lane, r, c in self.warp_pairs(warp, Np):
                    d0 = s.read(p.Z + r * p.ldz + c, warp, lane)
                    d1 = s.read(p.Z + r * p.ldz + c + 1, warp, lane)
                    row = self.m0 + r
                    if l > 0:
                        prev = L[l - 1]
                        v0 = v1 = 0.0
                        if row < self.M:
                            o = row * Nn + c
                            if c < Nn:
                                v0 = _f32(d0 * _deriv(prev["act"], prev["param"],
                                                      outs[l - 1].read(o)))
                                dZ[l - 1].write(o, v0)
                            if c + 1 < Nn:
                                v1 = _f32(d1 * _deriv(prev["act"], prev["param"],
                                                      outs[l - 1].read(o + 1)))
                                dZ[l - 1].write(o + 1, v1)
                        self.put_pair(r, c, v0, v1, warp, lane)
                    elif row < self.M:
                        if c < Nn:
                            dX.write(row * Nn + c, d0)
                        if c + 1 < Nn:
                            dX.write(row * Nn + c + 1, d1)


def fused_mlp_host(X, weights, biases=None, activations=None, precision="fp32", dY=None,
                   act_params=None, want_dx=True, rows=32):
    """The fused MLP forward + backward, emulated: (outputs, dZ or None, dX or None). `rows` is
    the slab (16, 32, 64 or 128: one warp per 16 rows)."""
    n = len(weights)
    biases = list(biases) if biases is not None else [None] * n
    activations = list(activations) if activations is not None else [None] * n
    act_params = list(act_params) if act_params is not None else [0.0] * n
    X = np.ascontiguousarray(X, np.float32)
    M = X.shape[0]
    layers = []
    for l in range(n):
        W = np.ascontiguousarray(weights[l], np.float32)
        b = biases[l]
        layers.append(dict(W=Global(W.copy()), b=None if b is None else Global(
            np.ascontiguousarray(b, np.float32).copy()), **{"in": W.shape[0]}, out=W.shape[1],
            act=activations[l], param=float(act_params[l])))
    outs = [np.full((M, l["out"]), np.nan, np.float32) for l in layers]
    g_outs = [Global(o) for o in outs]
    blocks = max(1, math.ceil(M / rows)) if M else 0
    gX = Global(X.copy())
    for bi in range(blocks):
        Block(layers, M, rows, precision, bi, None).forward(gX, g_outs)
    if dY is None:
        return outs, None, None
    dY = np.ascontiguousarray(dY, np.float32)
    dzs = [np.full((M, l["out"]), np.nan, np.float32) for l in layers]
    dx = np.full((M, layers[0]["in"]), np.nan, np.float32) if want_dx else None
    g_dY = Global(dY.copy())
    for bi in range(blocks):
        Block(layers, M, rows, precision, bi, None).backward(
            g_outs, g_dY, [Global(d) for d in dzs], Global(dx) if want_dx else None)
    return outs, dzs, dx
