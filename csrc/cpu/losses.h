// The CPU losses: the contract of core/ops/losses.h. Work is split into chunks whose size
// depends only on the data shape, and the per-chunk sums are added in chunk order, so the loss
// and gradient are bit-identical for any thread count.
#pragma once
#include <cstdint>

#include "core/ops/losses.h"

namespace fastnn {
namespace cpu {

double softmax_cross_entropy(const SoftmaxXentArgs<float>& a);
double softmax_cross_entropy(const SoftmaxXentArgs<double>& a);

// Means over n > 0 elements; grad has n elements.
double binary_cross_entropy_with_logits(const float* x, const float* t, int64_t n, float* grad);
double binary_cross_entropy_with_logits(const double* x, const double* t, int64_t n, double* grad);
double mse(const float* p, const float* t, int64_t n, float* grad);
double mse(const double* p, const double* t, int64_t n, double* grad);
double mae(const float* p, const float* t, int64_t n, float* grad);
double mae(const double* p, const double* t, int64_t n, double* grad);

}  // namespace cpu
}  // namespace fastnn
