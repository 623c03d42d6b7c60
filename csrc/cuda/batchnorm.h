// Batch normalization of a row-major (N, F) device matrix, one statistic per feature: the
// contract and formulas of core/ops/batchnorm.h (torch.nn.BatchNorm1d), with the arrays (BatchNormArgs
// pointers, dy, dx, ...) in device memory.
//
// Statistics are per-thread Welford in double, merged (Chan's formula) in a fixed order: the
// eight row lanes of a block, then the row chunks of reduce.h's column_tiling, so the results are
// deterministic. The backward's two sums (sum dy, sum dy * xhat) follow the same partial/finish
// scheme; the element-wise passes (normalize, dx) compute in double as the CPU does.
//
// Each call needs batch_norm_workspace_bytes(N, F) bytes of device workspace (partials and the
// per-feature coefficients), launches three kernels on `stream` (a cudaStream_t; null = the
// legacy default stream), never synchronises, and throws CudaError naming a kernel whose launch
// fails, ValueError for bad arguments.
#pragma once
#include <cstdint>

#include "core/ops/batchnorm.h"

namespace fastnn {
namespace cuda {

int64_t batch_norm_workspace_bytes(int64_t N, int64_t F);

// Training forward: y, save_mean, save_invstd, and the running stats when given. N >= 2.
template <class T>
void batch_norm_forward_train(const BatchNormArgs<T>& a, void* workspace,
                              int64_t workspace_bytes, void* stream = nullptr);

// Inference forward with running_mean / running_var (both required).
template <class T>
void batch_norm_forward_infer(const BatchNormArgs<T>& a, void* workspace,
                              int64_t workspace_bytes, void* stream = nullptr);

// dy, x (N, F), N >= 1 -> dx (N, F), dgamma, dbeta (F,); gamma may be null.
template <class T>
void batch_norm_backward(const T* dy, const T* x, int64_t N, int64_t F, const T* gamma,
                         const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta,
                         void* workspace, int64_t workspace_bytes, void* stream = nullptr);

}  // namespace cuda
}  // namespace fastnn
