// Sampled softmax on the CPU: the contract of core/ops/sampled.h. Phase 1 (the sample and the
// touched columns, sampled_softmax_plan) is core's; phase 2, the loss and its gradients, is here.
#pragma once
#include <cstdint>

#include "core/ops/sampled.h"

namespace fastnn {
namespace cpu {

// Phase 2: returns the mean loss and writes dh (N, D), dW_cols (D, k) = dloss/dW[:, cols] and,
// when b is given, db_cols (k,) = dloss/db[cols]. Bit-identical for any thread count.
template <class T>
double sampled_softmax_cross_entropy(const SampledSoftmaxArgs<T>& a, const SampledPlan& plan,
                                     T* dh, T* dW_cols, T* db_cols);

// dW[:, cols] += dW_cols and db[cols] += db_cols (db / db_cols may be null); cols distinct and
// in [0, C). dW (D, C) and dW_cols (D, k) C-contiguous. Other columns are not touched.
template <class T>
void scatter_add_columns(const int64_t* cols, int64_t k, int64_t D, int64_t C, const T* dW_cols,
                         const T* db_cols, T* dW, T* db);

}  // namespace cpu
}  // namespace fastnn
