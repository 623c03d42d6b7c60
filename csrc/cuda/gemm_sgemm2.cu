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

#include "core/act_math.h"
#include "core/error.h"
#include "cuda/elem_util.cuh"
#include "cuda/gemm_tile.cuh"

namespace fastnn {
namespace cuda {
namespace {

using namespace gemm_tile;

constexpr int BK = 8;
constexpr int LDS = BM + 4;  // padded k-row of a shared tile (BM == BN)
static_assert(BM * BK == 4 * THREADS && BN * BK == 4 * THREADS, "one float4 per thread per tile");

// A_KC: A has unit stride along k (op(A) not transposed in memory, ld = rsa); otherwise along m
// (ld = csa). B_KC: B has unit stride along k (ld = csb); otherwise along n (ld = rsb).
template <bool A_KC, bool B_KC>
__global__ void __launch_bounds__(THREADS, 2)
    sgemm2_kernel(const GemmArgs<float> g, int64_t lda, int64_t ldb, int tiles_m, int tiles_n) {
  __shared__ __align__(16) float As[2][BK][LDS];
  __shared__ __align__(16) float Bs[2][BK][LDS];

  int tile_m, tile_n;
  block_tile(tiles_m, tiles_n, tile_m, tile_n);
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
          v[j] = act_math::forward(g.act, g.act_param, v[j]);
        }
        *c4 = make_float4(v[0], v[1], v[2], v[3]);
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          if (n + j >= g.N) break;
          float x = v[j];
          if (read_c) x += g.beta * crow[n + j];
          if (g.bias) x += g.bias[(n + j) * g.bias_stride];
          crow[n + j] = act_math::forward(g.act, g.act_param, x);
        }
      }
    }
  }
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
  launch_by_layout(g, stream, "sgemm2_kernel", [](auto a_kc, auto b_kc) -> TileKernel {
    return sgemm2_kernel<decltype(a_kc)::value, decltype(b_kc)::value>;
  });
}

}  // namespace cuda
}  // namespace fastnn
