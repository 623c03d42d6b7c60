// Fused loss + gradient kernels (see losses.h). Sums are kept in double whatever T is: a float
// accumulator over a million elements would lose the digits the tests (and users) rely on.
#include "cpu/losses.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/parallel.h"
#include "cpu/chunked_sum.h"

namespace fastnn {
namespace cpu {

// Float32 hot loops on vector math (losses_simd.h), one build per instruction set.
#ifdef FASTNN_X86
#define FASTNN_DECLARE_LOSSES(isa)                                                          \
  namespace isa {                                                                           \
  double xent_index_rows(const float* logits, const int64_t* labels, const float* weight,   \
                         int64_t C, int64_t begin, int64_t end, double inv_norm, float* grad); \
  double bce_range(const float* x, const float* t, int64_t begin, int64_t end, float inv_n, \
                   float* grad);                                                            \
  }
FASTNN_DECLARE_LOSSES(avx2)
FASTNN_DECLARE_LOSSES(avx512)
#undef FASTNN_DECLARE_LOSSES
#endif

namespace {

using XentRowsFn = double (*)(const float*, const int64_t*, const float*, int64_t, int64_t,
                              int64_t, double, float*);
using BceRangeFn = double (*)(const float*, const float*, int64_t, int64_t, float, float*);

// The vector loops for this CPU, or nulls for the portable code.
struct SimdLosses {
  XentRowsFn xent_rows = nullptr;
  BceRangeFn bce_range = nullptr;
};

SimdLosses simd_losses() {
  switch (active_simd()) {
#ifdef FASTNN_X86
    case Simd::Avx512: return {&avx512::xent_index_rows, &avx512::bce_range};
    case Simd::Avx2: return {&avx2::xent_index_rows, &avx2::bce_range};
#endif
    default: return {};
  }
}

// Elements per chunk: big enough that a task outweighs the pool's hand-off, small enough that
// a few million elements still spread over many cores.
constexpr int64_t kChunkElems = int64_t(1) << 14;

// ------------------------------------------------------------------ softmax cross-entropy
//
// With per-class target mass a_c (class weight times smoothed target), a row's loss is
// sum_c a_c * (-log q_c), q = softmax(z), and its gradient is (S q_c - a_c) with S = sum_c a_c.
// For index labels a_c = (1 - eps) w_y [c == y] + eps/C w_c; for probabilities
// a_c = w_c ((1 - eps) p_c + eps/C). Every row is divided by the normaliser D (sum_i w_{y_i}
// for index labels, N for probabilities), as torch.nn.functional.cross_entropy does.
template <class T>
struct XentPlan {
  const SoftmaxXentArgs<T>* a;
  double keep;      // 1 - eps
  double spread;    // eps / C
  double sum_w;     // sum_c w_c
  double inv_norm;  // 1 / D
};

template <class T>
double xent_row(const XentPlan<T>& p, int64_t i) {
  const SoftmaxXentArgs<T>& a = *p.a;
  const int64_t C = a.C;
  const T* z = a.logits + i * C;
  T* g = a.grad + i * C;
  const T* prob = a.probs ? a.probs + i * C : nullptr;

  // Shifting by the row maximum keeps every exp in (0, 1]: no overflow for logits like 1e4.
  T m = z[0];
  for (int64_t c = 1; c < C; ++c) m = z[c] > m ? z[c] : m;
  double s = 0, S = 0;
  for (int64_t c = 0; c < C; ++c) {
    const T e = std::exp(z[c] - m);
    g[c] = e;  // the grad row holds exp(z - m) until the final sweep
    s += e;
    if (prob) S += (a.weight ? double(a.weight[c]) : 1.0) * (p.keep * prob[c] + p.spread);
  }
  const double log_s = std::log(s), inv_s = 1.0 / s;

  int64_t y = -1;
  double wy = 0;
  if (!prob) {
    y = a.labels[i];
    wy = a.weight ? double(a.weight[y]) : 1.0;
    S = p.keep * wy + p.spread * p.sum_w;
  }
  double loss = 0;
  for (int64_t c = 0; c < C; ++c) {
    const double wc = a.weight ? double(a.weight[c]) : 1.0;
    const double ac =
        prob ? wc * (p.keep * prob[c] + p.spread) : p.spread * wc + (c == y ? p.keep * wy : 0.0);
    // -log q_c = log s + (m - z_c); skipping zero mass keeps a -inf logit of an untargeted
    // class from turning the loss into 0 * inf = NaN.
    if (ac != 0) loss += ac * (log_s + (double(m) - double(z[c])));
    g[c] = static_cast<T>((S * (double(g[c]) * inv_s) - ac) * p.inv_norm);
  }
  return loss;
}

template <class T>
double softmax_cross_entropy_impl(const SoftmaxXentArgs<T>& a) {
  FASTNN_CHECK(a.N > 0, "logits: expected at least one row, got 0");
  FASTNN_CHECK(a.C > 0, "logits: expected at least one class, got 0");
  FASTNN_CHECK((a.labels != nullptr) != (a.probs != nullptr),
               "labels: give class indices or probabilities, not both");
  FASTNN_CHECK(a.label_smoothing >= 0 && a.label_smoothing <= 1,
               "label_smoothing: expected a number in [0, 1]");
  XentPlan<T> p{&a, 1.0 - a.label_smoothing, a.label_smoothing / double(a.C), 0.0, 0.0};
  for (int64_t c = 0; c < a.C; ++c) p.sum_w += a.weight ? double(a.weight[c]) : 1.0;

  double norm = double(a.N);
  if (a.labels) {
    // One cheap pass first: every label is checked before any grad is written, and the
    // weighted normaliser must be known before the first row's gradient is scaled by it.
    norm = 0;
    for (int64_t i = 0; i < a.N; ++i) {
      const int64_t y = a.labels[i];
      if (y < 0 || y >= a.C)
        throw ValueError("labels: expected class indices in [0, " + std::to_string(a.C) +
                         "), got " + std::to_string(y) + " at position " + std::to_string(i));
      norm += a.weight ? double(a.weight[y]) : 1.0;
    }
    FASTNN_CHECK(norm != 0, "class_weight: the weights of the labelled classes sum to zero");
  }
  p.inv_norm = 1.0 / norm;

  const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkElems / a.C);
  if constexpr (std::is_same<T, float>::value) {
    // The common case -- class indices, no smoothing -- on vector math.
    const XentRowsFn rows = simd_losses().xent_rows;
    if (rows && a.labels && a.label_smoothing == 0) {
      const double total =
          chunked_sum(a.N, rows_per_chunk, a.C, [&](int64_t begin, int64_t end) {
            return rows(a.logits, a.labels, a.weight, a.C, begin, end, p.inv_norm, a.grad);
          });
      return total / norm;
    }
  }
  const double total = chunked_sum(a.N, rows_per_chunk, a.C, [&](int64_t begin, int64_t end) {
    double sum = 0;
    for (int64_t i = begin; i < end; ++i) sum += xent_row(p, i);
    return sum;
  });
  return total / norm;
}

// ------------------------------------------------------------------ element-wise losses
//
// Each takes f(i) -> loss term of element i (writing grad[i]); the loss term is computed in
// double from the exactly representable inputs, so float32 inputs lose nothing to cancellation.
template <class F>
double elementwise_mean(int64_t n, const F& f) {
  FASTNN_CHECK(n > 0, "expected at least one element, got 0");
  const double total = chunked_sum(n, kChunkElems, 1, [&](int64_t begin, int64_t end) {
    double sum = 0;
    for (int64_t i = begin; i < end; ++i) sum += f(i);
    return sum;
  });
  return total / double(n);
}

template <class T>
double bce_impl(const T* x, const T* t, int64_t n, T* grad) {
  if constexpr (std::is_same<T, float>::value) {
    if (const BceRangeFn range = simd_losses().bce_range) {
      FASTNN_CHECK(n > 0, "expected at least one element, got 0");
      const float inv_n = float(1.0 / double(n));
      const double total = chunked_sum(n, kChunkElems, 1, [&](int64_t begin, int64_t end) {
        return range(x, t, begin, end, inv_n, grad);
      });
      return total / double(n);
    }
  }
  const double inv_n = 1.0 / double(n);
  return elementwise_mean(n, [=](int64_t i) {
    const double xi = x[i], ti = t[i];
    // exp(-|x|) <= 1 serves both the stable loss and the stable sigmoid.
    const double e = std::exp(-std::fabs(xi));
    const double sig = xi >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    grad[i] = static_cast<T>((sig - ti) * inv_n);
    return std::max(xi, 0.0) - xi * ti + std::log1p(e);
  });
}

template <class T>
double mse_impl(const T* p, const T* t, int64_t n, T* grad) {
  const double scale = 2.0 / double(n);
  return elementwise_mean(n, [=](int64_t i) {
    const double d = double(p[i]) - double(t[i]);
    grad[i] = static_cast<T>(d * scale);
    return d * d;
  });
}

template <class T>
double mae_impl(const T* p, const T* t, int64_t n, T* grad) {
  const double inv_n = 1.0 / double(n);
  return elementwise_mean(n, [=](int64_t i) {
    const double d = double(p[i]) - double(t[i]);
    // sign(0) = 0 as in torch; a NaN difference stays NaN rather than posing as a slope.
    const double sign = d > 0 ? 1.0 : d < 0 ? -1.0 : d == 0 ? 0.0 : d;
    grad[i] = static_cast<T>(sign * inv_n);
    return std::fabs(d);
  });
}

}  // namespace

double softmax_cross_entropy(const SoftmaxXentArgs<float>& a) { return softmax_cross_entropy_impl(a); }
double softmax_cross_entropy(const SoftmaxXentArgs<double>& a) { return softmax_cross_entropy_impl(a); }

double binary_cross_entropy_with_logits(const float* x, const float* t, int64_t n, float* grad) {
  return bce_impl(x, t, n, grad);
}
double binary_cross_entropy_with_logits(const double* x, const double* t, int64_t n, double* grad) {
  return bce_impl(x, t, n, grad);
}
double mse(const float* p, const float* t, int64_t n, float* grad) { return mse_impl(p, t, n, grad); }
double mse(const double* p, const double* t, int64_t n, double* grad) { return mse_impl(p, t, n, grad); }
double mae(const float* p, const float* t, int64_t n, float* grad) { return mae_impl(p, t, n, grad); }
double mae(const double* p, const double* t, int64_t n, double* grad) { return mae_impl(p, t, n, grad); }

}  // namespace cpu
}  // namespace fastnn
