// Dense-layer backward on the GPU, composed from the other kernels: dZ is formed by the
// activation-gradient kernel into the workspace, then two GEMMs and a column sum. A fused version
// (dZ formed while the GEMMs stage their operands) replaces the middle of this file.
#include "cuda/dense.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "core/error.h"
#include "cuda/activations.h"
#include "cuda/elem_util.cuh"
#include "cuda/reduce.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int64_t kAlign = 256;
int64_t round_up(int64_t b) { return (b + kAlign - 1) / kAlign * kAlign; }

__global__ void add_into(float* __restrict__ dst, const float* __restrict__ src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] += src[i];
}

}  // namespace

int64_t dense_backward_workspace_bytes(int64_t M, int64_t N) {
  M = std::max<int64_t>(M, 0);
  N = std::max<int64_t>(N, 0);
  return round_up(M * N * int64_t(sizeof(float))) + round_up(N * int64_t(sizeof(float))) +
         round_up(column_sums_workspace_bytes(M, N));
}

void dense_backward(const DenseBackwardArgs<float>& a, void* workspace, int64_t workspace_bytes,
                    void* stream, Precision precision) {
  FASTNN_CHECK(a.M >= 0 && a.K >= 0 && a.N >= 0, "cuda dense_backward: negative shape");
  FASTNN_CHECK(a.X && a.W && a.dY && a.dW, "cuda dense_backward: X, W, dY and dW are required");
  FASTNN_CHECK(a.ldy >= a.N && a.ldx >= a.K && a.ldw >= a.N && a.lddw >= a.N &&
                   (a.dX == nullptr || a.lddx >= a.K),
               "cuda dense_backward: a row stride is smaller than its row");
  FASTNN_CHECK(workspace_bytes >= dense_backward_workspace_bytes(a.M, a.N) && workspace,
               "cuda dense_backward: workspace too small (need " +
                   std::to_string(dense_backward_workspace_bytes(a.M, a.N)) + " bytes)");
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
  if (a.gate.data) {
    FASTNN_CHECK(a.ldy == a.N, "cuda dense_backward: a gated dY must be contiguous (ldy == N)");
    if (a.gate.from_output)
      act_backward_from_output<float>(a.gate.act, a.gate.param, a.dY, a.gate.data, dZ,
                                      a.M * a.N, stream);
    else
      act_backward<float>(a.gate.act, a.gate.param, a.dY, a.gate.data, dZ, a.M * a.N, stream);
    dz = dZ;
    lddz = a.N;
  }

  // dW (K, N) (+)= X^T (K, M) @ dZ (M, N)
  GemmArgs<float> gw;
  gw.M = a.K; gw.N = a.N; gw.K = a.M;
  gw.A = a.X; gw.rsa = 1; gw.csa = a.ldx;
  gw.B = dz; gw.rsb = lddz; gw.csb = 1;
  gw.C = a.dW; gw.rsc = a.lddw; gw.csc = 1;
  gw.beta = a.accumulate ? 1.0f : 0.0f;
  if (a.M == 0 && !a.accumulate) gw.K = 0;  // dW = 0
  gemm_precision(gw, stream, precision);

  if (a.db) {
    FASTNN_CHECK(lddz == a.N, "cuda dense_backward: the bias gradient needs a contiguous dY");
    float* target = a.accumulate ? db_tmp : a.db;
    sum_rows<float>(dz, a.M, a.N, target, false, colsum_ws, colsum_bytes, stream);
    if (a.accumulate && a.N > 0) {
      elem::clear_launch_error();
      add_into<<<elem::grid_for(a.N), elem::kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
          a.db, db_tmp, a.N);
      elem::check_launch("dense_backward add_into");
    }
  }

  if (a.dX && a.M > 0 && a.K > 0) {
    // dX (M, K) = dZ (M, N) @ W^T (N, K)
    GemmArgs<float> gx;
    gx.M = a.M; gx.N = a.K; gx.K = a.N;
    gx.A = dz; gx.rsa = lddz; gx.csa = 1;
    gx.B = a.W; gx.rsb = 1; gx.csb = a.ldw;
    gx.C = a.dX; gx.rsc = a.lddx; gx.csc = 1;
    gemm_precision(gx, stream, precision);
  }
}

}  // namespace cuda
}  // namespace fastnn
