// The CPU optimizers: the contract of core/ops/optim.h. The elements of all tensors are cut
// into fixed-size chunks (chunk boundaries depend on the tensor sizes alone) and the chunks are
// spread over the thread pool, so a list of many small tensors costs one dispatch, not one per
// tensor; the norms add per-chunk double sums in chunk order, which makes them thread-invariant.
#pragma once
#include <cstdint>

#include "core/ops/optim.h"

namespace fastnn {
namespace cpu {

void sgd_step(const OptimTensor<float>* t, int64_t count, const SgdOptions& o);
void sgd_step(const OptimTensor<double>* t, int64_t count, const SgdOptions& o);
void adam_step(const OptimTensor<float>* t, int64_t count, const AdamOptions& o);
void adam_step(const OptimTensor<double>* t, int64_t count, const AdamOptions& o);
void adagrad_step(const OptimTensor<float>* t, int64_t count, const AdagradOptions& o);
void adagrad_step(const OptimTensor<double>* t, int64_t count, const AdagradOptions& o);
void rmsprop_step(const OptimTensor<float>* t, int64_t count, const RmspropOptions& o);
void rmsprop_step(const OptimTensor<double>* t, int64_t count, const RmspropOptions& o);

// sqrt(sum over all tensors of sum x^2), accumulated in double; data[i] has sizes[i] elements.
// May be inf or NaN when an element is.
double global_norm(const float* const* data, const int64_t* sizes, int64_t count);
double global_norm(const double* const* data, const int64_t* sizes, int64_t count);

// The sum of x^2 over all tensors, added in global_norm's order (global_norm is its square
// root), and, when per_tensor is not null, each tensor's own sum in per_tensor[i]: one parallel
// pass serves both a clipping norm and per-layer diagnostics.
double sums_of_squares(const float* const* data, const int64_t* sizes, int64_t count,
                       double* per_tensor);
double sums_of_squares(const double* const* data, const int64_t* sizes, int64_t count,
                       double* per_tensor);

// x *= factor for every element of every tensor (the factor is rounded to T first).
void scale_tensors(float* const* data, const int64_t* sizes, int64_t count, double factor);
void scale_tensors(double* const* data, const int64_t* sizes, int64_t count, double factor);

}  // namespace cpu
}  // namespace fastnn
