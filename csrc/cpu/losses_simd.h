// Float32 loss loops on vector math, written once over a vector wrapper V (simd_math.h's
// contract) and a double accumulator A, and included by losses_avx512.cpp / losses_avx2.cpp.
// Everything here is a template on V, so the copies built with different instruction sets are
// different functions and never meet at link time.
//
// Row tails (C not a multiple of the vector width) go through a small padded buffer so that
// every value is computed by the same vector code: no scalar libm call, no second rounding rule.
#pragma once
#include <cstdint>

#include "cpu/simd_math.h"

namespace fastnn {
namespace cpu {
namespace losses_simd {

// Vectors summed in float lanes before the partial sum moves to double.
constexpr int64_t kBlock = 8;

// Softmax cross-entropy rows [begin, end) with class-index labels and no label smoothing:
// loss_i = w_y (log s + m - z_y), s = sum_c e^(z_c - m); grad_c = w_y / D (e^(z_c - m) / s - [c == y]).
// Returns the sum of the rows' losses (before division by D = 1 / inv_norm).
template <class V>
double xent_index_rows(const float* logits, const int64_t* labels, const float* weight,
                       int64_t C, int64_t begin, int64_t end, double inv_norm, float* grad) {
  using R = typename V::R;
  constexpr int W = V::W;
  const int64_t full = C / W * W, rest = C - full;
  const float neg_inf = -__builtin_inff();
  alignas(64) float pad[W];
  double total = 0;
  for (int64_t i = begin; i < end; ++i) {
    const float* z = logits + i * C;
    float* g = grad + i * C;

    // Row maximum: every exp below is of a non-positive number (no overflow for any logit).
    R mv = V::set1(neg_inf);
    for (int64_t c = 0; c < full; c += W) mv = V::max(mv, V::load(z + c));
    float m = V::hmax(mv);
    for (int64_t c = full; c < C; ++c) m = z[c] > m ? z[c] : m;

    // e = exp(z - m) into the gradient row, and its sum s = n_max + rest: the elements equal
    // to the maximum contribute exactly 1 each and are counted apart, so that when one class
    // dominates (s = 1 + a little, loss = log s) the little part keeps its float precision
    // (summed in float lanes, flushed to double every kBlock vectors) instead of being
    // rounded against the 1.
    const R mm = V::set1(m), zero = V::zero(), one = V::set1(1.f);
    R sv = zero, nv = zero;
    double rest_sum = 0;
    int64_t k = 0;
    for (int64_t c = 0; c < full; c += W) {
      const R zv = V::load(z + c);
      const R e = simd_math::exp<V>(V::sub(zv, mm));
      V::store(g + c, e);
      const auto is_max = V::cmp_eq(zv, mm);
      sv = V::add(sv, V::select(is_max, zero, e));
      nv = V::add(nv, V::select(is_max, one, zero));
      if (++k % kBlock == 0) {
        rest_sum += double(V::hsum(sv));
        sv = zero;
      }
    }
    if (rest) {
      for (int j = 0; j < W; ++j) pad[j] = j < rest ? z[full + j] : neg_inf;  // e^-inf = 0
      const R zv = V::load(pad);
      const R e = simd_math::exp<V>(V::sub(zv, mm));
      const auto is_max = V::cmp_eq(zv, mm);
      sv = V::add(sv, V::select(is_max, zero, e));
      nv = V::add(nv, V::select(is_max, one, zero));
      V::store(pad, e);
      for (int64_t j = 0; j < rest; ++j) g[full + j] = pad[j];
    }
    rest_sum += double(V::hsum(sv));
    const double n_max = double(V::hsum(nv));
    const double s = n_max + rest_sum;
    // log s = log1p(s - 1) with s - 1 formed without rounding against the 1. (A NaN row has
    // no element equal to its maximum: n_max = 0 and the NaN flows through rest_sum.)
    const double log_s = __builtin_log1p((n_max - 1.0) + rest_sum);

    const int64_t y = labels[i];
    const double wy = weight ? double(weight[y]) : 1.0;
    // A zero weight contributes nothing, also when its logit is -inf (0 * inf would be NaN).
    if (wy != 0) total += wy * (log_s + (double(m) - double(z[y])));
    const double ey = g[y];  // e^(z_y - m), before scaling
    const R alpha = V::set1(float(wy * inv_norm / s));
    for (int64_t c = 0; c < full; c += W) V::store(g + c, V::mul(V::load(g + c), alpha));
    const float alpha_s = float(wy * inv_norm / s);
    for (int64_t c = full; c < C; ++c) g[c] *= alpha_s;
    // p_y - 1 = (e_y - s) / s in double: when y is the likely class, p_y rounded to float
    // first would lose the small difference (a relative error of 1e-4 in this element).
    g[y] = float((ey - s) * (wy * inv_norm / s));
  }
  return total;
}

// Binary cross-entropy with logits over elements [begin, end): loss = max(x, 0) - x t +
// log1p(e^-|x|), grad = (sigmoid(x) - t) / n, with e^-|x| <= 1 serving both. Returns the sum of
// the losses, accumulated in double by A.
template <class V, class A>
double bce_range(const float* x, const float* t, int64_t begin, int64_t end, float inv_n,
                 float* grad) {
  using R = typename V::R;
  constexpr int W = V::W;
  const R zero = V::zero(), one = V::set1(1.f), scale = V::set1(inv_n);
  A acc;
  alignas(64) float px[W], pt[W];
  auto step = [&](R xv, R tv, R& loss, R& g) {
    const R e = simd_math::exp<V>(V::sub(zero, V::abs(xv)));
    const R d = V::div(one, V::add(one, e));
    const R sig = V::select(V::cmp_ge(xv, zero), d, V::mul(e, d));
    g = V::mul(V::sub(sig, tv), scale);
    loss = V::add(V::sub(V::max(zero, xv), V::mul(xv, tv)), simd_math::log1p<V>(e));
  };
  int64_t i = begin;
  for (; i + W <= end; i += W) {
    R loss, g;
    step(V::load(x + i), V::load(t + i), loss, g);
    V::store(grad + i, g);
    acc.add(loss);
  }
  double tail = 0;
  if (i < end) {
    const int64_t rest = end - i;
    for (int j = 0; j < W; ++j) {
      px[j] = j < rest ? x[i + j] : 0.f;
      pt[j] = j < rest ? t[i + j] : 0.f;
    }
    R loss, g;
    step(V::load(px), V::load(pt), loss, g);
    V::store(pt, g);
    V::store(px, loss);
    for (int64_t j = 0; j < rest; ++j) {
      grad[i + j] = pt[j];
      tail += double(px[j]);
    }
  }
  return acc.total() + tail;
}

}  // namespace losses_simd
}  // namespace cpu
}  // namespace fastnn

// The entry points losses.cpp declares for one instruction set, on wrapper V and accumulator A:
// expand inside fastnn::cpu::<isa> in the unit built with that ISA's flags.
#define FASTNN_DEFINE_LOSSES(V, A)                                                              \
  double xent_index_rows(const float* logits, const int64_t* labels, const float* weight,       \
                         int64_t C, int64_t begin, int64_t end, double inv_norm, float* grad) { \
    return losses_simd::xent_index_rows<V>(logits, labels, weight, C, begin, end, inv_norm,     \
                                           grad);                                               \
  }                                                                                             \
  double bce_range(const float* x, const float* t, int64_t begin, int64_t end, float inv_n,     \
                   float* grad) {                                                               \
    return losses_simd::bce_range<V, A>(x, t, begin, end, inv_n, grad);                         \
  }
