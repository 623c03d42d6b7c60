// The first, deliberately plain CUDA SGEMM: a 64x64 block tile staged through shared memory in
// K steps of 16, each of 256 threads accumulating a 4x4 register tile. Loads go through the
// general strides and are bounds-checked, so every layout, transpose and edge tile takes the same
// path. It is the general fallback: cuda::gemm sends the common layouts to v2 (gemm_sgemm2.cu).
#include "cuda/gemm.h"

#include <cuda_runtime.h>

#include <climits>
#include <string>

#include "core/act_math.h"
#include "core/cuda_check.h"
#include "core/error.h"
#include "cuda/gemm_sgemm2.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16;
constexpr int TM = 4, TN = 4;
constexpr int THREADS_X = BN / TN;  // 16
constexpr int THREADS_Y = BM / TM;  // 16
constexpr int THREADS = THREADS_X * THREADS_Y;
static_assert((BM * BK) % THREADS == 0 && (BK * BN) % THREADS == 0,
              "every thread must load the same number of tile elements");

// Threads own rows ty + 16*i and columns tx + 16*j (interleaved rather than 4 adjacent ones):
// a warp then reads 16 consecutive floats of a B row from shared memory without bank conflicts,
// and its stores to a row-major C are contiguous.
__global__ void __launch_bounds__(THREADS) sgemm_tiled(const GemmArgs<float> g) {
  // A is kept k-major so the inner loop reads a column of the A tile as a row; the +1 pad
  // spreads the (k-fastest) stores of a warp over distinct banks.
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN];

  const int tx = threadIdx.x % THREADS_X, ty = threadIdx.x / THREADS_X;
  const int64_t m0 = int64_t(blockIdx.y) * BM, n0 = int64_t(blockIdx.x) * BN;

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

  for (int64_t k0 = 0; k0 < g.K; k0 += BK) {
    // Zero-filling outside the matrix lets the edge tiles run the full, branch-free inner loop.
#pragma unroll
    for (int r = 0; r < (BM * BK) / THREADS; ++r) {
      const int e = threadIdx.x + r * THREADS;
      const int mm = e / BK, kk = e % BK;
      const int64_t m = m0 + mm, k = k0 + kk;
      As[kk][mm] = (m < g.M && k < g.K) ? g.A[m * g.rsa + k * g.csa] : 0.f;
    }
#pragma unroll
    for (int r = 0; r < (BK * BN) / THREADS; ++r) {
      const int e = threadIdx.x + r * THREADS;
      const int kk = e / BN, nn = e % BN;
      const int64_t k = k0 + kk, n = n0 + nn;
      Bs[kk][nn] = (k < g.K && n < g.N) ? g.B[k * g.rsb + n * g.csb] : 0.f;
    }
    __syncthreads();

#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[kk][ty + THREADS_Y * i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tx + THREADS_X * j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    // The next iteration overwrites the tiles that slower warps may still be reading.
    __syncthreads();
  }

  const bool read_c = g.beta != 0.f;  // beta == 0: C may hold NaN or garbage and is never read
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t m = m0 + ty + THREADS_Y * i;
    if (m >= g.M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t n = n0 + tx + THREADS_X * j;
      if (n >= g.N) continue;
      float* c = g.C + m * g.rsc + n * g.csc;
      float v = g.alpha * acc[i][j];
      if (read_c) v += g.beta * *c;
      if (g.bias) v += g.bias[n * g.bias_stride];
      *c = act_math::forward(g.act, g.act_param, v);
    }
  }
}


}  // namespace

void gemm_variant(const GemmArgs<float>& g, void* stream, GemmVariant variant) {
  FASTNN_CHECK(g.M >= 0 && g.N >= 0 && g.K >= 0, "cuda gemm: M, N and K must be non-negative");
  if (g.M == 0 || g.N == 0) return;
  FASTNN_CHECK(g.C != nullptr, "cuda gemm: C is null");
  FASTNN_CHECK(g.K == 0 || (g.A != nullptr && g.B != nullptr), "cuda gemm: A or B is null");

  if (variant == GemmVariant::BF16 && g.K > 0) {
    gemm_bf16_v2(g, stream);
    return;
  }
  if (variant == GemmVariant::TF32 && g.K > 0) {
    gemm_tf32_v2(g, stream);  // ValueError unless the v2 layout conditions hold
    return;
  }
  if (variant == GemmVariant::V2 ||
      (variant == GemmVariant::Auto && sgemm2_applies(g) && sgemm2_worth_it(g))) {
    FASTNN_CHECK(sgemm2_applies(g),
                 "cuda gemm: the v2 kernel needs K > 0, unit-stride rows or columns with "
                 "leading dimensions a multiple of 4, 16-byte aligned pointers, no gates");
    sgemm2(g, stream);
    return;
  }

  const int64_t grid_x = (g.N + BN - 1) / BN, grid_y = (g.M + BM - 1) / BM;
  FASTNN_CHECK(grid_x <= INT_MAX && grid_y <= 65535,
               "cuda gemm: matrix too large for one launch (M " + std::to_string(g.M) +
                   ", N " + std::to_string(g.N) + ")");

  // A launch error from earlier, unrelated work would otherwise be blamed on this kernel.
  cudaGetLastError();
  sgemm_tiled<<<dim3(unsigned(grid_x), unsigned(grid_y)), THREADS, 0,
                static_cast<cudaStream_t>(stream)>>>(g);
  check_launch("sgemm_tiled");
}

GemmVariant gemm_variant_from_name(const std::string& name) {
  if (name == "auto") return GemmVariant::Auto;
  if (name == "v1") return GemmVariant::V1;
  if (name == "v2") return GemmVariant::V2;
  if (name == "tf32") return GemmVariant::TF32;
  if (name == "bf16") return GemmVariant::BF16;
  throw ValueError("gemm variant: expected 'auto', 'v1', 'v2', 'tf32' or 'bf16', got '" + name +
                   "'");
}

GemmVariant gemm_variant_for(Precision p) {
  switch (p) {
    case Precision::TF32: return GemmVariant::TF32;
    case Precision::BF16: return GemmVariant::BF16;
    default: return GemmVariant::Auto;
  }
}

void gemm_precision(const GemmArgs<float>& g, void* stream, Precision precision) {
  const bool tensor_cores = precision != Precision::FP32 && g.K > 0 && sgemm2_applies(g);
  gemm_variant(g, stream, tensor_cores ? gemm_variant_for(precision) : GemmVariant::Auto);
}

void gemm_bf16(const GemmArgs<float>& g, void* stream) {
  gemm_variant(g, stream, GemmVariant::BF16);
}

void gemm_tf32(const GemmArgs<float>& g, void* stream) {
  gemm_variant(g, stream, GemmVariant::TF32);
}

void gemm(const GemmArgs<float>& g, void* stream) { gemm_variant(g, stream, GemmVariant::Auto); }

}  // namespace cuda
}  // namespace fastnn
