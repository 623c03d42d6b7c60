// float32 activation kernels written once over a vector wrapper V (simd_vec_<isa>.h); each
// activations_<isa>.cpp instantiates them with its V. Single-threaded: activations.cpp cuts the
// work into chunks and calls these per chunk. See activations.h for the contract. The formulas
// are those of core/act_math.h (the scalar reference, one definition per activation), in vector
// form: any change to an activation starts there.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/act_math.h"
#include "cpu/simd_math.h"

namespace fastnn {
namespace cpu {
namespace simd_act {

namespace sm = simd_math;

// y[i] = f(x[i]). The tail (n % W elements) goes through a padded stack vector, so every element
// is computed by the same lane arithmetic whichever chunk or position it falls in.
template <class V, class F>
inline void map1(const float* x, float* y, int64_t n, const F& f) {
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) V::store(y + i, f(V::load(x + i)));
  if (i == n) return;
  alignas(64) float buf[V::W];
  for (int j = 0; j < V::W; ++j) buf[j] = i + j < n ? x[i + j] : 0.f;
  V::store(buf, f(V::load(buf)));
  std::memcpy(y + i, buf, sizeof(float) * static_cast<size_t>(n - i));
}

// out[i] = f(a[i], b[i]), tail as in map1.
template <class V, class F>
inline void map2(const float* a, const float* b, float* out, int64_t n, const F& f) {
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) V::store(out + i, f(V::load(a + i), V::load(b + i)));
  if (i == n) return;
  alignas(64) float ba[V::W], bb[V::W];
  for (int j = 0; j < V::W; ++j) {
    ba[j] = i + j < n ? a[i + j] : 0.f;
    bb[j] = i + j < n ? b[i + j] : 0.f;
  }
  V::store(ba, f(V::load(ba), V::load(bb)));
  std::memcpy(out + i, ba, sizeof(float) * static_cast<size_t>(n - i));
}

template <class V>
void act_forward(Act act, float param, const float* x, float* y, int64_t n) {
  using R = typename V::R;
  const R zero = V::zero(), one = V::set1(1.f), p = V::set1(param);
  switch (act) {
    case Act::None:
      if (x != y) std::memmove(y, x, sizeof(float) * static_cast<size_t>(n));
      return;
    case Act::Relu:
      // max(0, NaN) is the NaN (Intel's rule: the second operand); max(0, -0) is -0, and
      // -0 + 0 = +0 makes it the scalar path's +0.
      return map1<V>(x, y, n, [&](R v) { return V::add(V::max(zero, v), zero); });
    case Act::LeakyRelu:
      return map1<V>(x, y, n, [&](R v) { return V::select(V::cmp_gt(v, zero), v, V::mul(v, p)); });
    case Act::Sigmoid: return map1<V>(x, y, n, [](R v) { return sm::sigmoid<V>(v); });
    case Act::Tanh: return map1<V>(x, y, n, [](R v) { return sm::tanh<V>(v); });
    case Act::Gelu:
      return map1<V>(x, y, n, [](R v) { return sm::gelu<V>(v); });
    case Act::Elu:
      return map1<V>(x, y, n, [&](R v) {
        return V::select(V::cmp_gt(v, zero), v, V::mul(p, sm::expm1<V>(v)));
      });
    case Act::Softplus:  // max(x, 0) + log1p(e^-|x|): the exp argument is never positive
      return map1<V>(x, y, n, [&](R v) {
        return V::add(V::max(zero, v), sm::log1p<V>(sm::exp<V>(V::neg_abs(v))));
      });
    case Act::Step:
      return map1<V>(x, y, n, [&](R v) {
        return V::select(V::is_nan(v), v, V::select(V::cmp_gt(v, zero), one, zero));
      });
  }
}

// act'(x). NaN lanes are patched by the caller.
template <class V>
inline typename V::R derivative(Act act, typename V::R x, typename V::R p) {
  using R = typename V::R;
  const R zero = V::zero(), one = V::set1(1.f);
  switch (act) {
    case Act::None: return one;
    case Act::Relu: return V::select(V::cmp_gt(x, zero), one, zero);
    case Act::LeakyRelu: return V::select(V::cmp_gt(x, zero), one, p);
    case Act::Softplus:  // softplus' = sigmoid
    case Act::Sigmoid: {
      // s (1 - s) = e / (1 + e)^2 with e = e^-|x|: no 1 - s cancellation for large x.
      const R e = sm::exp<V>(V::neg_abs(x));
      const R d = V::div(one, V::add(one, e));
      return act == Act::Softplus ? V::select(V::cmp_gt(x, zero), d, V::mul(e, d))
                                  : V::mul(e, V::mul(d, d));
    }
    case Act::Tanh: {
      // 1 - tanh^2 = 4e / (1 + e)^2 with e = e^-2|x|: accurate where tanh^2 rounds to 1.
      const R e = sm::exp<V>(V::mul(V::set1(-2.f), V::abs(x)));
      const R d = V::div(one, V::add(one, e));
      return V::mul(V::mul(V::set1(4.f), e), V::mul(d, d));
    }
    case Act::Gelu: return sm::gelu_derivative<V>(x);
    case Act::Elu: {
      // alpha e^x formed at scale 2^64 (see simd_math::exp_lo): one rounding into the denormals.
      const R es = sm::exp_lo<V>(V::min(zero, x), zero, 64.f);
      return V::select(V::cmp_gt(x, zero), one, V::mul(V::mul(p, es), V::set1(5.42101086e-20f)));
    }
    case Act::Step: return zero;
  }
  return one;
}

// act'(x) from y = act(x), for the activations act_grad_from_output_ok accepts.
template <class V>
inline typename V::R derivative_from_output(Act act, typename V::R y, typename V::R p) {
  using R = typename V::R;
  const R zero = V::zero(), one = V::set1(1.f);
  switch (act) {
    case Act::Relu: return V::select(V::cmp_gt(y, zero), one, zero);
    case Act::LeakyRelu: return V::select(V::cmp_gt(y, zero), one, p);
    case Act::Sigmoid: return V::mul(y, V::sub(one, y));
    case Act::Tanh: return V::mul(V::sub(one, y), V::add(one, y));
    case Act::Elu: return V::select(V::cmp_gt(y, zero), one, V::add(y, p));
    case Act::Softplus: return V::sub(zero, sm::expm1<V>(V::sub(zero, y)));  // 1 - e^-y
    case Act::Step: return zero;
    default: return one;
  }
}

// dx = dy * act'(v), v = x or (from_output) y; a NaN v gives a NaN dx.
template <class V>
void act_backward(Act act, float param, const float* dy, const float* v, float* dx, int64_t n,
                  bool from_output) {
  using R = typename V::R;
  const R p = V::set1(param);
  if (act == Act::None) {
    if (dx != dy) std::memmove(dx, dy, sizeof(float) * static_cast<size_t>(n));
    return;
  }
  if (from_output) {
    map2<V>(dy, v, dx, n, [&](R g, R yv) {
      const R d = derivative_from_output<V>(act, yv, p);
      return V::mul(g, V::select(V::is_nan(yv), yv, d));
    });
    return;
  }
  // One switch per call, not per vector: each case instantiates map2 with a fixed activation.
  auto run = [&](auto tag) {
    constexpr Act a = decltype(tag)::value;
    map2<V>(dy, v, dx, n, [&](R g, R xv) {
      const R d = derivative<V>(a, xv, p);
      return V::mul(g, V::select(V::is_nan(xv), xv, d));
    });
  };
  act_math::with_act(act, run);
}

// Row sums add kBlock vectors in float lanes, then the block's total in double.
constexpr int64_t kBlock = 8;

// One row of (log-)softmax: x, y (n,), y may be x.
template <class V>
void softmax_row(const float* x, float* y, int64_t n, bool log) {
  using R = typename V::R;
  const float ninf = -std::numeric_limits<float>::infinity();
  R mv = V::set1(ninf);
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) mv = V::max(mv, V::load(x + i));
  float m = V::hmax(mv);
  for (int64_t j = i; j < n; ++j) m = x[j] > m ? x[j] : m;
  // Every exponent is x - max <= 0: no overflow for any finite row (softmax([1e4, 0]) = [1, 0]).
  const R mb = V::set1(m);
  R acc = V::zero();
  double s = 0;  // float lanes for kBlock vectors, then double: long rows keep ~1e-7
  i = 0;
  int64_t k = 0;
  for (; i + V::W <= n; i += V::W) {
    const R e = sm::exp<V>(V::sub(V::load(x + i), mb));
    if (!log) V::store(y + i, e);
    acc = V::add(acc, e);
    if (++k % kBlock == 0) {
      s += V::hsum(acc);
      acc = V::zero();
    }
  }
  // The partial last vector (all of a 10-class row) stays in a register until it is scaled:
  // one copy out of it, where storing it unscaled and scaling it through map1 copied it out
  // twice (two memcpy calls per row, ~4% of a small network's batch predict).
  const int64_t tail = n - i;
  alignas(64) float buf[V::W];
  R tail_e = V::zero();
  if (tail > 0) {
    for (int j = 0; j < V::W; ++j) buf[j] = j < tail ? x[i + j] : ninf;  // e^-inf = 0
    tail_e = sm::exp<V>(V::sub(V::load(buf), mb));
    acc = V::add(acc, tail_e);
  }
  s += V::hsum(acc);
  if (log) {
    // log_softmax = (x - max) - log(sum e^(x - max)): finite for any finite row.
    const R ls = V::set1(static_cast<float>(std::log(s)));
    map1<V>(x, y, n, [&](R v) { return V::sub(V::sub(v, mb), ls); });
  } else {
    const R inv = V::set1(static_cast<float>(1.0 / s));
    map1<V>(y, y, i, [&](R v) { return V::mul(v, inv); });
    if (tail > 0) {
      V::store(buf, V::mul(tail_e, inv));
      for (int j = 0; j < V::W; ++j)  // fixed trip count: unrolled, not a memcpy call
        if (j < tail) y[i + j] = buf[j];
    }
  }
}

// One row of the backward: softmax dx = y (dy - sum(dy y)); log_softmax dx = dy - e^y sum(dy).
template <class V>
void softmax_row_backward(const float* dy, const float* y, float* dx, int64_t n, bool log) {
  using R = typename V::R;
  R acc = V::zero();
  double s = 0;  // blocked as in softmax_row
  int64_t i = 0, k = 0;
  for (; i + V::W <= n; i += V::W) {
    const R g = V::load(dy + i);
    acc = log ? V::add(acc, g) : V::fma(g, V::load(y + i), acc);
    if (++k % kBlock == 0) {
      s += V::hsum(acc);
      acc = V::zero();
    }
  }
  s += V::hsum(acc);
  for (int64_t j = i; j < n; ++j) s += log ? double(dy[j]) : double(dy[j]) * y[j];
  const R sb = V::set1(static_cast<float>(s));
  if (log)
    map2<V>(dy, y, dx, n, [&](R g, R yv) { return V::sub(g, V::mul(sm::exp<V>(yv), sb)); });
  else
    map2<V>(dy, y, dx, n, [&](R g, R yv) { return V::mul(yv, V::sub(g, sb)); });
}

}  // namespace simd_act
}  // namespace cpu
}  // namespace fastnn

// The entry points each activations_<isa>.cpp defines (over [0, n) or whole rows, one thread).
#define FASTNN_DEFINE_ACTIVATIONS(V)                                                             \
  void act_forward(Act act, float param, const float* x, float* y, int64_t n) {                 \
    simd_act::act_forward<V>(act, param, x, y, n);                                               \
  }                                                                                              \
  void act_backward(Act act, float param, const float* dy, const float* v, float* dx, int64_t n, \
                    bool from_output) {                                                          \
    simd_act::act_backward<V>(act, param, dy, v, dx, n, from_output);                           \
  }                                                                                              \
  void softmax_rows(const float* x, float* y, int64_t rows, int64_t cols, bool log) {           \
    for (int64_t r = 0; r < rows; ++r) simd_act::softmax_row<V>(x + r * cols, y + r * cols, cols, log); \
  }                                                                                              \
  void softmax_rows_backward(const float* dy, const float* y, float* dx, int64_t rows,          \
                             int64_t cols, bool log) {                                           \
    for (int64_t r = 0; r < rows; ++r)                                                           \
      simd_act::softmax_row_backward<V>(dy + r * cols, y + r * cols, dx + r * cols, cols, log); \
  }
