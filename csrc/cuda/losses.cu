// Loss kernels on the GPU (see losses.h).
//
// Softmax cross-entropy runs as three launches on one stream:
//   xent_prep_kernel      one block: checks every label, sums the labelled weights (the
//                         normaliser D) and all class weights, records the first bad label;
//   xent_rows_kernel      4, 16 or 32 lanes or a block per row (by C), one pass for the online
//                         max and sum, one that writes the gradient and accumulates the loss;
//                         does nothing if prep found an error, so a bad label never leaves a
//                         half-written gradient;
//   loss_finalize_kernel  one block adds the per-block partial losses in a fixed order.
// The element-wise losses are one grid-stride pass (128-bit loads for float32 when aligned) and
// the same finalize.
#include "cuda/losses.h"

#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <string>

#include "core/error.h"
#include "cuda/elem_util.cuh"

namespace fastnn {
namespace cuda {
namespace {

using namespace elem;

// Partial sums: at most this many blocks in a loss launch. The grid depends on the shape only
// (never on the SM count), so the summation order -- and the loss's bits -- are the same on
// every GPU. 1024 blocks of 256 threads fill an H100 (132 SMs x 2048 threads) about once.
constexpr int kMaxBlocks = 1024;

enum : int { kOk = 0, kBadLabel = 1, kZeroWeight = 2 };

struct LossStatus {
  double loss;
  double norm;       // divisor of the summed loss (D or the element count)
  double sum_w;      // sum_c w_c (softmax cross-entropy)
  long long bad_index;
  long long bad_label;
  long long classes;
  int code;
  int pad_;
};
constexpr size_t kStatusBytes = (sizeof(LossStatus) + 63) / 64 * 64;

LossStatus* status_of(void* ws) { return static_cast<LossStatus*>(ws); }
double* partials_of(void* ws) {
  return reinterpret_cast<double*>(static_cast<char*>(ws) + kStatusBytes);
}

// Blocks for `items` work items at `per_block` items a block, capped at kMaxBlocks.
unsigned loss_grid(int64_t items, int64_t per_block) {
  const int64_t need = (items + per_block - 1) / per_block;
  return unsigned(need < 1 ? 1 : need > kMaxBlocks ? kMaxBlocks : need);
}

// ------------------------------------------------------------------ softmax cross-entropy
// labels (N,) or null, weight (C,) or null. One block.
template <class T>
__global__ void __launch_bounds__(kThreads)
    xent_prep_kernel(const int64_t* labels, const T* weight, int64_t N, int64_t C,
                     LossStatus* st) {
  __shared__ double scratch[kWarps];
  __shared__ unsigned long long first_bad;
  if (threadIdx.x == 0) first_bad = ULLONG_MAX;
  double sw = 0;
  for (int64_t c = threadIdx.x; c < C; c += kThreads) sw += weight ? double(weight[c]) : 1.0;
  sw = block_sum(sw, scratch);  // its barriers also publish first_bad's initial value
  double norm = double(N);
  if (labels) {
    double d = 0;
    for (int64_t i = threadIdx.x; i < N; i += kThreads) {
      const int64_t y = labels[i];
      if (y < 0 || y >= C)
        atomicMin(&first_bad, (unsigned long long)i);
      else
        d += weight ? double(weight[y]) : 1.0;
    }
    norm = block_sum(d, scratch);  // ends with every atomicMin done (a barrier inside)
  }
  if (threadIdx.x == 0) {
    st->loss = 0;
    st->norm = norm;
    st->sum_w = sw;
    st->classes = C;
    st->bad_index = -1;
    st->bad_label = 0;
    st->code = kOk;
    if (labels && first_bad != ULLONG_MAX) {
      st->code = kBadLabel;
      st->bad_index = (long long)first_bad;
      st->bad_label = (long long)labels[first_bad];
    } else if (labels && norm == 0) {
      st->code = kZeroWeight;
    }
  }
}

// logits, probs, grad (N, C); labels (N,); weight (C,). With per-class target mass a_c (class
// weight times smoothed target) a row's loss is sum_c a_c (log s + m - z_c) and its gradient
// (S q_c - a_c) / D, S = sum_c a_c, q = softmax(z): cpu/losses.cpp's formulas. The gradient is
// formed as (S e_c - a_c s) / (s D) with e_c = e^(z_c - m): for the labelled class, e_y - s keeps
// the small 1 - p_y that p_y - 1 in float would round away.
//
// G threads per row (RowGroup), rows assigned as in softmax_rows_kernel (activations.cu): the
// loop bound is uniform over the block, and a group past the last row joins the reductions with
// no elements.
template <class T, int G>
__global__ void __launch_bounds__(kThreads)
    xent_rows_kernel(const T* logits, const int64_t* labels, const T* probs, const T* weight,
                     T* grad, int64_t N, int64_t C, double keep, double spread,
                     const LossStatus* st, double* partials) {
  __shared__ double scratch[kWarps];
  if (st->code != kOk) return;  // the same for every thread: no barrier is left half-reached
  const double inv_norm = 1.0 / st->norm, sum_w = st->sum_w;
  constexpr int R = RowGroup<G>::kRowsPerBlock;
  const int lane = threadIdx.x % G;
  const int64_t step = int64_t(gridDim.x) * R;
  double loss = 0;  // this thread's share of the block's rows, in a fixed order
  for (int64_t base = int64_t(blockIdx.x) * R; base < N; base += step) {
    const int64_t r = base + threadIdx.x / G;
    const bool valid = r < N;
    const int64_t n = valid ? C : 0;  // this group's elements
    const T* z = logits + r * C;
    T* g = grad + r * C;
    const T* p = probs ? probs + r * C : nullptr;
    MaxSum a{-INFINITY, 0.0};
    double S = 0;
    for (int64_t c = lane; c < n; c += G) {
      online_add(a, z[c]);
      if (p) S += (weight ? double(weight[c]) : 1.0) * (keep * double(p[c]) + spread);
    }
    a = group_merge<T, G>(a);
    S = group_sum<double, G>(S);
    if (valid) {  // nothing below synchronises
      const double s = a.s, log_s = ::log(a.s), m = a.m;
      int64_t y = -1;
      double wy = 0;
      if (!p) {
        y = labels[r];
        wy = weight ? double(weight[y]) : 1.0;
        S = keep * wy + spread * sum_w;
      }
      const double scale = inv_norm / s;
      const T mt = T(m);
      for (int64_t c = lane; c < C; c += G) {
        const T zc = z[c];
        const double wc = weight ? double(weight[c]) : 1.0;
        const double ac =
            p ? wc * (keep * double(p[c]) + spread) : spread * wc + (c == y ? keep * wy : 0.0);
        // -log q_c = log s + (m - z_c); zero mass is skipped so that a -inf logit of an untargeted
        // class does not turn the loss into 0 * inf = NaN.
        if (ac != 0) loss += ac * (log_s + (m - double(zc)));
        const double e = double(typed_math::exp_(zc - mt));
        g[c] = T((S * e - ac * s) * scale);
      }
    }
  }
  loss = block_sum(loss, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = loss;
}

// One block: st->loss = (sum of partials[0..count) in a fixed order) / divisor, where divisor is
// st->norm (set by xent_prep_kernel) when set_status is false; with set_status the element-wise
// losses initialise the status here.
__global__ void __launch_bounds__(kThreads)
    loss_finalize_kernel(const double* partials, int count, LossStatus* st, bool set_status,
                         double divisor) {
  __shared__ double scratch[kWarps];
  double t = 0;
  for (int j = threadIdx.x; j < count; j += kThreads) t += partials[j];
  t = block_sum(t, scratch);
  if (threadIdx.x == 0) {
    if (set_status) {
      st->norm = divisor;
      st->sum_w = 0;
      st->bad_index = -1;
      st->bad_label = 0;
      st->classes = 0;
      st->code = kOk;
    }
    if (st->code == kOk) st->loss = t / st->norm;
  }
}

// ------------------------------------------------------------------ element-wise losses
enum class Elem { Bce, Mse, Mae };

// Loss term of one element, gradient into g; scale = the gradient's factor (1/n or 2/n).
template <Elem K, class T>
__device__ __forceinline__ double elem_loss(T x, T t, double scale, T& g) {
  if constexpr (K == Elem::Bce) {
    // e^-|x| <= 1 serves both the stable loss and the stable sigmoid; T arithmetic as the CPU's
    // vector path (float) or scalar path (double).
    const T e = typed_math::exp_(-fabs(x));
    const T d = T(1) / (T(1) + e);
    const T sig = x >= T(0) ? d : e * d;
    g = (sig - t) * T(scale);
    return double((x > T(0) ? x : T(0)) - x * t + typed_math::log1p_(e));
  } else {
    // The difference in double: float32 inputs lose nothing to cancellation.
    const double d = double(x) - double(t);
    if constexpr (K == Elem::Mse) {
      g = T(d * scale);
      return d * d;
    } else {
      // sign(0) = 0 as in torch; a NaN difference stays NaN rather than posing as a slope.
      const double sign = d > 0 ? 1.0 : d < 0 ? -1.0 : d == 0 ? 0.0 : d;
      g = T(sign * scale);
      return fabs(d);
    }
  }
}

// x, t, grad (n,). Thread k of the grid takes 4-element groups k, k + grid, ... (float4 loads
// when vec), so the partition -- and the order of each thread's sum -- depend on n only.
template <Elem K, class T>
__global__ void __launch_bounds__(kThreads)
    elem_loss_kernel(const T* x, const T* t, T* grad, int64_t n, double scale, bool vec,
                     double* partials) {
  __shared__ double scratch[kWarps];
  const int64_t groups = (n + 3) / 4;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  double acc = 0;
  for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < groups; b += stride) {
    const int64_t e0 = b * 4;
    if constexpr (sizeof(T) == 4) {
      if (vec && e0 + 4 <= n) {
        const float4 xv = reinterpret_cast<const float4*>(x)[b];
        const float4 tv = reinterpret_cast<const float4*>(t)[b];
        float4 gv;
        acc += elem_loss<K>(xv.x, tv.x, scale, gv.x);
        acc += elem_loss<K>(xv.y, tv.y, scale, gv.y);
        acc += elem_loss<K>(xv.z, tv.z, scale, gv.z);
        acc += elem_loss<K>(xv.w, tv.w, scale, gv.w);
        reinterpret_cast<float4*>(grad)[b] = gv;
        continue;
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t e = e0 + j;
      if (e < n) {
        T gv;
        acc += elem_loss<K>(x[e], t[e], scale, gv);
        grad[e] = gv;
      }
    }
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

template <Elem K, class T>
void elem_loss_launch(const T* x, const T* t, int64_t n, T* grad, void* ws, void* stream,
                      const char* kernel) {
  FASTNN_CHECK(n > 0, "expected at least one element, got " + std::to_string(n));
  FASTNN_CHECK(x && t && grad && ws, std::string(kernel) + ": null device pointer");
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const double scale = (K == Elem::Mse ? 2.0 : 1.0) / double(n);
  const bool vec = sizeof(T) == 4 && aligned(x, 16) && aligned(t, 16) && aligned(grad, 16);
  const unsigned grid = loss_grid((n + 3) / 4, kThreads);
  clear_launch_error();
  elem_loss_kernel<K, T><<<grid, kThreads, 0, s>>>(x, t, grad, n, scale, vec, partials_of(ws));
  check_launch(kernel);
  loss_finalize_kernel<<<1, kThreads, 0, s>>>(partials_of(ws), int(grid), status_of(ws), true,
                                              double(n));
  check_launch("loss_finalize_kernel");
}

// The grid depends on N and the group size (so on the shape) only: loss_grid caps it at
// kMaxBlocks whatever the GPU, which keeps the partial sums -- and the loss -- identical on any
// device.
template <class T, int G>
unsigned xent_rows_launch(const SoftmaxXentArgs<T>& a, double keep, double spread,
                          const LossStatus* st, double* partials, cudaStream_t s) {
  const unsigned grid = loss_grid(a.N, RowGroup<G>::kRowsPerBlock);
  xent_rows_kernel<T, G><<<grid, kThreads, 0, s>>>(a.logits, a.labels, a.probs, a.weight, a.grad,
                                                   a.N, a.C, keep, spread, st, partials);
  check_launch("xent_rows_kernel");
  return grid;
}

template <class T>
void xent_launch(const SoftmaxXentArgs<T>& a, void* ws, void* stream) {
  FASTNN_CHECK(a.N > 0, "logits: expected at least one row, got 0");
  FASTNN_CHECK(a.C > 0, "logits: expected at least one class, got 0");
  FASTNN_CHECK((a.labels != nullptr) != (a.probs != nullptr),
               "labels: give class indices or probabilities, not both");
  FASTNN_CHECK(a.label_smoothing >= 0 && a.label_smoothing <= 1,
               "label_smoothing: expected a number in [0, 1]");
  FASTNN_CHECK(a.logits && a.grad && ws, "softmax_cross_entropy: null device pointer");
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const double keep = 1.0 - a.label_smoothing, spread = a.label_smoothing / double(a.C);
  LossStatus* st = status_of(ws);
  double* partials = partials_of(ws);

  clear_launch_error();
  xent_prep_kernel<T><<<1, kThreads, 0, s>>>(a.labels, a.weight, a.N, a.C, st);
  check_launch("xent_prep_kernel");
  unsigned grid = 0;
  switch (row_shape(a.C)) {
    case RowShape::G4: grid = xent_rows_launch<T, 4>(a, keep, spread, st, partials, s); break;
    case RowShape::G16: grid = xent_rows_launch<T, 16>(a, keep, spread, st, partials, s); break;
    case RowShape::G32: grid = xent_rows_launch<T, 32>(a, keep, spread, st, partials, s); break;
    case RowShape::Block:
      grid = xent_rows_launch<T, kThreads>(a, keep, spread, st, partials, s);
      break;
  }
  loss_finalize_kernel<<<1, kThreads, 0, s>>>(partials, int(grid), st, false, 0.0);
  check_launch("loss_finalize_kernel");
}

}  // namespace

size_t loss_workspace_bytes() { return kStatusBytes + kMaxBlocks * sizeof(double); }

void softmax_cross_entropy(const SoftmaxXentArgs<float>& a, void* ws, void* stream) {
  xent_launch(a, ws, stream);
}
void softmax_cross_entropy(const SoftmaxXentArgs<double>& a, void* ws, void* stream) {
  xent_launch(a, ws, stream);
}

void binary_cross_entropy_with_logits(const float* x, const float* t, int64_t n, float* grad,
                                      void* ws, void* stream) {
  elem_loss_launch<Elem::Bce>(x, t, n, grad, ws, stream, "elem_loss_kernel<bce>");
}
void binary_cross_entropy_with_logits(const double* x, const double* t, int64_t n, double* grad,
                                      void* ws, void* stream) {
  elem_loss_launch<Elem::Bce>(x, t, n, grad, ws, stream, "elem_loss_kernel<bce>");
}
void mse(const float* p, const float* t, int64_t n, float* grad, void* ws, void* stream) {
  elem_loss_launch<Elem::Mse>(p, t, n, grad, ws, stream, "elem_loss_kernel<mse>");
}
void mse(const double* p, const double* t, int64_t n, double* grad, void* ws, void* stream) {
  elem_loss_launch<Elem::Mse>(p, t, n, grad, ws, stream, "elem_loss_kernel<mse>");
}
void mae(const float* p, const float* t, int64_t n, float* grad, void* ws, void* stream) {
  elem_loss_launch<Elem::Mae>(p, t, n, grad, ws, stream, "elem_loss_kernel<mae>");
}
void mae(const double* p, const double* t, int64_t n, double* grad, void* ws, void* stream) {
  elem_loss_launch<Elem::Mae>(p, t, n, grad, ws, stream, "elem_loss_kernel<mae>");
}

double loss_result(const void* ws, void* stream, const char* what) {
  FASTNN_CHECK(ws != nullptr, "loss_result: null workspace");
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  LossStatus h;
  // Faults inside the loss kernels surface here, at the first synchronising call.
  check(cudaMemcpyAsync(&h, ws, sizeof h, cudaMemcpyDeviceToHost, s),
        (std::string("CUDA kernels of ") + what + " (reading the loss)").c_str());
  check(cudaStreamSynchronize(s), (std::string("CUDA kernels of ") + what).c_str());
  if (h.code == kBadLabel)
    throw ValueError("labels: expected class indices in [0, " + std::to_string(h.classes) +
                     "), got " + std::to_string(h.bad_label) + " at position " +
                     std::to_string(h.bad_index));
  if (h.code == kZeroWeight)
    throw ValueError("class_weight: the weights of the labelled classes sum to zero");
  return h.loss;
}

}  // namespace cuda
}  // namespace fastnn
