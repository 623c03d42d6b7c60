// The batch-norm family's contract, implemented by cpu/batchnorm.h and cuda/batchnorm.h.
// Batch normalization over the rows of a row-major (N, F) matrix, one statistic per feature,
// exactly as torch.nn.BatchNorm1d computes it:
//   training:  mean, var = batch mean and BIASED variance; y = (x - mean) * invstd * gamma + beta
//              with invstd = 1 / sqrt(var + eps); running stats, when given, become
//              running = (1 - momentum) * running + momentum * batch, the batch variance
//              UNBIASED (times N / (N - 1)) there.
//   inference: the same with running_mean / running_var in place of the batch statistics.
//   backward:  dx = gamma * invstd / N * (N dy - sum(dy) - xhat * sum(dy * xhat)),
//              dgamma = sum(dy * xhat), dbeta = sum(dy), xhat = (x - mean) * invstd.
// Statistics are computed in double and summed in a fixed order: deterministic results.
// All arrays are C-contiguous; gamma and beta may be null (scale 1, shift 0).
#pragma once
#include <cstdint>

namespace fastnn {

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

}  // namespace fastnn
