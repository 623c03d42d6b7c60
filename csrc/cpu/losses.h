// Loss kernels: each returns the mean loss and writes its gradient in the same pass over the
// data. Every array is C-contiguous (fastnn/_losses.py makes them so). Work is split into
// chunks whose size depends only on the data shape, and the per-chunk sums are added in chunk
// order, so the loss and gradient are bit-identical for any thread count.
#pragma once
#include <cstdint>

namespace fastnn {
namespace cpu {

template <class T>
struct SoftmaxXentArgs {
  const T* logits = nullptr;  // (N, C)
  int64_t N = 0, C = 0;
  // Exactly one of labels / probs is set.
  const int64_t* labels = nullptr;  // (N,) class indices in [0, C)
  const T* probs = nullptr;         // (N, C) target distributions
  const T* weight = nullptr;        // (C,) class weights, or null for all ones
  double label_smoothing = 0.0;     // in [0, 1]
  T* grad = nullptr;                // (N, C) d loss / d logits
};

// Throws ValueError on N == 0, a label outside [0, C), or (index labels with class weights)
// labelled weights that sum to zero, before touching grad.
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
