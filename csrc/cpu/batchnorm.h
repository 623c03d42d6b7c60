// Batch normalization on the CPU: the contract of core/ops/batchnorm.h. Statistics are
// two-pass in double (mean first, then squared deviations) and every column sum comes from
// reduce.h's column_sums: thread-invariant, row-major access.
#pragma once
#include <cstdint>

#include "core/ops/batchnorm.h"

namespace fastnn {
namespace cpu {

// Training forward. N < 2 -> ValueError (no variance from one sample; torch refuses too).
template <class T>
void batch_norm_forward_train(const BatchNormArgs<T>& a);

// Inference forward with the running statistics (both required). N may be 0.
template <class T>
void batch_norm_forward_infer(const BatchNormArgs<T>& a);

// dy, x (N, F), N > 0; save_mean / save_invstd from the training forward. Writes dx (N, F),
// dgamma and dbeta (F,). Two sweeps over the data: the two sums, then dx.
template <class T>
void batch_norm_backward(const T* dy, const T* x, int64_t N, int64_t F, const T* gamma,
                         const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta);

}  // namespace cpu
}  // namespace fastnn
