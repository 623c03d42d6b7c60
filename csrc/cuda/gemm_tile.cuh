// Pieces shared by the 128x128-tile GEMM kernels (gemm_sgemm2.cu: FP32 v2; gemm_tf32.cu: TF32
// tensor cores): the block shape, the predicated float4 operand load, the L2-friendly launch
// order, and the host-side layout tests that decide which kernel instance runs.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cpu/gemm.h"

namespace fastnn {
namespace cuda {
namespace gemm_tile {

constexpr int BM = 128, BN = 128;
constexpr int THREADS = 256;
constexpr int WARP_M = 64, WARP_N = 32;
constexpr int WARPS_N = BN / WARP_N;  // 4 (and BM / WARP_M == 2)
constexpr int GROUP_M = 8;            // tile rows per L2-friendly launch-order group
static_assert(BM == BN, "one padded row length serves both tiles");
static_assert((BM / WARP_M) * WARPS_N * 32 == THREADS, "2x4 warps");

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

// The tile of this block: a 1-D grid walked in groups of GROUP_M tile rows, column-major inside
// a group, so the blocks that run together share A rows and B columns in L2.
__device__ __forceinline__ void block_tile(int tiles_m, int tiles_n, int& tile_m, int& tile_n) {
  const int pid = blockIdx.x;
  const int per_group = GROUP_M * tiles_n;
  const int first_m = (pid / per_group) * GROUP_M;
  const int group_rows = min(tiles_m - first_m, GROUP_M);
  tile_m = first_m + (pid % per_group) % group_rows;
  tile_n = (pid % per_group) / group_rows;
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
inline bool ld_ok(int64_t ld) { return ld > 0 && ld % 4 == 0; }
inline bool a_k_contiguous(const GemmArgs<float>& g) { return g.csa == 1 && ld_ok(g.rsa); }
inline bool a_m_contiguous(const GemmArgs<float>& g) { return g.rsa == 1 && ld_ok(g.csa); }
inline bool b_k_contiguous(const GemmArgs<float>& g) { return g.rsb == 1 && ld_ok(g.csb); }
inline bool b_n_contiguous(const GemmArgs<float>& g) { return g.csb == 1 && ld_ok(g.rsb); }

inline int64_t tiles(int64_t n, int t) { return (n + t - 1) / t; }

}  // namespace gemm_tile
}  // namespace cuda
}  // namespace fastnn
