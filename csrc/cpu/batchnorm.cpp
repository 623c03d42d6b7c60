// Batch normalization forward (training / inference) and fused backward; see batchnorm.h.
#include "cpu/batchnorm.h"

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/reduce.h"

namespace fastnn {
namespace cpu {

namespace {

// y = (x - mean) * scale + shift per feature, in double: the one element-wise sweep both
// forwards end with. Subtracting the mean first (rather than folding it into the shift) keeps
// digits when |mean| >> std: x * scale and mean * scale would cancel.
template <class T>
void normalize_rows(const T* x, int64_t N, int64_t F, const double* mean, const double* scale,
                    const double* shift, T* y) {
  for_row_chunks(N, F, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const T* xr = x + i * F;
      T* yr = y + i * F;
      for (int64_t f = 0; f < F; ++f)
        yr[f] = static_cast<T>((double(xr[f]) - mean[f]) * scale[f] + shift[f]);
    }
  });
}

}  // namespace

template <class T>
void batch_norm_forward_train(const BatchNormArgs<T>& a) {
  // x (N, F), y (N, F); gamma, beta, running_*, save_* (F,)
  const int64_t N = a.N, F = a.F;
  FASTNN_CHECK(N >= 2, "x: batch normalization in training needs at least 2 rows per batch, got " +
                           std::to_string(N));
  const T* x = a.x;
  std::vector<double> mean(F), var(F);
  // Pass 1: the mean, summed as deviations from the first row: when |mean| >> std the terms
  // stay small and so does the rounding of a long running sum. Pass 2: squared deviations
  // from the mean; never E[x^2] - E[x]^2, which cancels catastrophically.
  column_sums(N, F, 1, [&](int64_t i, int64_t f0, int64_t f1, double* acc) {
    const T* xr = x + i * F;
    for (int64_t f = f0; f < f1; ++f) acc[f - f0] += double(xr[f]) - double(x[f]);
  }, mean.data());
  for (int64_t f = 0; f < F; ++f) mean[f] = double(x[f]) + mean[f] / double(N);
  column_sums(N, F, 1, [&](int64_t i, int64_t f0, int64_t f1, double* acc) {
    const T* xr = x + i * F;
    for (int64_t f = f0; f < f1; ++f) {
      const double d = double(xr[f]) - mean[f];
      acc[f - f0] += d * d;
    }
  }, var.data());

  std::vector<double> scale(F), shift(F);
  const double m = a.momentum, unbias = double(N) / double(N - 1);
  for (int64_t f = 0; f < F; ++f) {
    const double v = var[f] / double(N);  // biased: what normalizes
    const double invstd = 1.0 / std::sqrt(v + a.eps);
    a.save_mean[f] = static_cast<T>(mean[f]);
    a.save_invstd[f] = static_cast<T>(invstd);
    const double g = a.gamma ? double(a.gamma[f]) : 1.0, b = a.beta ? double(a.beta[f]) : 0.0;
    scale[f] = g * invstd;
    shift[f] = b;
    if (a.running_mean)
      a.running_mean[f] = static_cast<T>((1.0 - m) * double(a.running_mean[f]) + m * mean[f]);
    if (a.running_var)
      a.running_var[f] = static_cast<T>((1.0 - m) * double(a.running_var[f]) + m * v * unbias);
  }
  normalize_rows(x, N, F, mean.data(), scale.data(), shift.data(), a.y);
}

template <class T>
void batch_norm_forward_infer(const BatchNormArgs<T>& a) {
  const int64_t F = a.F;
  FASTNN_CHECK(a.running_mean && a.running_var,
               "running_mean, running_var: inference needs the running statistics");
  std::vector<double> mean(F), scale(F), shift(F);
  for (int64_t f = 0; f < F; ++f) {
    const double invstd = 1.0 / std::sqrt(double(a.running_var[f]) + a.eps);
    mean[f] = double(a.running_mean[f]);
    scale[f] = (a.gamma ? double(a.gamma[f]) : 1.0) * invstd;
    shift[f] = a.beta ? double(a.beta[f]) : 0.0;
  }
  normalize_rows(a.x, a.N, F, mean.data(), scale.data(), shift.data(), a.y);
}

template <class T>
void batch_norm_backward(const T* dy, const T* x, int64_t N, int64_t F, const T* gamma,
                         const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta) {
  // dy, x, dx (N, F); gamma, save_*, dgamma, dbeta (F,)
  FASTNN_CHECK(N >= 1, "dy: expected at least one row, got 0");
  // Sweep 1: sum(dy) and sum(dy * xhat) together (K = 2 column sums).
  std::vector<double> sums(2 * F);
  column_sums(N, F, 2, [&](int64_t i, int64_t f0, int64_t f1, double* acc) {
    const T* dyr = dy + i * F;
    const T* xr = x + i * F;
    const int64_t w = f1 - f0;
    for (int64_t f = f0; f < f1; ++f) {
      const double xhat = (double(xr[f]) - double(save_mean[f])) * double(save_invstd[f]);
      acc[f - f0] += double(dyr[f]);
      acc[w + f - f0] += double(dyr[f]) * xhat;
    }
  }, sums.data());
  const double* sum_dy = sums.data();
  const double* sum_dy_xhat = sums.data() + F;
  // dx = k * (dy - sum_dy / N - xhat * sum_dy_xhat / N) with k = gamma * invstd: the
  // per-feature constants once, in double.
  std::vector<double> k(F), c0(F), c1(F);
  const double inv_n = 1.0 / double(N);
  for (int64_t f = 0; f < F; ++f) {
    k[f] = (gamma ? double(gamma[f]) : 1.0) * double(save_invstd[f]);
    c0[f] = sum_dy[f] * inv_n;
    c1[f] = sum_dy_xhat[f] * inv_n;
    dgamma[f] = static_cast<T>(sum_dy_xhat[f]);
    dbeta[f] = static_cast<T>(sum_dy[f]);
  }
  // Sweep 2: dx.
  for_row_chunks(N, F, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const T* dyr = dy + i * F;
      const T* xr = x + i * F;
      T* dxr = dx + i * F;
      for (int64_t f = 0; f < F; ++f) {
        const double xhat = (double(xr[f]) - double(save_mean[f])) * double(save_invstd[f]);
        dxr[f] = static_cast<T>(k[f] * (double(dyr[f]) - c0[f] - xhat * c1[f]));
      }
    }
  });
}

#define FASTNN_BN_INSTANTIATE(T)                                                               \
  template void batch_norm_forward_train<T>(const BatchNormArgs<T>&);                          \
  template void batch_norm_forward_infer<T>(const BatchNormArgs<T>&);                          \
  template void batch_norm_backward<T>(const T*, const T*, int64_t, int64_t, const T*,         \
                                       const T*, const T*, T*, T*, T*);
FASTNN_BN_INSTANTIATE(float)
FASTNN_BN_INSTANTIATE(double)
#undef FASTNN_BN_INSTANTIATE

}  // namespace cpu
}  // namespace fastnn
