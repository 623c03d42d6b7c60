// Batch normalization forward (training / inference) and fused backward on the GPU; see
// batchnorm.h. Every kernel uses blocks of 32 features x 8 row lanes: a warp touches 32
// consecutive features of one row (a 128-byte line for float).
#include "cuda/batchnorm.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "core/cuda_check.h"
#include "core/error.h"
#include "cuda/reduce.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int TX = 32, TY = 8;


// Chan et al.: merges (nb, mb, m2b) into (na, ma, m2a); counts as doubles.
__device__ __forceinline__ void welford_merge(double& na, double& ma, double& m2a, double nb,
                                              double mb, double m2b) {
  if (nb == 0) return;
  const double n = na + nb, delta = mb - ma;
  ma += delta * (nb / n);
  m2a += m2b + delta * delta * (na * nb / n);
  na = n;
}

// x (N, F) -> pmean[c * F + f], pm2[c * F + f]: mean and sum of squared deviations of chunk c.
template <class T>
__global__ void __launch_bounds__(TX * TY)
    bn_stats_partials(const T* __restrict__ x, int64_t N, int64_t F, int64_t rows_per_chunk,
                      double* __restrict__ pmean, double* __restrict__ pm2) {
  __shared__ double sn[TY][TX], smean[TY][TX], sm2[TY][TX];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t f = int64_t(blockIdx.x) * TX + tx;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
  double n = 0, mean = 0, m2 = 0;
  if (f < F) {
#pragma unroll 4
    for (int64_t r = r0 + ty; r < r1; r += TY) {
      const double v = double(x[r * F + f]);
      n += 1;
      const double delta = v - mean;
      mean += delta / n;
      m2 += delta * (v - mean);
    }
  }
  sn[ty][tx] = n;
  smean[ty][tx] = mean;
  sm2[ty][tx] = m2;
  __syncthreads();
  if (ty == 0 && f < F) {
    for (int k = 1; k < TY; ++k) welford_merge(n, mean, m2, sn[k][tx], smean[k][tx], sm2[k][tx]);
    pmean[int64_t(blockIdx.y) * F + f] = mean;
    pm2[int64_t(blockIdx.y) * F + f] = m2;
  }
}

// Per feature: merges the chunks in order, writes save_mean / save_invstd, updates the running
// statistics (unbiased variance), and leaves (mean, gamma * invstd, beta) in coef[0..3F).
template <class T>
__global__ void bn_train_finish(const double* __restrict__ pmean, const double* __restrict__ pm2,
                                int64_t nchunks, int64_t rows_per_chunk, int64_t N, int64_t F,
                                BatchNormArgs<T> a, double* __restrict__ coef) {
  for (int64_t f = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; f < F;
       f += int64_t(gridDim.x) * blockDim.x) {
    double n = 0, mean = 0, m2 = 0;
    for (int64_t c = 0; c < nchunks; ++c) {
      const double rows = double(min(N, (c + 1) * rows_per_chunk) - c * rows_per_chunk);
      welford_merge(n, mean, m2, rows, pmean[c * F + f], pm2[c * F + f]);
    }
    const double var = m2 / double(N);  // biased: what normalizes
    const double invstd = 1.0 / sqrt(var + a.eps);
    a.save_mean[f] = T(mean);
    a.save_invstd[f] = T(invstd);
    const double m = a.momentum;
    if (a.running_mean) a.running_mean[f] = T((1.0 - m) * double(a.running_mean[f]) + m * mean);
    if (a.running_var)
      a.running_var[f] = T((1.0 - m) * double(a.running_var[f]) +
                           m * var * (double(N) / double(N - 1)));
    coef[f] = mean;
    coef[F + f] = (a.gamma ? double(a.gamma[f]) : 1.0) * invstd;
    coef[2 * F + f] = a.beta ? double(a.beta[f]) : 0.0;
  }
}

template <class T>
__global__ void bn_infer_coef(BatchNormArgs<T> a, int64_t F, double* __restrict__ coef) {
  for (int64_t f = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; f < F;
       f += int64_t(gridDim.x) * blockDim.x) {
    const double invstd = 1.0 / sqrt(double(a.running_var[f]) + a.eps);
    coef[f] = double(a.running_mean[f]);
    coef[F + f] = (a.gamma ? double(a.gamma[f]) : 1.0) * invstd;
    coef[2 * F + f] = a.beta ? double(a.beta[f]) : 0.0;
  }
}

// V consecutive T of one row: one 128-bit access when V = 16 / sizeof(T).
template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// y = (x - mean) * scale + shift in double; subtracting first keeps digits when |mean| >> std.
// Each thread owns V consecutive features (V > 1 only when F % V == 0 and x, y are 16-byte
// aligned, so every row segment is).
template <class T, int V>
__global__ void __launch_bounds__(TX * TY)
    bn_normalize(const T* __restrict__ x, int64_t N, int64_t F, const double* __restrict__ coef,
                 T* __restrict__ y) {
  const int64_t f = (int64_t(blockIdx.x) * TX + threadIdx.x) * V;
  if (f >= F) return;
  double mean[V], scale[V], shift[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    mean[j] = coef[f + j];
    scale[j] = coef[F + f + j];
    shift[j] = coef[2 * F + f + j];
  }
#pragma unroll 2
  for (int64_t r = int64_t(blockIdx.y) * TY + threadIdx.y; r < N; r += int64_t(gridDim.y) * TY) {
    const Pack<T, V> xv = *reinterpret_cast<const Pack<T, V>*>(x + r * F + f);
    Pack<T, V> yv;
#pragma unroll
    for (int j = 0; j < V; ++j) yv.v[j] = T((double(xv.v[j]) - mean[j]) * scale[j] + shift[j]);
    *reinterpret_cast<Pack<T, V>*>(y + r * F + f) = yv;
  }
}

// psum[(2c) * F + f] = sum of dy, psum[(2c + 1) * F + f] = sum of dy * xhat over chunk c.
template <class T>
__global__ void __launch_bounds__(TX * TY)
    bn_grad_partials(const T* __restrict__ dy, const T* __restrict__ x, int64_t N, int64_t F,
                     int64_t rows_per_chunk, const T* __restrict__ save_mean,
                     const T* __restrict__ save_invstd, double* __restrict__ psum) {
  __shared__ double s0[TY][TX], s1[TY][TX];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t f = int64_t(blockIdx.x) * TX + tx;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
  double a0 = 0, a1 = 0;
  if (f < F) {
    const double mean = double(save_mean[f]), invstd = double(save_invstd[f]);
#pragma unroll 4
    for (int64_t r = r0 + ty; r < r1; r += TY) {
      const double d = double(dy[r * F + f]);
      a0 += d;
      a1 += d * ((double(x[r * F + f]) - mean) * invstd);
    }
  }
  s0[ty][tx] = a0;
  s1[ty][tx] = a1;
  __syncthreads();
  if (ty == 0 && f < F) {
    for (int k = 1; k < TY; ++k) {
      a0 += s0[k][tx];
      a1 += s1[k][tx];
    }
    psum[(2 * int64_t(blockIdx.y)) * F + f] = a0;
    psum[(2 * int64_t(blockIdx.y) + 1) * F + f] = a1;
  }
}

// dgamma, dbeta, and coef = (k = gamma * invstd, sum dy / N, sum dy xhat / N) per feature.
template <class T>
__global__ void bn_grad_finish(const double* __restrict__ psum, int64_t nchunks, int64_t N,
                               int64_t F, const T* __restrict__ gamma,
                               const T* __restrict__ save_invstd, T* __restrict__ dgamma,
                               T* __restrict__ dbeta, double* __restrict__ coef) {
  for (int64_t f = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; f < F;
       f += int64_t(gridDim.x) * blockDim.x) {
    double sdy = 0, sdyx = 0;
    for (int64_t c = 0; c < nchunks; ++c) {
      sdy += psum[(2 * c) * F + f];
      sdyx += psum[(2 * c + 1) * F + f];
    }
    dgamma[f] = T(sdyx);
    dbeta[f] = T(sdy);
    const double inv_n = 1.0 / double(N);
    coef[f] = (gamma ? double(gamma[f]) : 1.0) * double(save_invstd[f]);
    coef[F + f] = sdy * inv_n;
    coef[2 * F + f] = sdyx * inv_n;
  }
}

// dx = k * (dy - sum(dy) / N - xhat * sum(dy xhat) / N); V features per thread as above.
template <class T, int V>
__global__ void __launch_bounds__(TX * TY)
    bn_grad_dx(const T* __restrict__ dy, const T* __restrict__ x, int64_t N, int64_t F,
               const T* __restrict__ save_mean, const T* __restrict__ save_invstd,
               const double* __restrict__ coef, T* __restrict__ dx) {
  const int64_t f = (int64_t(blockIdx.x) * TX + threadIdx.x) * V;
  if (f >= F) return;
  double mean[V], invstd[V], k[V], c0[V], c1[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    mean[j] = double(save_mean[f + j]);
    invstd[j] = double(save_invstd[f + j]);
    k[j] = coef[f + j];
    c0[j] = coef[F + f + j];
    c1[j] = coef[2 * F + f + j];
  }
#pragma unroll 2
  for (int64_t r = int64_t(blockIdx.y) * TY + threadIdx.y; r < N; r += int64_t(gridDim.y) * TY) {
    const Pack<T, V> xv = *reinterpret_cast<const Pack<T, V>*>(x + r * F + f);
    const Pack<T, V> dyv = *reinterpret_cast<const Pack<T, V>*>(dy + r * F + f);
    Pack<T, V> dxv;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const double xhat = (double(xv.v[j]) - mean[j]) * invstd[j];
      dxv.v[j] = T(k[j] * (double(dyv.v[j]) - c0[j] - xhat * c1[j]));
    }
    *reinterpret_cast<Pack<T, V>*>(dx + r * F + f) = dxv;
  }
}

// Grid of the element-wise passes: every feature tile, and row tiles up to ~2048 blocks in all.
dim3 elementwise_grid(int64_t N, int64_t ftiles) {
  const int64_t row_tiles = (N + TY - 1) / TY;
  const int64_t y = std::max<int64_t>(1, std::min<int64_t>({row_tiles, 65535,
                                                           std::max<int64_t>(1, 2048 / ftiles)}));
  return dim3(unsigned(ftiles), unsigned(y));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The element-wise passes, 128-bit wide when every row segment is 16-byte aligned.
template <class T>
void launch_normalize(const T* x, int64_t N, int64_t F, const double* coef, T* y, cudaStream_t s) {
  constexpr int W = 16 / sizeof(T);
  if (F % W == 0 && aligned16(x) && aligned16(y)) {
    const int64_t ftiles = (F / W + TX - 1) / TX;
    bn_normalize<T, W><<<elementwise_grid(N, ftiles), dim3(TX, TY), 0, s>>>(x, N, F, coef, y);
  } else {
    const int64_t ftiles = (F + TX - 1) / TX;
    bn_normalize<T, 1><<<elementwise_grid(N, ftiles), dim3(TX, TY), 0, s>>>(x, N, F, coef, y);
  }
  check_launch("bn_normalize");
}

template <class T>
void launch_grad_dx(const T* dy, const T* x, int64_t N, int64_t F, const T* save_mean,
                    const T* save_invstd, const double* coef, T* dx, cudaStream_t s) {
  constexpr int W = 16 / sizeof(T);
  if (F % W == 0 && aligned16(dy) && aligned16(x) && aligned16(dx)) {
    const int64_t ftiles = (F / W + TX - 1) / TX;
    bn_grad_dx<T, W><<<elementwise_grid(N, ftiles), dim3(TX, TY), 0, s>>>(dy, x, N, F, save_mean,
                                                                          save_invstd, coef, dx);
  } else {
    const int64_t ftiles = (F + TX - 1) / TX;
    bn_grad_dx<T, 1><<<elementwise_grid(N, ftiles), dim3(TX, TY), 0, s>>>(dy, x, N, F, save_mean,
                                                                          save_invstd, coef, dx);
  }
  check_launch("bn_grad_dx");
}

unsigned feature_blocks(int64_t F) { return unsigned(std::min<int64_t>((F + 255) / 256, 4096)); }

void check_workspace(int64_t N, int64_t F, const void* ws, int64_t bytes, const char* who) {
  const int64_t need = batch_norm_workspace_bytes(N, F);
  FASTNN_CHECK(bytes >= need && (need == 0 || ws != nullptr),
               std::string(who) + ": workspace holds " + std::to_string(bytes) + " bytes, needs " +
                   std::to_string(need));
  FASTNN_CHECK(reinterpret_cast<uintptr_t>(ws) % sizeof(double) == 0,
               std::string(who) + ": workspace must be 8-byte aligned");
}

}  // namespace

int64_t batch_norm_workspace_bytes(int64_t N, int64_t F) {
  if (F <= 0) return 0;
  const ColumnTiling t = column_tiling(N, F);
  return (2 * t.nchunks * F + 3 * F) * int64_t(sizeof(double));
}

template <class T>
void batch_norm_forward_train(const BatchNormArgs<T>& a, void* workspace,
                              int64_t workspace_bytes, void* stream) {
  const int64_t N = a.N, F = a.F;
  FASTNN_CHECK(N >= 2, "x: batch normalization in training needs at least 2 rows per batch, got " +
                           std::to_string(N));
  FASTNN_CHECK(F >= 0, "cuda batch_norm: negative F");
  if (F == 0) return;
  FASTNN_CHECK(a.x && a.y && a.save_mean && a.save_invstd, "cuda batch_norm_forward_train: null pointer");
  FASTNN_CHECK(F <= int64_t(TX) * 0x7fffffff, "cuda batch_norm: too many features");
  check_workspace(N, F, workspace, workspace_bytes, "cuda batch_norm_forward_train");
  const ColumnTiling t = column_tiling(N, F);
  double* pmean = static_cast<double*>(workspace);
  double* pm2 = pmean + t.nchunks * F;
  double* coef = pm2 + t.nchunks * F;
  const auto s = static_cast<cudaStream_t>(stream);
  cudaGetLastError();
  bn_stats_partials<T><<<dim3(unsigned(t.ftiles), unsigned(t.nchunks)), dim3(TX, TY), 0, s>>>(
      a.x, N, F, t.rows_per_chunk, pmean, pm2);
  check_launch("bn_stats_partials");
  bn_train_finish<T><<<feature_blocks(F), 256, 0, s>>>(pmean, pm2, t.nchunks, t.rows_per_chunk, N,
                                                       F, a, coef);
  check_launch("bn_train_finish");
  launch_normalize(a.x, N, F, coef, a.y, s);
}

template <class T>
void batch_norm_forward_infer(const BatchNormArgs<T>& a, void* workspace,
                              int64_t workspace_bytes, void* stream) {
  const int64_t N = a.N, F = a.F;
  FASTNN_CHECK(a.running_mean && a.running_var,
               "running_mean, running_var: inference needs the running statistics");
  FASTNN_CHECK(N >= 0 && F >= 0, "cuda batch_norm: negative shape");
  if (F == 0) return;
  FASTNN_CHECK(F <= int64_t(TX) * 0x7fffffff, "cuda batch_norm: too many features");
  FASTNN_CHECK(N == 0 || (a.x && a.y), "cuda batch_norm_forward_infer: null pointer");
  // Only the 3F coefficients are used; the full size keeps one workspace rule for all three.
  check_workspace(N, F, workspace, workspace_bytes, "cuda batch_norm_forward_infer");
  double* coef = static_cast<double*>(workspace);
  const auto s = static_cast<cudaStream_t>(stream);
  cudaGetLastError();
  bn_infer_coef<T><<<feature_blocks(F), 256, 0, s>>>(a, F, coef);
  check_launch("bn_infer_coef");
  if (N == 0) return;
  launch_normalize(a.x, N, F, coef, a.y, s);
}

template <class T>
void batch_norm_backward(const T* dy, const T* x, int64_t N, int64_t F, const T* gamma,
                         const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta,
                         void* workspace, int64_t workspace_bytes, void* stream) {
  FASTNN_CHECK(N >= 1, "dy: expected at least one row, got 0");
  FASTNN_CHECK(F >= 0, "cuda batch_norm: negative F");
  if (F == 0) return;
  FASTNN_CHECK(F <= int64_t(TX) * 0x7fffffff, "cuda batch_norm: too many features");
  FASTNN_CHECK(dy && x && save_mean && save_invstd && dx && dgamma && dbeta,
               "cuda batch_norm_backward: null pointer");
  check_workspace(N, F, workspace, workspace_bytes, "cuda batch_norm_backward");
  const ColumnTiling t = column_tiling(N, F);
  double* psum = static_cast<double*>(workspace);
  double* coef = psum + 2 * t.nchunks * F;
  const auto s = static_cast<cudaStream_t>(stream);
  cudaGetLastError();
  bn_grad_partials<T><<<dim3(unsigned(t.ftiles), unsigned(t.nchunks)), dim3(TX, TY), 0, s>>>(
      dy, x, N, F, t.rows_per_chunk, save_mean, save_invstd, psum);
  check_launch("bn_grad_partials");
  bn_grad_finish<T><<<feature_blocks(F), 256, 0, s>>>(psum, t.nchunks, N, F, gamma, save_invstd,
                                                      dgamma, dbeta, coef);
  check_launch("bn_grad_finish");
  launch_grad_dx(dy, x, N, F, save_mean, save_invstd, coef, dx, s);
}

#define FASTNN_CUDA_BN_INSTANTIATE(T)                                                            \
  template void batch_norm_forward_train<T>(const BatchNormArgs<T>&, void*, int64_t, void*); \
  template void batch_norm_forward_infer<T>(const BatchNormArgs<T>&, void*, int64_t, void*); \
  template void batch_norm_backward<T>(const T*, const T*, int64_t, int64_t, const T*, const T*,  \
                                       const T*, T*, T*, T*, void*, int64_t, void*);
FASTNN_CUDA_BN_INSTANTIATE(float)
FASTNN_CUDA_BN_INSTANTIATE(double)
#undef FASTNN_CUDA_BN_INSTANTIATE

}  // namespace cuda
}  // namespace fastnn
