// The TF32 tensor-core GEMM (mma.sync): the tiling skeleton of SGEMM v2 (gemm_sgemm2.cu) on
// tensor cores. 128x128 block tile, BK = 16, 256 threads in 2x4 warps of 64x32, each warp a
// 4x4 grid of m16n8k8 TF32 MMAs (FP32 accumulators, 64 per thread). Operands are rounded to
// TF32 (cvt.rna) once, as they are stored to shared memory. k-rows are padded to 136 floats so
// the fragment reads (lanes: row g = lane/4, k t = lane%4, i.e. address t * 136 + g) fall in
// 32 distinct banks.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/act_math.h"
#include "core/error.h"
#include "cuda/elem_util.cuh"
#include "cuda/gemm_sgemm2.h"
#include "cuda/gemm_tile.cuh"

namespace fastnn {
namespace cuda {
namespace {

using namespace gemm_tile;

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

  int tile_m, tile_n;
  block_tile(tiles_m, tiles_n, tile_m, tile_n);
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
          crow[n + e] = act_math::forward(g.act, g.act_param, x);
        }
      }
    }
  }
}

}  // namespace

void gemm_tf32_v2(const GemmArgs<float>& g, void* stream_ptr) {
  FASTNN_CHECK(sgemm2_applies(g),
               "cuda gemm_tf32: needs K > 0, unit-stride rows or columns with leading dimensions "
               "a multiple of 4, 16-byte aligned pointers and no gates");
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  launch_by_layout(g, stream, "gemm_tf32_kernel", [](auto a_kc, auto b_kc) -> TileKernel {
    return gemm_tf32_kernel<decltype(a_kc)::value, decltype(b_kc)::value>;
  });
}

}  // namespace cuda
}  // namespace fastnn
