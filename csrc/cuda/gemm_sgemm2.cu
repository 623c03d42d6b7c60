// SGEMM v2: FP32, 128x128 block tile, BK = 8, 256 threads in 2x4 warps of 64x32, each thread an
// 8x8 register tile made of 2x2 sub-tiles of 4x4 (so its shared-memory reads are four 128-bit
// loads per k for 64 FMAs, and a warp's reads hit at most 8 distinct 16-byte words).
//
// Operands are read with 128-bit loads along their unit-stride dimension, which picks how a tile
// is staged: A with unit stride along m (op(A) transposed in memory) and B with unit stride along
// n go to shared memory as float4 stores; A or B with unit stride along k are transposed while
// they are stored (four scalar stores, made conflict-free by padding each k-row to 132 floats).
// The K loop double-buffers: the next tile's global loads are issued into registers before the
// current tile's FMAs and stored into the other shared buffer after them, one barrier per step.
// Edge tiles load zeros outside the matrix (a float4 that straddles the edge is loaded per
// element), and the epilogue stores per element where a float4 would cross N.
#include "cuda/gemm_sgemm2.h"

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "cuda/elem_util.cuh"
#include "cuda/gemm_epilogue.cuh"

namespace fastnn {
namespace cuda {
namespace {

constexpr int BM = 128, BN = 128, BK = 8;
constexpr int THREADS = 256;
constexpr int LDS = BM + 4;  // padded k-row of a shared tile (BM == BN)
constexpr int WARP_M = 64, WARP_N = 32;
constexpr int WARPS_N = BN / WARP_N;  // 4 (and BM / WARP_M == 2)
constexpr int GROUP_M = 8;            // tile rows per L2-friendly launch-order group
static_assert(BM == BN, "one padded row length serves both tiles");
static_assert((BM / WARP_M) * WARPS_N * 32 == THREADS, "2x4 warps");
static_assert(BM * BK == 4 * THREADS && BN * BK == 4 * THREADS, "one float4 per thread per tile");

// Elements (row, col .. col+3) of a matrix stored with unit column stride and row stride ld,
// zero outside rows x cols. ld % 4 == 0, col % 4 == 0 and a 16-byte aligned base make the
// in-bounds float4 aligned.
__device__ __forceinline__ float4 load4(const float* __restrict__ p, int64_t ld, int64_t row,
                                        int64_t rows, int64_t col, int64_t cols) {
  float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
  if (row < rows) {
    const float* q = p + row * ld + col;
    if (col + 3 < cols) {
      v = __ldg(reinterpret_cast<const float4*>(q));
    } else {
      if (col < cols) v.x = __ldg(q);
      if (col + 1 < cols) v.y = __ldg(q + 1);
      if (col + 2 < cols) v.z = __ldg(q + 2);
    }
  }
  return v;
}

// A_KC: A has unit stride along k (op(A) not transposed in memory, ld = rsa); otherwise along m
// (ld = csa). B_KC: B has unit stride along k (ld = csb); otherwise along n (ld = rsb).
template <bool A_KC, bool B_KC>
__global__ void __launch_bounds__(THREADS, 2)
    sgemm2_kernel(const GemmArgs<float> g, int64_t lda, int64_t ldb, int tiles_m, int tiles_n) {
  __shared__ __align__(16) float As[2][BK][LDS];
  __shared__ __align__(16) float Bs[2][BK][LDS];

  // Launch order: groups of GROUP_M tile rows, column-major inside a group, so the blocks that
  // run together share A rows and B columns in L2.
  const int pid = blockIdx.x;
  const int per_group = GROUP_M * tiles_n;
  const int first_m = (pid / per_group) * GROUP_M;
  const int group_rows = min(tiles_m - first_m, GROUP_M);
  const int tile_m = first_m + (pid % per_group) % group_rows;
  const int tile_n = (pid % per_group) / group_rows;
  const int64_t m0 = int64_t(tile_m) * BM, n0 = int64_t(tile_n) * BN;

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int am = (warp / WARPS_N) * WARP_M + (lane / 4) * 4;  // first of rows am + {0,32} + 0..3
  const int bn = (warp % WARPS_N) * WARP_N + (lane % 4) * 4;  // first of cols bn + {0,16} + 0..3

  // This thread's float4 of each tile: (row, col) in the stored layout, col the unit-stride one.
  const int a_row = A_KC ? tid / 2 : tid / 32;
  const int a_col = A_KC ? (tid % 2) * 4 : (tid % 32) * 4;
  const int b_row = B_KC ? tid / 2 : tid / 32;
  const int b_col = B_KC ? (tid % 2) * 4 : (tid % 32) * 4;

  auto load_a = [&](int64_t k0) {
    return A_KC ? load4(g.A, lda, m0 + a_row, g.M, k0 + a_col, g.K)
                : load4(g.A, lda, k0 + a_row, g.K, m0 + a_col, g.M);
  };
  auto load_b = [&](int64_t k0) {
    return B_KC ? load4(g.B, ldb, n0 + b_row, g.N, k0 + b_col, g.K)
                : load4(g.B, ldb, k0 + b_row, g.K, n0 + b_col, g.N);
  };
  auto store = [&](int buf, float4 va, float4 vb) {
    if (A_KC) {
      As[buf][a_col + 0][a_row] = va.x;
      As[buf][a_col + 1][a_row] = va.y;
      As[buf][a_col + 2][a_row] = va.z;
      As[buf][a_col + 3][a_row] = va.w;
    } else {
      *reinterpret_cast<float4*>(&As[buf][a_row][a_col]) = va;
    }
    if (B_KC) {
      Bs[buf][b_col + 0][b_row] = vb.x;
      Bs[buf][b_col + 1][b_row] = vb.y;
      Bs[buf][b_col + 2][b_row] = vb.z;
      Bs[buf][b_col + 3][b_row] = vb.w;
    } else {
      *reinterpret_cast<float4*>(&Bs[buf][b_row][b_col]) = vb;
    }
  };

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

  const int64_t nk = (g.K + BK - 1) / BK;  // >= 1: the host routes K == 0 to v1
  store(0, load_a(0), load_b(0));
  __syncthreads();

  for (int64_t kt = 0; kt < nk; ++kt) {
    const int cur = int(kt & 1);
    const bool more = kt + 1 < nk;
    float4 na = make_float4(0.f, 0.f, 0.f, 0.f), nb = na;
    if (more) {
      na = load_a((kt + 1) * BK);
      nb = load_b((kt + 1) * BK);
    }
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      const float4 a0 = *reinterpret_cast<const float4*>(&As[cur][k][am]);
      const float4 a1 = *reinterpret_cast<const float4*>(&As[cur][k][am + 32]);
      const float4 b0 = *reinterpret_cast<const float4*>(&Bs[cur][k][bn]);
      const float4 b1 = *reinterpret_cast<const float4*>(&Bs[cur][k][bn + 16]);
      const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    // The other buffer was last read before the previous barrier, so it is free to overwrite;
    // the barrier below publishes it and keeps the next overwrite of `cur` behind every read.
    if (more) store(cur ^ 1, na, nb);
    __syncthreads();
  }

  const bool read_c = g.beta != 0.f;  // beta == 0: C is write-only (may hold NaN)
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t m = m0 + am + (i / 4) * 32 + (i % 4);
    if (m >= g.M) continue;
    float* crow = g.C + m * g.rsc;
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      const int64_t n = n0 + bn + s * 16;
      if (n >= g.N) continue;
      float v[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = g.alpha * acc[i][s * 4 + j];
      if (n + 3 < g.N) {
        float4* c4 = reinterpret_cast<float4*>(crow + n);  // aligned: rsc % 4 == 0, n % 4 == 0
        if (read_c) {
          const float4 c = *c4;
          v[0] += g.beta * c.x;
          v[1] += g.beta * c.y;
          v[2] += g.beta * c.z;
          v[3] += g.beta * c.w;
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          if (g.bias) v[j] += g.bias[(n + j) * g.bias_stride];
          v[j] = gemm_detail::apply_act(v[j], g.act, g.act_param);
        }
        *c4 = make_float4(v[0], v[1], v[2], v[3]);
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          if (n + j >= g.N) break;
          float x = v[j];
          if (read_c) x += g.beta * crow[n + j];
          if (g.bias) x += g.bias[(n + j) * g.bias_stride];
          crow[n + j] = gemm_detail::apply_act(x, g.act, g.act_param);
        }
      }
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
bool ld_ok(int64_t ld) { return ld > 0 && ld % 4 == 0; }
bool a_k_contiguous(const GemmArgs<float>& g) { return g.csa == 1 && ld_ok(g.rsa); }
bool a_m_contiguous(const GemmArgs<float>& g) { return g.rsa == 1 && ld_ok(g.csa); }
bool b_k_contiguous(const GemmArgs<float>& g) { return g.rsb == 1 && ld_ok(g.csb); }
bool b_n_contiguous(const GemmArgs<float>& g) { return g.csb == 1 && ld_ok(g.rsb); }

int64_t tiles(int64_t n, int t) { return (n + t - 1) / t; }

template <bool A_KC, bool B_KC>
void launch(const GemmArgs<float>& g, cudaStream_t stream, const char* name) {
  const int64_t tm = tiles(g.M, BM), tn = tiles(g.N, BN);
  const int64_t lda = A_KC ? g.rsa : g.csa, ldb = B_KC ? g.csb : g.rsb;
  elem::clear_launch_error();
  sgemm2_kernel<A_KC, B_KC><<<unsigned(tm * tn), THREADS, 0, stream>>>(g, lda, ldb, int(tm), int(tn));
  elem::check_launch(name);
}

}  // namespace

bool sgemm2_applies(const GemmArgs<float>& g) {
  if (g.M <= 0 || g.N <= 0 || g.K <= 0) return false;
  if (g.gate_a.data || g.gate_b.data || g.colsum_b || g.Z) return false;
  if (!g.A || !g.B || !g.C) return false;
  if (!aligned16(g.A) || !aligned16(g.B) || !aligned16(g.C)) return false;
  if (!a_k_contiguous(g) && !a_m_contiguous(g)) return false;
  if (!b_k_contiguous(g) && !b_n_contiguous(g)) return false;
  if (g.csc != 1 || !ld_ok(g.rsc)) return false;
  const int64_t tm = tiles(g.M, BM), tn = tiles(g.N, BN);
  // int tile indices, and the grouped launch order's products, stay below INT_MAX.
  return tm * tn <= INT_MAX - int64_t(GROUP_M) * tn && tn <= INT_MAX / GROUP_M;
}

bool sgemm2_worth_it(const GemmArgs<float>& g) {
  // At 2 resident blocks per SM, half an SM count of 128x128 tiles already matches the work per
  // SM that v1's four times as many 64x64 tiles would give; below that v1 spreads wider.
  return tiles(g.M, BM) * tiles(g.N, BN) * 2 >= elem::sm_count();
}

void sgemm2(const GemmArgs<float>& g, void* stream_ptr) {
  FASTNN_CHECK(sgemm2_applies(g), "cuda gemm: the v2 kernel does not apply to these operands");
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const bool akc = a_k_contiguous(g), bkc = b_k_contiguous(g);
  if (akc && bkc) launch<true, true>(g, stream, "sgemm2_kernel<A k-major, B k-major>");
  else if (akc) launch<true, false>(g, stream, "sgemm2_kernel<A k-major, B n-major>");
  else if (bkc) launch<false, true>(g, stream, "sgemm2_kernel<A m-major, B k-major>");
  else launch<false, false>(g, stream, "sgemm2_kernel<A m-major, B n-major>");
}

}  // namespace cuda
}  // namespace fastnn

// ---------------------------------------------------------------- TF32 tensor cores (mma.sync)
// The same tiling skeleton on tensor cores: 128x128 block tile, BK = 16, 256 threads in 2x4
// warps of 64x32, each warp a 4x4 grid of m16n8k8 TF32 MMAs (FP32 accumulators, 64 per thread).
// Operands are rounded to TF32 (cvt.rna) once, as they are stored to shared memory. k-rows are
// padded to 136 floats so the fragment reads (lanes: row g = lane/4, k t = lane%4, i.e. address
// t * 136 + g) fall in 32 distinct banks.

namespace fastnn {
namespace cuda {
namespace {

constexpr int TBK = 16;
constexpr int TLDS = BM + 8;
constexpr int T_LOADS = BM * TBK / 4 / THREADS;  // float4s per thread per operand tile: 2
static_assert(T_LOADS * 4 * THREADS == BM * TBK, "whole float4s per thread");

__device__ __forceinline__ float to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return __uint_as_float(r);
}

__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Element (row, col) of the idx-th float4 of a stored tile: KC tiles are BM rows of TBK k's,
// the others TBK rows of BM (or BN) columns.
template <bool KC>
__device__ __forceinline__ void tile_pos(int idx, int& row, int& col) {
  if (KC) {
    row = idx / (TBK / 4);
    col = (idx % (TBK / 4)) * 4;
  } else {
    row = idx / (BM / 4);
    col = (idx % (BM / 4)) * 4;
  }
}

template <bool A_KC, bool B_KC>
__global__ void __launch_bounds__(THREADS, 1)
    gemm_tf32_kernel(const GemmArgs<float> g, int64_t lda, int64_t ldb, int tiles_m, int tiles_n) {
  __shared__ __align__(16) float As[2][TBK][TLDS];
  __shared__ __align__(16) float Bs[2][TBK][TLDS];

  const int pid = blockIdx.x;
  const int per_group = GROUP_M * tiles_n;
  const int first_m = (pid / per_group) * GROUP_M;
  const int group_rows = min(tiles_m - first_m, GROUP_M);
  const int tile_m = first_m + (pid % per_group) % group_rows;
  const int tile_n = (pid % per_group) / group_rows;
  const int64_t m0 = int64_t(tile_m) * BM, n0 = int64_t(tile_n) * BN;

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int wm = (warp / WARPS_N) * WARP_M, wn = (warp % WARPS_N) * WARP_N;
  const int gr = lane / 4, tk = lane % 4;  // the MMA fragments' groupID and thread-in-group

  float4 ra[T_LOADS], rb[T_LOADS];
  auto load = [&](int64_t k0) {
#pragma unroll
    for (int r = 0; r < T_LOADS; ++r) {
      int row, col;
      tile_pos<A_KC>(tid + r * THREADS, row, col);
      ra[r] = A_KC ? load4(g.A, lda, m0 + row, g.M, k0 + col, g.K)
                   : load4(g.A, lda, k0 + row, g.K, m0 + col, g.M);
      tile_pos<B_KC>(tid + r * THREADS, row, col);
      rb[r] = B_KC ? load4(g.B, ldb, n0 + row, g.N, k0 + col, g.K)
                   : load4(g.B, ldb, k0 + row, g.K, n0 + col, g.N);
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int r = 0; r < T_LOADS; ++r) {
      int row, col;
      const float4 va = make_float4(to_tf32(ra[r].x), to_tf32(ra[r].y), to_tf32(ra[r].z),
                                    to_tf32(ra[r].w));
      tile_pos<A_KC>(tid + r * THREADS, row, col);
      if (A_KC) {
        As[buf][col + 0][row] = va.x;
        As[buf][col + 1][row] = va.y;
        As[buf][col + 2][row] = va.z;
        As[buf][col + 3][row] = va.w;
      } else {
        *reinterpret_cast<float4*>(&As[buf][row][col]) = va;
      }
      const float4 vb = make_float4(to_tf32(rb[r].x), to_tf32(rb[r].y), to_tf32(rb[r].z),
                                    to_tf32(rb[r].w));
      tile_pos<B_KC>(tid + r * THREADS, row, col);
      if (B_KC) {
        Bs[buf][col + 0][row] = vb.x;
        Bs[buf][col + 1][row] = vb.y;
        Bs[buf][col + 2][row] = vb.z;
        Bs[buf][col + 3][row] = vb.w;
      } else {
        *reinterpret_cast<float4*>(&Bs[buf][row][col]) = vb;
      }
    }
  };

  float acc[4][4][4];  // [m16 tile][n8 tile][fragment element]
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  const int64_t nk = (g.K + TBK - 1) / TBK;  // >= 1
  load(0);
  store(0);
  __syncthreads();

  for (int64_t kt = 0; kt < nk; ++kt) {
    const int cur = int(kt & 1);
    const bool more = kt + 1 < nk;
    if (more) load((kt + 1) * TBK);
#pragma unroll
    for (int ks = 0; ks < TBK; ks += 8) {
      uint32_t af[4][4], bf[4][2];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int m = wm + i * 16 + gr;
        af[i][0] = __float_as_uint(As[cur][ks + tk][m]);
        af[i][1] = __float_as_uint(As[cur][ks + tk][m + 8]);
        af[i][2] = __float_as_uint(As[cur][ks + tk + 4][m]);
        af[i][3] = __float_as_uint(As[cur][ks + tk + 4][m + 8]);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int n = wn + j * 8 + gr;
        bf[j][0] = __float_as_uint(Bs[cur][ks + tk][n]);
        bf[j][1] = __float_as_uint(Bs[cur][ks + tk + 4][n]);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) mma_tf32(acc[i][j], af[i], bf[j]);
    }
    if (more) store(cur ^ 1);
    __syncthreads();
  }

  // Accumulator element e of tile (i, j) sits at row gr (+8 for e >= 2), columns 2*tk + (e & 1).
  const bool read_c = g.beta != 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t m = m0 + wm + i * 16 + gr + h * 8;
      if (m >= g.M) continue;
      float* crow = g.C + m * g.rsc;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t n = n0 + wn + j * 8 + tk * 2;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          if (n + e >= g.N) break;
          float x = g.alpha * acc[i][j][h * 2 + e];
          if (read_c) x += g.beta * crow[n + e];
          if (g.bias) x += g.bias[(n + e) * g.bias_stride];
          crow[n + e] = gemm_detail::apply_act(x, g.act, g.act_param);
        }
      }
    }
  }
}

template <bool A_KC, bool B_KC>
void launch_tf32(const GemmArgs<float>& g, cudaStream_t stream, const char* name) {
  const int64_t tm = tiles(g.M, BM), tn = tiles(g.N, BN);
  const int64_t lda = A_KC ? g.rsa : g.csa, ldb = B_KC ? g.csb : g.rsb;
  elem::clear_launch_error();
  gemm_tf32_kernel<A_KC, B_KC>
      <<<unsigned(tm * tn), THREADS, 0, stream>>>(g, lda, ldb, int(tm), int(tn));
  elem::check_launch(name);
}

}  // namespace

void gemm_tf32_v2(const GemmArgs<float>& g, void* stream_ptr) {
  FASTNN_CHECK(sgemm2_applies(g),
               "cuda gemm_tf32: needs K > 0, unit-stride rows or columns with leading dimensions "
               "a multiple of 4, 16-byte aligned pointers and no gates");
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const bool akc = a_k_contiguous(g), bkc = b_k_contiguous(g);
  if (akc && bkc) launch_tf32<true, true>(g, stream, "gemm_tf32_kernel<A k-major, B k-major>");
  else if (akc) launch_tf32<true, false>(g, stream, "gemm_tf32_kernel<A k-major, B n-major>");
  else if (bkc) launch_tf32<false, true>(g, stream, "gemm_tf32_kernel<A m-major, B k-major>");
  else launch_tf32<false, false>(g, stream, "gemm_tf32_kernel<A m-major, B n-major>");
}

}  // namespace cuda
}  // namespace fastnn
