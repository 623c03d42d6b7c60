// Pieces shared by the 128x128-tile GEMM kernels (gemm_sgemm2.cu: FP32 v2; gemm_tf32.cu: TF32
// and gemm_bf16.cu: BF16 tensor cores): the block shape, the predicated float4 operand load, the
// L2-friendly launch order, the host-side layout tests that decide which kernel instance runs,
// and the launch itself.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "core/ops/gemm.h"
#include "cuda/elem_util.cuh"

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

// The signature of every 128x128-tile kernel: arguments, the leading dimensions of A and B in
// their k-contiguous or m/n-contiguous layout, and the tile grid.
using TileKernel = void (*)(const GemmArgs<float>, int64_t, int64_t, int, int);

// Launches kernel<A_KC, B_KC> for g's operand layout (one instance per layout: A k- or
// m-contiguous, B k- or n-contiguous) on a 1-D grid of 128x128 tiles. instance(a_kc, b_kc)
// returns the instance (the flags are std::integral_constant<bool, ...>); `name` + the layout
// names it in launch errors.
template <class Instance>
void launch_by_layout(const GemmArgs<float>& g, cudaStream_t stream, const char* name,
                      Instance instance) {
  const bool akc = a_k_contiguous(g), bkc = b_k_contiguous(g);
  const TileKernel kernel =
      akc ? (bkc ? instance(std::true_type(), std::true_type())
                 : instance(std::true_type(), std::false_type()))
          : (bkc ? instance(std::false_type(), std::true_type())
                 : instance(std::false_type(), std::false_type()));
  const int64_t tm = tiles(g.M, BM), tn = tiles(g.N, BN);
  const int64_t lda = akc ? g.rsa : g.csa, ldb = bkc ? g.csb : g.rsb;
  clear_launch_error();
  kernel<<<unsigned(tm * tn), THREADS, 0, stream>>>(g, lda, ldb, int(tm), int(tn));
  check_launch((std::string(name) + (akc ? "<A k-major, " : "<A m-major, ") +
                      (bkc ? "B k-major>" : "B n-major>")).c_str());
}

}  // namespace gemm_tile
}  // namespace cuda
}  // namespace fastnn
