// The GPU training engine's small kernels; see engine_kernels.h.
#include "cuda/engine_kernels.h"

#include <cuda_runtime.h>

#include "cuda/elem_util.cuh"

namespace fastnn {
namespace cuda {
namespace {

using elem::grid_for;
constexpr int kThreads = 256;

// The head of the loss kernels' workspace (losses.cu's LossStatus, which writes it): the mean
// loss first, then the divisor and class-weight sum, the bad label's report and the error code.
// Kept in step with losses.cu by hand; the layout is plain C (no padding before `code`).
struct LossHead {
  double loss, norm, sum_w;
  long long bad_index, bad_label, classes;
  int code;
};

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

// A fixed-order block sum of one double per thread (kThreads threads); thread 0 gets the total.
__device__ double block_sum(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (int(threadIdx.x) < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  return shared[0];
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(const T* __restrict__ src, int64_t cols, const int64_t* __restrict__ idx,
                  int64_t base, const int64_t* base_dev, int64_t N, T* __restrict__ dst) {
  const int64_t b = base_dev ? *base_dev : base;
  const int64_t total = N * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i - r * cols;
    dst[i] = src[idx[b + r] * cols + c];
  }
}

// Four floats per thread: cols % 4 == 0, both pointers 16-byte aligned.
__global__ void __launch_bounds__(kThreads)
    gather_kernel_vec4(const float4* __restrict__ src, int64_t cols4,
                       const int64_t* __restrict__ idx, int64_t base, const int64_t* base_dev,
                       int64_t N, float4* __restrict__ dst) {
  const int64_t b = base_dev ? *base_dev : base;
  const int64_t total = N * cols4;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols4, c = i - r * cols4;
    dst[i] = __ldg(src + idx[b + r] * cols4 + c);
  }
}

__global__ void __launch_bounds__(kThreads)
    check_labels_kernel(const int64_t* labels, int64_t n, int64_t C, int64_t* out) {
  __shared__ double sh[kThreads];
  __shared__ long long first[kThreads];
  double bad = 0;
  long long pos = n;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    const int64_t l = labels[i];
    if (l < 0 || l >= C) {
      bad += 1;
      if (i < pos) pos = i;
    }
  }
  first[threadIdx.x] = pos;
  const double total = block_sum(bad, sh);  // also orders the writes to `first`
  if (threadIdx.x == 0) {
    long long p = n;
    for (int t = 0; t < kThreads; ++t) p = first[t] < p ? first[t] : p;
    out[0] = int64_t(total);
    out[1] = p;
    out[2] = p < n ? labels[p] : 0;
  }
}

// Row losses in double, as engine/network.cpp's row_loss computes them on the CPU.
__device__ double row_loss(int kind, const float* z, int64_t C, int64_t label, const float* t) {
  double l = 0;
  switch (kind) {
    case 0: {
      // A label outside [0, C) (reported by the loss kernel; the host raises) must not read
      // past the row.
      if (label < 0 || label >= C) return 0.0;
      double m = z[0];
      for (int64_t c = 1; c < C; ++c) m = fmax(m, double(z[c]));
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += exp(double(z[c]) - m);
      return log(s) + m - double(z[label]);
    }
    case 1:
      for (int64_t c = 0; c < C; ++c) {
        const double x = z[c], y = t[c];
        l += fmax(x, 0.0) - x * y + log1p(exp(-fabs(x)));
      }
      return l / double(C);
    case 2:
      for (int64_t c = 0; c < C; ++c) l += (double(z[c]) - t[c]) * (double(z[c]) - t[c]);
      return l / double(C);
    default:
      for (int64_t c = 0; c < C; ++c) l += fabs(double(z[c]) - t[c]);
      return l / double(C);
  }
}

__global__ void __launch_bounds__(kThreads)
    weighted_loss_kernel(int kind, const float* out, const int64_t* labels, const float* targets,
                         const float* w, int64_t N, int64_t C, float* grad, double* loss_out) {
  __shared__ double sh[kThreads];
  double total = 0;
  for (int64_t i = threadIdx.x; i < N; i += kThreads) {
    const float wi = w[i];
    if (wi != 0.0f)
      total += double(wi) * row_loss(kind, out + i * C, C, labels ? labels[i] : 0,
                                     targets ? targets + i * C : nullptr);
    if (grad)
      for (int64_t c = 0; c < C; ++c) grad[i * C + c] *= wi;
  }
  total = block_sum(total, sh);
  if (threadIdx.x == 0) *loss_out = total / double(N);
}

__global__ void __launch_bounds__(kThreads)
    penalty_kernel(const float* p, int64_t n, double l1, double l2, double* out, bool accumulate) {
  __shared__ double sh[kThreads];
  double a = 0, q = 0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    const double x = p[i];
    a += fabs(x);
    q += x * x;
  }
  // Two sums, as the CPU keeps them: l1 * sum|p| + l2 * sum p^2.
  a = block_sum(a, sh);
  __syncthreads();
  q = block_sum(q, sh);
  if (threadIdx.x == 0) {
    const double v = (l1 != 0 ? l1 * a : 0.0) + (l2 != 0 ? l2 * q : 0.0);
    *out = accumulate ? *out + v : v;
  }
}

__global__ void __launch_bounds__(kThreads)
    binary_correct_kernel(const float* x, const float* t, int64_t n, int64_t* out) {
  __shared__ double sh[kThreads];
  double hits = 0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads)
    hits += (double(x[i]) > 0.0) == (double(t[i]) >= 0.5);
  hits = block_sum(hits, sh);
  if (threadIdx.x == 0) out[0] = int64_t(hits);
}

__global__ void accumulate_kernel(EngineCounters* c, const LossHead* head, const double* weighted,
                                  const double* penalty, int64_t N, const int64_t* correct,
                                  bool sticky) {
  if (sticky && c->nonfinite) return;
  if (head && head->code != 0) {
    // The loss kernel wrote no gradient (a bad label): the updates are skipped like a non-finite
    // loss's, so the stale gradient buffer never reaches the weights before the host raises.
    if (sticky) c->nonfinite = 1;
    if (c->loss_code == 0) {
      c->loss_code = head->code;
      c->bad_label = head->bad_label;
      c->bad_index = head->bad_index;
      c->classes = head->classes;
    }
    return;
  }
  double loss = weighted ? *weighted : head->loss;
  if (penalty) loss += *penalty;
  if (!isfinite(loss)) c->nonfinite = 1;
  else if (sticky) ++c->good_batches;
  c->loss_sum += loss * double(N);
  if (correct) c->correct += correct[0];
}

__global__ void __launch_bounds__(kThreads)
    dead_units_kernel(const float* y, int64_t N, int64_t F, int64_t* out) {
  __shared__ double sh[kThreads];
  double dead = 0;
  for (int64_t j = threadIdx.x; j < F; j += kThreads) {  // a warp reads 32 adjacent columns
    bool alive = false;
    for (int64_t r = 0; r < N && !alive; ++r) alive = y[r * F + j] > 0.0f;
    dead += !alive;
  }
  dead = block_sum(dead, sh);
  if (threadIdx.x == 0) out[0] = int64_t(dead);
}

__global__ void flag_norm_kernel(const double* norm, EngineCounters* c, int64_t update) {
  if (!isfinite(norm[0])) {
    if (!c->nonfinite) c->bad_update = update + 1;
    c->nonfinite = 1;
  }
}

__global__ void __launch_bounds__(kThreads) add_kernel(float* dst, const float* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] += src[i];
}

}  // namespace

void gather_rows(const float* src, int64_t cols, const int64_t* idx, int64_t base,
                 const int64_t* base_dev, int64_t N, float* dst, void* stream) {
  if (N <= 0 || cols <= 0) return;
  clear_launch_error();
  if (cols % 4 == 0 && elem::aligned(src, 16) && elem::aligned(dst, 16)) {
    gather_kernel_vec4<<<grid_for(N * cols / 4), kThreads, 0, as_stream(stream)>>>(
        reinterpret_cast<const float4*>(src), cols / 4, idx, base, base_dev, N,
        reinterpret_cast<float4*>(dst));
    check_launch("gather_kernel_vec4");
  } else {
    gather_kernel<float><<<grid_for(N * cols), kThreads, 0, as_stream(stream)>>>(
        src, cols, idx, base, base_dev, N, dst);
    check_launch("gather_kernel<float>");
  }
}

void gather_rows(const int64_t* src, int64_t cols, const int64_t* idx, int64_t base,
                 const int64_t* base_dev, int64_t N, int64_t* dst, void* stream) {
  if (N <= 0 || cols <= 0) return;
  clear_launch_error();
  gather_kernel<int64_t><<<grid_for(N * cols), kThreads, 0, as_stream(stream)>>>(
      src, cols, idx, base, base_dev, N, dst);
  check_launch("gather_kernel<int64>");
}

void check_labels(const int64_t* labels, int64_t n, int64_t C, int64_t* out, void* stream) {
  clear_launch_error();
  check_labels_kernel<<<1, kThreads, 0, as_stream(stream)>>>(labels, n, C, out);
  check_launch("check_labels_kernel");
}

void weighted_loss(int loss_kind, const float* out, const int64_t* labels, const float* targets,
                   const float* w, int64_t N, int64_t C, float* grad, double* loss_out,
                   void* stream) {
  clear_launch_error();
  weighted_loss_kernel<<<1, kThreads, 0, as_stream(stream)>>>(loss_kind, out, labels, targets, w,
                                                               N, C, grad, loss_out);
  check_launch("weighted_loss_kernel");
}

void penalty(const float* p, int64_t n, double l1, double l2, double* out, bool accumulate,
             void* stream) {
  clear_launch_error();
  penalty_kernel<<<1, kThreads, 0, as_stream(stream)>>>(p, n, l1, l2, out, accumulate);
  check_launch("penalty_kernel");
}

void binary_correct(const float* logits, const float* targets, int64_t n, int64_t* out,
                    void* stream) {
  clear_launch_error();
  binary_correct_kernel<<<1, kThreads, 0, as_stream(stream)>>>(logits, targets, n, out);
  check_launch("binary_correct_kernel");
}

void accumulate_batch(EngineCounters* c, const void* loss_ws, const double* weighted,
                      const double* penalty, int64_t N, const int64_t* correct, bool sticky,
                      void* stream) {
  clear_launch_error();
  accumulate_kernel<<<1, 1, 0, as_stream(stream)>>>(c, static_cast<const LossHead*>(loss_ws),
                                                    weighted, penalty, N, correct, sticky);
  check_launch("accumulate_kernel");
}

void flag_nonfinite_norm(const double* norm, EngineCounters* c, int64_t update, void* stream) {
  clear_launch_error();
  flag_norm_kernel<<<1, 1, 0, as_stream(stream)>>>(norm, c, update);
  check_launch("flag_norm_kernel");
}

void dead_units(const float* y, int64_t N, int64_t F, int64_t* out, void* stream) {
  clear_launch_error();
  dead_units_kernel<<<1, kThreads, 0, as_stream(stream)>>>(y, N, F, out);
  check_launch("dead_units_kernel");
}

void add_into(float* dst, const float* src, int64_t n, void* stream) {
  if (n <= 0) return;
  clear_launch_error();
  add_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(dst, src, n);
  check_launch("add_kernel");
}

}  // namespace cuda
}  // namespace fastnn
