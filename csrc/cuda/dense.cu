// Dense-layer backward on the GPU (see dense.h): the fused FP32 kernel and the composed path.
//
// Fused: one launch, two products. With x (M, K), W (K, N), dY and the gate (M, N):
//   dW (K, N) (+)= X^T (K, M) @ dZ (M, N)   the "dW tiles": sum over the batch
//   dX (M, K)   =  dZ (M, N) @ W^T (N, K)   the "dX tiles": sum over the outputs
// Each block computes one T x T tile of one product with the v2 SGEMM's scheme (gemm_sgemm2.cu:
// 256 threads in 2 x 4 warps, 4x4 register sub-tiles, one float4 per thread per operand tile,
// shared tiles double-buffered with one barrier per K step). dZ is the B operand of dW (stored
// with unit stride along n: float4 stores into shared memory) and the A operand of dX (unit
// stride along k: transposed as it is stored); either way the loader reads the dY float4 and the
// gate float4 at the same place and stores dY * act'(gate), so dZ never goes to memory. The
// blocks of dW's first tile row stage every dZ column over the whole batch: their first T
// threads add the staged rows of their column, in row order, in double, and write db -- one
// writer per column, a fixed order, no atomics: deterministic, and as exact as reduce.h's sums.
// Why not reduce.h's column-sum kernel: it would need dZ in memory, the pass the fused path
// exists to avoid.
//
// Two tile sizes: T = 128 (8x8 per thread, BK = 8; the v2 shape) or T = 64 (4x4 per thread,
// BK = 16), whichever a rough estimate of the launch's run time favours (estimated_clocks): 64
// spreads a small layer (128x784x256: 14 + 7 tiles of 128, 52 + 26 of 64) over more SMs.
// Operands with 16-byte aligned bases and leading dimensions that are multiples of 4 are read
// as float4; anything else (ldy != N odd, a view at an odd offset) takes the same kernel with
// per-element loads and stores (T = 64 only, to keep the instance count and nvcc time down).
// Either way every output adds its K terms in order, so the tile size does not change the bits.
//
// Split-K: a product with few tiles and long sums (dW at a large batch, dX at a small batch
// with many outputs) has its sums cut into slices run by separate blocks; the last block of a
// tile to finish adds the partials (workspace) in slice order. See splits_for.
//
// Composed (the reference, and the TF32/BF16 products): dZ into the workspace by the
// activation-gradient kernel, two GEMMs (gemm_precision), reduce.h's column sums.
#include "cuda/dense.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <string>

#include "core/act_math.h"
#include "core/error.h"
#include "cuda/activations.h"
#include "cuda/elem_util.cuh"
#include "cuda/gemm_tile.cuh"
#include "cuda/reduce.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int kThreads = 256;  // 8 warps: 2 along m x 4 along n
constexpr int kGroupM = 8;     // tile rows per L2-friendly launch-order group

template <int T>
struct Tile {
  static_assert(T == 64 || T == 128, "tiles of 64 or 128");
  static constexpr int BK = 1024 / T;              // T * BK = 4 * kThreads: one float4 each
  static constexpr int S = T / 64;                 // 4x4 register sub-tiles per dimension
  static constexpr int WM = 32 * S, WN = 16 * S;   // warp tile
  static constexpr int LDS = T + 4;                // padded k-row of a shared tile
};

// Tile counts of the two products, their split-K slices, and which comes first in the launch
// (the longer sums first, so the short ones fill the tail).
struct FusedGrid {
  int wm, wn;  // dW: tiles over K, over N (wm >= 1 whenever db is asked for, even at K == 0)
  int xm, xn;  // dX: tiles over M, over K (0 without dX)
  int sw, sx;  // slices of dW's and dX's sums (1: none)
  bool dw_first;
  // With slices (workspace): per tile, each slice's T x T partial (thread-major: element r of
  // thread t at [r * kThreads + t]) in slice order; db's per-slice column sums; one arrival
  // counter per tile (zeroed before the launch).
  float* pw;
  float* px;
  double* pdb;
  int* cw;
  int* cx;
};

// As gemm_tile::block_tile, for block `pid` of one product: groups of kGroupM tile rows walked
// column-major, so the blocks running together share operand rows and columns in L2.
__device__ __forceinline__ void group_tile(int pid, int tiles_m, int tiles_n, int& tm, int& tn) {
  const int per_group = kGroupM * tiles_n;
  const int first_m = (pid / per_group) * kGroupM;
  const int rows = min(tiles_m - first_m, kGroupM);
  tm = first_m + (pid % per_group) % rows;
  tn = (pid % per_group) / rows;
}

// Elements (row, col .. col+3) of a matrix with unit column stride and row stride ld, zero
// outside rows x cols. VEC: one 128-bit load where the four are inside (ld % 4 == 0, col % 4 ==
// 0 and a 16-byte aligned base make it aligned); otherwise four scalar loads.
template <bool VEC>
__device__ __forceinline__ float4 load_tile4(const float* __restrict__ p, int64_t ld, int row,
                                             int rows, int col, int cols) {
  if constexpr (VEC) {
    return gemm_tile::load4(p, ld, row, rows, col, cols);
  } else {
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (row < rows) {
      const float* q = p + int64_t(row) * ld + col;
      if (col < cols) v.x = __ldg(q);
      if (col + 1 < cols) v.y = __ldg(q + 1);
      if (col + 2 < cols) v.z = __ldg(q + 2);
      if (col + 3 < cols) v.w = __ldg(q + 3);
    }
    return v;
  }
}

// dz = dy * act'(gate): the product act_backward_kernel (activations.cu) forms, with the same
// formulas (core/act_math.h), so the fused and composed paths agree on dZ to the bit.
__device__ __forceinline__ float dz_of(float dy, float g, const OperandGate<float>& gt) {
  return dy * (gt.from_output ? act_math::derivative_from_output(gt.act, gt.param, g)
                              : act_math::derivative(gt.act, gt.param, g));
}

__device__ __forceinline__ float4 dz_of4(float4 d, float4 g, const OperandGate<float>& gt) {
  return make_float4(dz_of(d.x, g.x, gt), dz_of(d.y, g.y, gt), dz_of(d.z, g.z, gt),
                     dz_of(d.w, g.w, gt));
}

// One T x T tile (pid) of one product. DW: C = dW (K x N), sum over the batch, A = X^T (unit
// stride along m), B = dZ (unit stride along n), plus db in the first tile row. !DW: C = dX
// (M x K), sum over the outputs, A = dZ and B = W^T (both unit stride along k).
//
// Split-K (splits > 1): block pid computes slice pid / tiles of tile pid % tiles, a contiguous
// run of K steps; it stores its partial tile, and the last of the tile's slices to arrive (an
// atomic counter) adds the partials in slice order -- the same order whichever block arrives
// last, so the result is deterministic -- and runs the epilogue. db likewise, per slice.
template <int T, bool VEC, bool DW>
__device__ __forceinline__ void tile_product(const DenseBackwardArgs<float>& a, int tiles_m,
                                             int tiles_n, int splits, int pid, float* part,
                                             double* pdb, int* counters,
                                             float (&As)[2][Tile<T>::BK][Tile<T>::LDS],
                                             float (&Bs)[2][Tile<T>::BK][Tile<T>::LDS]) {
  using C = Tile<T>;
  constexpr int BK = C::BK, S = C::S;
  // 32-bit sizes and indices (the host keeps M, K, N below 2^31 - 256): fewer registers.
  const int Mg = int(DW ? a.K : a.M), Ng = int(DW ? a.N : a.K), Kg = int(DW ? a.M : a.N);
  const int ntiles = tiles_m * tiles_n, tile = pid % ntiles, slice = pid / ntiles;
  int tm, tn;
  group_tile(tile, tiles_m, tiles_n, tm, tn);
  const int m0 = tm * T, n0 = tn * T;

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int am = (warp / 4) * C::WM + (lane / 4) * 4;  // rows am + 32 i + 0..3, i < S
  const int bn = (warp % 4) * C::WN + (lane % 4) * 4;  // cols bn + 16 j + 0..3, j < S

  // This thread's float4 of each staged tile, as (row, col) of the operand's stored layout, col
  // the unit-stride one. Unit stride along m / n (dW's operands): row = k, col = m or n; unit
  // stride along k (dX's): row = m or n, col = k.
  const int r_mn = tid / (T / 4), c_mn = (tid % (T / 4)) * 4;
  const int r_k = tid / (BK / 4), c_k = (tid % (BK / 4)) * 4;

  const bool gated = a.gate.data != nullptr;
  struct Raw {
    float4 a, b, g;
  };
  auto load = [&](int k0) {
    Raw r;
    r.g = make_float4(0.f, 0.f, 0.f, 0.f);
    if constexpr (DW) {
      r.a = load_tile4<VEC>(a.X, a.ldx, k0 + r_mn, Kg, m0 + c_mn, Mg);
      r.b = load_tile4<VEC>(a.dY, a.ldy, k0 + r_mn, Kg, n0 + c_mn, Ng);
      if (gated) r.g = load_tile4<VEC>(a.gate.data, a.ldy, k0 + r_mn, Kg, n0 + c_mn, Ng);
    } else {
      r.a = load_tile4<VEC>(a.dY, a.ldy, m0 + r_k, Mg, k0 + c_k, Kg);
      if (gated) r.g = load_tile4<VEC>(a.gate.data, a.ldy, m0 + r_k, Mg, k0 + c_k, Kg);
      r.b = load_tile4<VEC>(a.W, a.ldw, n0 + r_k, Ng, k0 + c_k, Kg);
    }
    return r;
  };
  // The gate is applied here, after the current step's FMAs, so that the next step's loads
  // have had the whole step to arrive. Zeros outside the matrix stay zero (act' is finite at 0).
  auto store = [&](int buf, Raw r) {
    if constexpr (DW) {
      if (gated) r.b = dz_of4(r.b, r.g, a.gate);
      *reinterpret_cast<float4*>(&As[buf][r_mn][c_mn]) = r.a;
      *reinterpret_cast<float4*>(&Bs[buf][r_mn][c_mn]) = r.b;
    } else {
      if (gated) r.a = dz_of4(r.a, r.g, a.gate);
      As[buf][c_k + 0][r_k] = r.a.x;
      As[buf][c_k + 1][r_k] = r.a.y;
      As[buf][c_k + 2][r_k] = r.a.z;
      As[buf][c_k + 3][r_k] = r.a.w;
      Bs[buf][c_k + 0][r_k] = r.b.x;
      Bs[buf][c_k + 1][r_k] = r.b.y;
      Bs[buf][c_k + 2][r_k] = r.b.z;
      Bs[buf][c_k + 3][r_k] = r.b.w;
    }
  };

  // db: thread tid < T of a first-row dW block owns column n0 + tid.
  const bool colsum = DW && a.db != nullptr && tm == 0 && tid < T;
  double cs = 0.0;

  float acc[4 * S][4 * S];
#pragma unroll
  for (int i = 0; i < 4 * S; ++i)
#pragma unroll
    for (int j = 0; j < 4 * S; ++j) acc[i][j] = 0.f;

  // K steps [kt0, kt1) of this slice; none for an empty sum: C = 0 (or C), db = 0 (or db).
  // Slices are whole multiples of 16 terms (of either BK), so both tile sizes cut the sums at
  // the same places and give the same bits.
  const int nk = (Kg + BK - 1) / BK;
  const int slice_steps = ((Kg + splits - 1) / splits + 15) / 16 * (16 / BK);
  const int kt0 = min(nk, slice * slice_steps), kt1 = min(nk, kt0 + slice_steps);
  store(0, load(kt0 * BK));
  __syncthreads();

  for (int kt = kt0; kt < kt1; ++kt) {
    const int cur = (kt - kt0) & 1;
    const bool more = kt + 1 < kt1;
    if constexpr (DW) {
      // Rows k0 .. k0 + BK - 1 of dZ, in order (zeros past the batch). Read before the barrier
      // below, which is what lets `cur` be overwritten next step.
      if (colsum) {
#pragma unroll
        for (int k = 0; k < BK; ++k) cs += double(Bs[cur][k][tid]);
      }
    }
    Raw next;
    if (more) next = load((kt + 1) * BK);
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      float av[4 * S], bv[4 * S];
#pragma unroll
      for (int i = 0; i < S; ++i) {
        const float4 t = *reinterpret_cast<const float4*>(&As[cur][k][am + 32 * i]);
        av[4 * i + 0] = t.x;
        av[4 * i + 1] = t.y;
        av[4 * i + 2] = t.z;
        av[4 * i + 3] = t.w;
      }
#pragma unroll
      for (int j = 0; j < S; ++j) {
        const float4 t = *reinterpret_cast<const float4*>(&Bs[cur][k][bn + 16 * j]);
        bv[4 * j + 0] = t.x;
        bv[4 * j + 1] = t.y;
        bv[4 * j + 2] = t.z;
        bv[4 * j + 3] = t.w;
      }
#pragma unroll
      for (int i = 0; i < 4 * S; ++i)
#pragma unroll
        for (int j = 0; j < 4 * S; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    // The other buffer was last read before the previous barrier; the barrier below publishes
    // it and keeps the next overwrite of `cur` behind every read of it.
    if (more) store(cur ^ 1, next);
    __syncthreads();
  }

  if (splits > 1) {
    // Element r of this thread's partial at [r * kThreads + tid]: coalesced, and with r a
    // compile-time constant each access is one base register plus an immediate offset.
    static_assert(16 * S * S * kThreads == T * T, "one partial element per accumulator");
    float* mine = part + (int64_t(tile) * splits + slice) * (T * T) + tid;
#pragma unroll
    for (int i = 0; i < 4 * S; ++i)
#pragma unroll
      for (int j = 0; j < 4 * S; ++j) mine[(i * 4 * S + j) * kThreads] = acc[i][j];
    if constexpr (DW) {
      if (colsum) pdb[(int64_t(tn) * splits + slice) * T + tid] = cs;
    }
    // Publish the partials before counting in (every writer fences, then the barrier, then a
    // fence by the thread that counts: the usual release); the last arrival reads them from L2.
    __threadfence();
    __syncthreads();
    __shared__ int last;
    if (tid == 0) {
      __threadfence();
      last = atomicAdd(&counters[tile], 1) == splits - 1;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    const float* first = part + int64_t(tile) * splits * (T * T) + tid;
#pragma unroll
    for (int i = 0; i < 4 * S; ++i)
#pragma unroll
      for (int j = 0; j < 4 * S; ++j) acc[i][j] = __ldcg(first + (i * 4 * S + j) * kThreads);
    for (int sl = 1; sl < splits; ++sl) {
      const float* q = first + sl * (T * T);
#pragma unroll
      for (int i = 0; i < 4 * S; ++i)
#pragma unroll
        for (int j = 0; j < 4 * S; ++j) acc[i][j] += __ldcg(q + (i * 4 * S + j) * kThreads);
    }
    if constexpr (DW) {
      if (colsum) {
        const double* q = pdb + int64_t(tn) * splits * T + tid;
        double v = __ldcg(q);
        for (int sl = 1; sl < splits; ++sl) v += __ldcg(q + sl * T);
        cs = v;
      }
    }
  }

  float* const Cm = DW ? a.dW : a.dX;
  const int64_t ldc = DW ? a.lddw : a.lddx;
  const bool read_c = DW && a.accumulate;  // otherwise C is write-only (may hold NaN)
#pragma unroll
  for (int i = 0; i < 4 * S; ++i) {
    const int m = m0 + am + (i / 4) * 32 + (i % 4);
    if (m >= Mg) continue;
    float* crow = Cm + int64_t(m) * ldc;
#pragma unroll
    for (int s = 0; s < S; ++s) {
      const int n = n0 + bn + s * 16;
      if (n >= Ng) continue;
      float v[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = acc[i][s * 4 + j];
      if (VEC && n + 3 < Ng) {
        float4* c4 = reinterpret_cast<float4*>(crow + n);  // aligned: ldc % 4 == 0, n % 4 == 0
        if (read_c) {
          const float4 c = *c4;
          v[0] += c.x;
          v[1] += c.y;
          v[2] += c.z;
          v[3] += c.w;
        }
        *c4 = make_float4(v[0], v[1], v[2], v[3]);
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          if (n + j >= Ng) break;
          float x = v[j];
          if (read_c) x += crow[n + j];
          crow[n + j] = x;
        }
      }
    }
  }

  if constexpr (DW) {
    if (colsum) {
      const int n = n0 + tid;
      if (n < Ng) {
        float v = float(cs);  // rounded once, then added: cpu::dense_backward's order
        if (a.accumulate) v = a.db[n] + v;
        a.db[n] = v;
      }
    }
  }
}

// Blocks [0, first) run the first product's tiles, the rest the other's; the branch is uniform
// over each block, so the barriers inside are reached by all of its threads.
template <int T, bool VEC>
__global__ void __launch_bounds__(kThreads, T == 128 ? 2 : 3)
    dense_backward_fused(const DenseBackwardArgs<float> a, const FusedGrid g) {
  __shared__ __align__(16) float As[2][Tile<T>::BK][Tile<T>::LDS];
  __shared__ __align__(16) float Bs[2][Tile<T>::BK][Tile<T>::LDS];
  const int nw = g.wm * g.wn * g.sw, nx = g.xm * g.xn * g.sx;
  int pid = int(blockIdx.x);
  bool dw;
  if (g.dw_first) {
    dw = pid < nw;
    if (!dw) pid -= nw;
  } else {
    dw = pid >= nx;
    if (dw) pid -= nx;
  }
  if (dw) tile_product<T, VEC, true>(a, g.wm, g.wn, g.sw, pid, g.pw, g.pdb, g.cw, As, Bs);
  else tile_product<T, VEC, false>(a, g.xm, g.xn, g.sx, pid, g.px, nullptr, g.cx, As, Bs);
}

// dz (M, N) contiguous = dY * act'(gate) (or dY) from operands of row stride ldy: the composed
// path's dZ when dY is strided (activations.cu's kernels are one-dimensional).
__global__ void __launch_bounds__(elem::kThreads)
    dz_rows(const DenseBackwardArgs<float> a, float* __restrict__ dz) {
  const int64_t n = a.M * a.N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / a.N, c = i % a.N;
    const float d = a.dY[r * a.ldy + c];
    dz[i] = a.gate.data ? dz_of(d, a.gate.data[r * a.ldy + c], a.gate) : d;
  }
}

__global__ void add_into(float* __restrict__ dst, const float* __restrict__ src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] += src[i];
}

constexpr int64_t kAlign = 256;
int64_t round_up(int64_t b) { return (b + kAlign - 1) / kAlign * kAlign; }

int64_t tiles(int64_t n, int t) { return (n + t - 1) / t; }

bool aligned16(const void* p) { return p == nullptr || gemm_tile::aligned16(p); }
bool ld4(int64_t ld) { return ld % 4 == 0; }

// Every operand of the fused kernel readable and writable as float4.
bool fused_vec(const DenseBackwardArgs<float>& a) {
  return aligned16(a.X) && aligned16(a.W) && aligned16(a.dY) && aligned16(a.gate.data) &&
         aligned16(a.dW) && aligned16(a.dX) && ld4(a.ldx) && ld4(a.ldw) && ld4(a.ldy) &&
         ld4(a.lddw) && (a.dX == nullptr || ld4(a.lddx));
}

struct Splits {
  int w = 1, x = 1;
};

// The slices of each product's sum, from the shape alone (never the device, so the bits of a
// result do not depend on the GPU): slices of at least max(128, min(M, N)) terms -- the shorter
// product's whole sum, so that every block of the launch runs about as long -- and no more than
// 512 / (tiles of 128) slices, at most 16: splitting only where the tiles are few.
// 4096x1024x1024: dW's sums (4096 rows, 64 tiles of 128) in 4 slices, dX's unsplit;
// 256x1024x1024: dX's (1024 outputs, 16 tiles) in 4; 128x784x256: dX's (256 outputs) in 2;
// 4096x784x4096: none.
int slices(int64_t sum, int64_t min_mn, int64_t tiles128) {
  const int64_t len = std::max<int64_t>(128, min_mn);
  int64_t s = (sum + len - 1) / len;
  s = std::min<int64_t>(s, 512 / std::max<int64_t>(tiles128, 1));
  return int(std::max<int64_t>(1, std::min<int64_t>(s, 16)));
}

Splits splits_for(int64_t M, int64_t K, int64_t N) {
  Splits sp;
  const int64_t min_mn = std::min(M, N);
  sp.w = slices(M, min_mn, tiles(K, 128) * tiles(N, 128));
  sp.x = slices(N, min_mn, tiles(M, 128) * tiles(K, 128));
  return sp;
}

FusedGrid fused_grid(const DenseBackwardArgs<float>& a, int T, Splits sp = Splits()) {
  FusedGrid g{};
  // With an empty batch and accumulation there is nothing to add: dW is left as it is.
  const bool dw_tiles = !(a.M == 0 && a.accumulate);
  g.wn = dw_tiles ? int(tiles(a.N, T)) : 0;
  g.wm = dw_tiles ? int(std::max<int64_t>(tiles(a.K, T), a.db ? 1 : 0)) : 0;
  const bool dx = a.dX && a.M > 0 && a.K > 0;
  g.xm = dx ? int(tiles(a.M, T)) : 0;
  g.xn = dx ? int(tiles(a.K, T)) : 0;
  g.sw = g.wm * g.wn ? sp.w : 1;
  g.sx = g.xm * g.xn ? sp.x : 1;
  // dW's tiles sum over M, dX's over N: the longer slices first.
  g.dw_first = (a.M + g.sw - 1) / g.sw >= (a.N + g.sx - 1) / g.sx;
  return g;
}

int64_t grid_blocks(const FusedGrid& g) {
  return int64_t(g.wm) * g.wn * g.sw + int64_t(g.xm) * g.xn * g.sx;
}

// Bytes of workspace the slices of g need (0 without slices), and the pointers into ws.
int64_t split_layout(const FusedGrid& g, int T, char* ws, FusedGrid* out) {
  if (g.sw == 1 && g.sx == 1) return 0;
  const int64_t tt = int64_t(T) * T, ntw = int64_t(g.wm) * g.wn, ntx = int64_t(g.xm) * g.xn;
  const int64_t bw = round_up((g.sw > 1 ? g.sw * ntw * tt : 0) * int64_t(sizeof(float)));
  const int64_t bx = round_up((g.sx > 1 ? g.sx * ntx * tt : 0) * int64_t(sizeof(float)));
  const int64_t bdb = round_up((g.sw > 1 ? g.sw * int64_t(g.wn) * T : 0) * int64_t(sizeof(double)));
  const int64_t bc = round_up((ntw + ntx) * int64_t(sizeof(int)));
  if (out && ws) {
    out->pw = reinterpret_cast<float*>(ws);
    out->px = reinterpret_cast<float*>(ws + bw);
    out->pdb = reinterpret_cast<double*>(ws + bw + bx);
    out->cw = reinterpret_cast<int*>(ws + bw + bx + bdb);
    out->cx = out->cw + ntw;
  }
  return bw + bx + bdb + bc;
}

// An upper bound of split_layout over the tile sizes, with dX and db present.
int64_t split_workspace_bytes(int64_t M, int64_t K, int64_t N) {
  const Splits sp = splits_for(M, K, N);
  if (sp.w == 1 && sp.x == 1) return 0;
  // Dimensions padded to whole tiles of 128 (which covers tiles of 64); dW's tile rows are at
  // least one (db at K == 0).
  const int64_t mp = tiles(M, 128) * 128, kp = tiles(K, 128) * 128, np = tiles(N, 128) * 128;
  const int64_t counters =
      std::max<int64_t>(tiles(K, 64), 1) * tiles(N, 64) + tiles(M, 64) * tiles(K, 64);
  return round_up(sp.w * std::max<int64_t>(kp, 128) * np * int64_t(sizeof(float))) +
         round_up(sp.x * mp * kp * int64_t(sizeof(float))) +
         round_up(sp.w * np * int64_t(sizeof(double))) +
         round_up(counters * int64_t(sizeof(int)));
}

// A rough run time (SM clocks) of the fused launch with tiles of T, to choose T: the larger of
// the work spread over every SM and the longest single tile (the tail: a long sum on a tile
// that shares its SM), at the fraction of the FMA peak each tile size sustains (128: 8x8 per
// thread, 16 FMAs per shared-memory load, 2 blocks per SM; 64: 4x4, 8 FMAs per load, 3 per SM).
// It picks 128 for the wide layers (4096x784x4096) and 64 where a few long tiles would
// otherwise set the pace (e.g. 128x784x256: 21 tiles of 128 for 132 SMs).
double estimated_clocks(const DenseBackwardArgs<float>& a, const FusedGrid& g, int T) {
  const double eff = T == 128 ? 0.7 : 0.5, per_sm = T == 128 ? 2 : 3;
  const double rate = 128.0 * eff;  // FMAs per clock per SM
  const double fmas = double(T) * T *
                      (double(g.wm) * g.wn * double(a.M) + double(g.xm) * g.xn * double(a.N));
  double longest = 0;
  if (g.wm * int64_t(g.wn))
    longest = std::max(longest, double(T) * T * double((a.M + g.sw - 1) / g.sw));
  if (g.xm * int64_t(g.xn))
    longest = std::max(longest, double(T) * T * double((a.N + g.sx - 1) / g.sx));
  return std::max(fmas / (rate * elem::sm_count()), longest / (rate / per_sm));
}

template <int T, bool VEC>
void launch_fused(const DenseBackwardArgs<float>& a, FusedGrid g, char* ws, int64_t ws_bytes,
                  cudaStream_t s, const char* name) {
  const int64_t bytes = split_layout(g, T, ws, &g);
  if (bytes) {
    FASTNN_CHECK(ws && bytes <= ws_bytes, "cuda dense_backward: split-K workspace too small");
    const int64_t counters = int64_t(g.wm) * g.wn + int64_t(g.xm) * g.xn;
    check(cudaMemsetAsync(g.cw, 0, size_t(counters) * sizeof(int), s),
          "cudaMemsetAsync (dense_backward split-K counters)");
  }
  clear_launch_error();
  dense_backward_fused<T, VEC><<<unsigned(grid_blocks(g)), kThreads, 0, s>>>(a, g);
  check_launch(name);
}

// tile: 0 = by estimated_clocks, else 64 or 128. The sums are split (Splits) when the workspace
// holds dense_backward_workspace_bytes(M, K, N).
void run_fused(const DenseBackwardArgs<float>& a, cudaStream_t s, int tile, void* workspace,
               int64_t workspace_bytes) {
  // 32-bit tile indices (and the launch-order group products) stay in range: checked with the
  // 64-tile counts, the larger ones.
  constexpr int64_t kMaxDim = INT_MAX - 256;  // the kernel's 32-bit indices, one tile past
  FASTNN_CHECK(a.M < kMaxDim && a.K < kMaxDim && a.N < kMaxDim &&
                   tiles(a.M, 64) * kGroupM < INT_MAX && tiles(a.K, 64) * kGroupM < INT_MAX &&
                   tiles(a.N, 64) * kGroupM < INT_MAX &&
                   grid_blocks(fused_grid(a, 64)) * 16 < INT_MAX,
               "cuda dense_backward: matrices too large for one launch (M " +
                   std::to_string(a.M) + ", K " + std::to_string(a.K) + ", N " +
                   std::to_string(a.N) + ")");
  const int64_t split_bytes = split_workspace_bytes(a.M, a.K, a.N);
  const Splits sp = split_bytes && workspace && workspace_bytes >= split_bytes
                        ? splits_for(a.M, a.K, a.N)
                        : Splits();
  char* ws = static_cast<char*>(workspace);
  if (!fused_vec(a)) {
    const FusedGrid g = fused_grid(a, 64, sp);
    if (grid_blocks(g))
      launch_fused<64, false>(a, g, ws, workspace_bytes, s,
                              "dense_backward_fused<64, scalar loads>");
    return;
  }
  const FusedGrid g128 = fused_grid(a, 128, sp), g64 = fused_grid(a, 64, sp);
  if (!grid_blocks(g64)) return;
  if (tile == 128 ||
      (tile == 0 && estimated_clocks(a, g128, 128) <= estimated_clocks(a, g64, 64)))
    launch_fused<128, true>(a, g128, ws, workspace_bytes, s, "dense_backward_fused<128, float4>");
  else
    launch_fused<64, true>(a, g64, ws, workspace_bytes, s, "dense_backward_fused<64, float4>");
}

void run_composed(const DenseBackwardArgs<float>& a, void* workspace, int64_t workspace_bytes,
                  void* stream, Precision precision) {
  FASTNN_CHECK(workspace_bytes >= dense_backward_workspace_bytes(a.M, a.N) && workspace,
               "cuda dense_backward: workspace too small (need " +
                   std::to_string(dense_backward_workspace_bytes(a.M, a.N)) + " bytes)");
  const auto s = static_cast<cudaStream_t>(stream);
  char* ws = static_cast<char*>(workspace);
  float* dZ = reinterpret_cast<float*>(ws);
  float* db_tmp = reinterpret_cast<float*>(ws + round_up(a.M * a.N * int64_t(sizeof(float))));
  void* colsum_ws = ws + round_up(a.M * a.N * int64_t(sizeof(float))) +
                    round_up(a.N * int64_t(sizeof(float)));
  const int64_t colsum_bytes = column_sums_workspace_bytes(a.M, a.N);

  // dZ (M, N) contiguous: the gated gradient, or dY itself when there is no activation and it is
  // already contiguous.
  const float* dz = a.dY;
  int64_t lddz = a.ldy;
  if (a.M > 0 && a.N > 0 && (a.gate.data || a.ldy != a.N)) {
    if (a.ldy != a.N) {
      clear_launch_error();
      dz_rows<<<elem::grid_for(a.M * a.N), elem::kThreads, 0, s>>>(a, dZ);
      check_launch("dense_backward dz_rows");
    } else if (a.gate.from_output) {
      act_backward_from_output<float>(a.gate.act, a.gate.param, a.dY, a.gate.data, dZ,
                                      a.M * a.N, stream);
    } else {
      act_backward<float>(a.gate.act, a.gate.param, a.dY, a.gate.data, dZ, a.M * a.N, stream);
    }
    dz = dZ;
    lddz = a.N;
  }

  // dW (K, N) (+)= X^T (K, M) @ dZ (M, N); an empty batch gives dW = 0 (or leaves it).
  if (!(a.M == 0 && a.accumulate)) {
    GemmArgs<float> gw;
    gw.M = a.K; gw.N = a.N; gw.K = a.M;
    gw.A = a.X; gw.rsa = 1; gw.csa = a.ldx;
    gw.B = dz; gw.rsb = lddz; gw.csb = 1;
    gw.C = a.dW; gw.rsc = a.lddw; gw.csc = 1;
    gw.beta = a.accumulate ? 1.0f : 0.0f;
    gemm_precision(gw, stream, precision);
  }

  if (a.db && a.N > 0 && !(a.M == 0 && a.accumulate)) {
    float* target = a.accumulate ? db_tmp : a.db;
    sum_rows<float>(dz, a.M, a.N, target, false, colsum_ws, colsum_bytes, stream);
    if (a.accumulate) {
      clear_launch_error();
      add_into<<<elem::grid_for(a.N), elem::kThreads, 0, s>>>(a.db, db_tmp, a.N);
      check_launch("dense_backward add_into");
    }
  }

  if (a.dX && a.M > 0 && a.K > 0) {
    // dX (M, K) = dZ (M, N) @ W^T (N, K); N == 0 gives zeros.
    GemmArgs<float> gx;
    gx.M = a.M; gx.N = a.K; gx.K = a.N;
    gx.A = dz; gx.rsa = lddz; gx.csa = 1;
    gx.B = a.W; gx.rsb = 1; gx.csb = a.ldw;
    gx.C = a.dX; gx.rsc = a.lddx; gx.csc = 1;
    gemm_precision(gx, stream, precision);
  }
}

// act' cheap enough to evaluate once per 128-wide tile of each product (a few instructions,
// against the 512 FMAs a thread spends per staged element in a 128 tile): then the fused path
// always wins. The transcendental ones (gelu's erfc, sigmoid / tanh / softplus / elu from z)
// cost tens of instructions each time: on large products the composed path's single evaluation
// plus one pass over dZ (12 bytes per element) is cheaper.
bool cheap_deriv(const OperandGate<float>& g) {
  if (!g.data) return true;
  switch (g.act) {
    case Act::None:
    case Act::Relu:
    case Act::LeakyRelu:
    case Act::Step: return true;
    case Act::Sigmoid:
    case Act::Tanh:
    case Act::Elu: return g.from_output;
    default: return false;
  }
}

// Below ~2^27 multiply-adds per product (a few microseconds of GEMM) the launches saved matter
// more than recomputing act'.
bool prefer_fused(const DenseBackwardArgs<float>& a) {
  return cheap_deriv(a.gate) || double(a.M) * double(a.N) * double(a.K) <= double(1 << 27);
}

}  // namespace

int64_t dense_backward_workspace_bytes(int64_t M, int64_t N) {
  M = std::max<int64_t>(M, 0);
  N = std::max<int64_t>(N, 0);
  return round_up(M * N * int64_t(sizeof(float))) + round_up(N * int64_t(sizeof(float))) +
         round_up(column_sums_workspace_bytes(M, N));
}

int64_t dense_backward_workspace_bytes(int64_t M, int64_t K, int64_t N) {
  M = std::max<int64_t>(M, 0);
  K = std::max<int64_t>(K, 0);
  N = std::max<int64_t>(N, 0);
  return std::max(dense_backward_workspace_bytes(M, N), split_workspace_bytes(M, K, N));
}

DenseBackwardPath dense_backward_path_from_name(const std::string& name) {
  if (name == "auto") return DenseBackwardPath::Auto;
  if (name == "fused") return DenseBackwardPath::Fused;
  if (name == "composed") return DenseBackwardPath::Composed;
  if (name == "fused64") return DenseBackwardPath::Fused64;
  if (name == "fused128") return DenseBackwardPath::Fused128;
  throw ValueError("dense_backward path: expected 'auto', 'fused', 'composed', 'fused64' or "
                   "'fused128', got '" + name + "'");
}

void dense_backward_path(const DenseBackwardArgs<float>& a, void* workspace,
                         int64_t workspace_bytes, void* stream, Precision precision,
                         DenseBackwardPath path) {
  FASTNN_CHECK(a.M >= 0 && a.K >= 0 && a.N >= 0, "cuda dense_backward: negative shape");
  // A pointer may be null only where its matrix is empty (an empty tensor has no address).
  FASTNN_CHECK((a.X || a.M * a.K == 0) && (a.W || a.K * a.N == 0) && (a.dY || a.M * a.N == 0) &&
                   (a.dW || a.K * a.N == 0),
               "cuda dense_backward: X, W, dY and dW are required");
  FASTNN_CHECK(a.ldy >= a.N && a.ldx >= a.K && a.ldw >= a.N && a.lddw >= a.N &&
                   (a.dX == nullptr || a.lddx >= a.K),
               "cuda dense_backward: a row stride is smaller than its row");
  if (a.gate.data && a.gate.from_output &&
      !act_grad_from_output_ok(a.gate.act, double(a.gate.param)))
    throw ValueError(std::string("activation: the gradient of '") + act_name(a.gate.act) +
                     "' with this parameter cannot be computed from its output; pass the input");
  FASTNN_CHECK(path == DenseBackwardPath::Auto || path == DenseBackwardPath::Composed ||
                   precision == Precision::FP32,
               "cuda dense_backward: the fused path is FP32 only (TF32 and BF16 run the "
               "composed path on the tensor-core GEMMs)");
  if (path == DenseBackwardPath::Auto) {
    // The workspace is checked whatever the path, so a caller's sizing error shows on every
    // shape, not only on those the heuristic sends to the composed path.
    FASTNN_CHECK(workspace_bytes >= dense_backward_workspace_bytes(a.M, a.N) && workspace,
                 "cuda dense_backward: workspace too small (need " +
                     std::to_string(dense_backward_workspace_bytes(a.M, a.N)) + " bytes)");
    path = precision == Precision::FP32 && prefer_fused(a) ? DenseBackwardPath::Fused
                                                           : DenseBackwardPath::Composed;
  }
  const auto s = static_cast<cudaStream_t>(stream);
  switch (path) {
    case DenseBackwardPath::Fused64: return run_fused(a, s, 64, workspace, workspace_bytes);
    case DenseBackwardPath::Fused128: return run_fused(a, s, 128, workspace, workspace_bytes);
    case DenseBackwardPath::Fused: return run_fused(a, s, 0, workspace, workspace_bytes);
    default: return run_composed(a, workspace, workspace_bytes, stream, precision);
  }
}

void dense_backward(const DenseBackwardArgs<float>& a, void* workspace, int64_t workspace_bytes,
                    void* stream, Precision precision) {
  dense_backward_path(a, workspace, workspace_bytes, stream, precision, DenseBackwardPath::Auto);
}

}  // namespace cuda
}  // namespace fastnn
