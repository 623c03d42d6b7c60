// Batch normalization over the rows of a row-major (N, F) matrix, one statistic per feature,
// exactly as torch.nn.BatchNorm1d computes it:
//   training:  mean, var = batch mean and BIASED variance; y = (x - mean) * invstd * gamma + beta
//              with invstd = 1 / sqrt(var + eps); running stats, when given, become
//              running = (1 - momentum) * running + momentum * batch, the batch variance
//              UNBIASED (times N / (N - 1)) there.
//   inference: the same with running_mean / running_var in place of the batch statistics.
//   backward:  dx = gamma * invstd / N * (N dy - sum(dy) - xhat * sum(dy * xhat)),
//              dgamma = sum(dy * xhat), dbeta = sum(dy), xhat = (x - mean) * invstd.
// Statistics are two-pass in double (mean first, then squared deviations) and every column
// sum comes from reduce.h's column_sums: thread-invariant, row-major access.
// All arrays are C-contiguous; gamma and beta may be null (scale 1, shift 0).
#pragma once
#include <cstdint>

namespace fastnn {
namespace cpu {

template <class T>
struct BatchNormArgs {
  const T* x = nullptr;  // (N, F)
  int64_t N = 0, F = 0;
  const T* gamma = nullptr;   // (F,) or null
  const T* beta = nullptr;    // (F,) or null
  T* running_mean = nullptr;  // (F,): updated when training, read when not; may be null when training
  T* running_var = nullptr;   // (F,) likewise
  double momentum = 0.1, eps = 1e-5;
  T* y = nullptr;            // (N, F)
  T* save_mean = nullptr;    // (F,) training only: batch mean
  T* save_invstd = nullptr;  // (F,) training only: 1 / sqrt(biased var + eps)
};

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
