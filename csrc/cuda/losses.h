// Loss kernels on the GPU: the contract and formulas of core/ops/losses.h, with device pointers.
//
// Each loss is enqueued on `stream` (cudaStream_t; nullptr = legacy default) as a few kernels
// that write the gradient and leave the mean loss (double) and an error code in a caller-provided
// device workspace of loss_workspace_bytes() bytes -- no allocation per call, no synchronisation.
// loss_result() then waits for the stream and returns the loss, or throws ValueError for what the
// kernels found (a label outside [0, C), labelled class weights summing to zero); in that case the
// gradient has not been written. Sums are per-block partials in double added in a fixed order by
// a second tiny kernel, over a partition that depends only on the shapes: the same inputs give
// the same bits on any GPU, run after run.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/ops/losses.h"

namespace fastnn {
namespace cuda {

// Bytes of device workspace one loss call needs (a small constant, about 8 KiB); the caller
// keeps it alive until loss_result() has returned. Any alignment of at least 8 bytes.
size_t loss_workspace_bytes();

// Softmax cross-entropy, one fused pass per row (online max and sum, then loss and gradient):
// index labels (int64, (N,)) with optional class weights (torch's weighted mean), or
// probability rows (N, C); label smoothing in [0, 1]. 4 lanes per row up to 4 classes, 16 up
// to 16, a warp up to 1024, a block above. Host-side argument errors throw ValueError at once.
void softmax_cross_entropy(const SoftmaxXentArgs<float>& a, void* workspace,
                           void* stream = nullptr);
void softmax_cross_entropy(const SoftmaxXentArgs<double>& a, void* workspace,
                           void* stream = nullptr);

// Means over n > 0 elements; grad (n,) may alias an input (each element is read, then written,
// by the same thread).
void binary_cross_entropy_with_logits(const float* x, const float* t, int64_t n, float* grad,
                                      void* workspace, void* stream = nullptr);
void binary_cross_entropy_with_logits(const double* x, const double* t, int64_t n, double* grad,
                                      void* workspace, void* stream = nullptr);
void mse(const float* p, const float* t, int64_t n, float* grad, void* workspace,
         void* stream = nullptr);
void mse(const double* p, const double* t, int64_t n, double* grad, void* workspace,
         void* stream = nullptr);
void mae(const float* p, const float* t, int64_t n, float* grad, void* workspace,
         void* stream = nullptr);
void mae(const double* p, const double* t, int64_t n, double* grad, void* workspace,
         void* stream = nullptr);

// Waits for `stream` and returns the loss the last call on `workspace` computed; throws
// ValueError for bad labels / weights, CudaError (naming `what`) if the kernels failed.
double loss_result(const void* workspace, void* stream, const char* what);

}  // namespace cuda
}  // namespace fastnn
