// Vectorized float32 math: exp, expm1, log1p, sigmoid, tanh, erfc, the normal CDF Phi.
// Written once as templates over a vector wrapper V, so the AVX-512 and AVX2 kernels (and later
// the GEMM epilogue) share one implementation; simd_vec_avx512.h / simd_vec_avx2.h provide V.
//
// V must provide (all static): T (float), R (register), M (lane mask), W (lanes),
//   set1, zero, add, sub, mul, div, fma(a, b, c) = a*b + c, abs, neg_abs (-|a|), copysign(mag, sgn),
//   min(a, b), max(a, b) with Intel's NaN rule (the SECOND operand is returned when either is NaN:
//   min(bound, x) keeps a NaN x), round (to nearest), cmp_gt, cmp_ge, cmp_eq, is_nan,
//   select(m, if_true, if_false), pow2(n) = 2^n for integer-valued n in [-126, 127],
//   ldexp(p, n) = p 2^n rounded once, for p in [0.5, 2] and integer-valued n in [-151, 129],
//   frexp(y, &k): y = m * 2^k, m in [0.75, 1.5), for positive normal finite y.
//
// Accuracy (measured against a float64 oracle by tests/test_activations.py): exp, expm1, log1p,
// sigmoid ~1-2 ulp; tanh ~3 ulp; erfc / Phi within a few 1e-7 relative, down to the denormals.
// Every function returns NaN for a NaN input and never overflows for a finite one.
//
// The activations built here (sigmoid, tanh, gelu and their derivatives) are vector forms of
// core/act_math.h, the one scalar definition every other path uses: change a formula there first.
#pragma once

namespace fastnn {
namespace simd_math {

// (e^r - 1 - r) / r^2 to degree 5, 1/2! + r/3! + ... + r^5/7!, by Horner: the series both
// expm1_reduced and exp_reduced finish.
template <class V>
inline typename V::R exp_taylor_from_2(typename V::R r) {
  typename V::R p = V::set1(1.f / 5040);
  p = V::fma(p, r, V::set1(1.f / 720));
  p = V::fma(p, r, V::set1(1.f / 120));
  p = V::fma(p, r, V::set1(1.f / 24));
  p = V::fma(p, r, V::set1(1.f / 6));
  return V::fma(p, r, V::set1(0.5f));
}

// expm1(r) for |r| <= ln2/2 (+ rounding): Taylor series to r^7; the truncation, r^8/8!, is below
// 2e-8 of the result there, a third of a float ulp.
template <class V>
inline typename V::R expm1_reduced(typename V::R r) {
  return V::fma(V::mul(r, r), exp_taylor_from_2<V>(r), r);
}

// e^r for |r| <= ln2/2 (+ rounding): one degree-7 Horner chain (7 FMAs); the truncation,
// r^8/8!, is below 2e-8 relative.
template <class V>
inline typename V::R exp_reduced(typename V::R r) {
  const typename V::R p = V::fma(exp_taylor_from_2<V>(r), r, V::set1(1.f));
  return V::fma(p, r, V::set1(1.f));
}

// x + lo = n ln2 + r with n integer-valued and |r| <= ln2/2 (Cody-Waite: ln2 in two parts, so
// x - n ln2 loses nothing for |n| <= 150). lo carries digits that x alone cannot hold (erfc
// passes the rounding error of z^2 here); it must be small next to x's ulp budget, |lo| < ~2.
template <class V>
inline void exp_reduce(typename V::R x, typename V::R lo, typename V::R& n, typename V::R& r) {
  n = V::round(V::mul(V::add(x, lo), V::set1(1.44269504088896341f)));
  r = V::fma(n, V::set1(-0.693359375f), x);  // ln2 high part: 8 bits, n * it is exact
  r = V::fma(n, V::set1(2.12194440e-4f), r);  // ln2 = 0.693359375 - 2.12194440e-4
  r = V::add(r, lo);
}

// e^(x + lo) * 2^k, k an integer (default 0). x is clamped to [-104, 89] - k ln2 first:
// below, the result is under half the least denormal (so 0); above, over FLT_MAX (so inf).
// V::ldexp rounds a result in the denormal range once, correctly. A caller that multiplies the result by more
// factors passes k > 0 and scales back at the end, so that the product, not e^x, is rounded
// into the denormals (gelu(-13.6) = -7.65e-40 would otherwise keep only 5 digits).
template <class V>
inline typename V::R exp_lo(typename V::R x, typename V::R lo, float k = 0.f) {
  using R = typename V::R;
  const float shift = k * 0.693147181f;
  x = V::min(V::set1(89.f - shift), V::max(V::set1(-104.f - shift), x));  // NaN passes through
  R n, r;
  exp_reduce<V>(x, lo, n, r);
  return V::ldexp(exp_reduced<V>(r), V::add(n, V::set1(k)));
}

// e^x, the hot path of sigmoid and softmax: exp_lo without the lo and k terms.
template <class V>
inline typename V::R exp(typename V::R x) {
  using R = typename V::R;
  x = V::min(V::set1(89.f), V::max(V::set1(-104.f), x));  // NaN passes through
  const R n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  R r = V::fma(n, V::set1(-0.693359375f), x);
  r = V::fma(n, V::set1(2.12194440e-4f), r);
  return V::ldexp(exp_reduced<V>(r), n);
}

// e^x - 1 without the cancellation of exp(x) - 1 near 0: with x = n ln2 + r,
// e^x - 1 = 2^n expm1(r) + (2^n - 1), and 2^n - 1 is exact for -24 <= n <= 24. Above that the -1
// is below half an ulp and e^x itself is returned (through ldexp, so it overflows only when the
// true result does). Below -30 the result is -1 in float.
template <class V>
inline typename V::R expm1(typename V::R x) {
  using R = typename V::R;
  const R one = V::set1(1.f);
  x = V::min(V::set1(89.f), V::max(V::set1(-30.f), x));
  R n, r;
  exp_reduce<V>(x, V::zero(), n, r);
  const R em = expm1_reduced<V>(r);
  const R s = V::pow2(V::min(n, V::set1(25.f)));  // n >= -44 here
  const R small = V::fma(s, em, V::sub(s, one));
  const R big = V::ldexp(V::add(em, one), n);
  return V::select(V::cmp_gt(n, V::set1(24.f)), big, small);
}

// log(1 + u) for u >= -1 (fdlibm's method). y = 1 + u is rounded; its rounding error c is
// recovered exactly (Fast2Sum, bigger operand first) and added back as c / y. With
// y = m 2^k, m in [0.75, 1.5), f = m - 1 (exact), s = f / (2 + f):
// log(m) = f - hfsq + s (hfsq + R(s^2)), hfsq = f^2 / 2, R = 2/3 s^2 + 2/5 s^4 + ...
// |s| <= 0.2, so four terms of R leave an error near 1e-8 of the result.
template <class V>
inline typename V::R log1p(typename V::R u) {
  using R = typename V::R;
  const R one = V::set1(1.f);
  const R y = V::add(one, u);
  R c = V::select(V::cmp_gt(V::abs(u), one), V::add(V::sub(u, y), one), V::add(V::sub(one, y), u));
  c = V::div(c, y);
  R k;
  const R m = V::frexp(y, k);
  const R f = V::sub(m, one);
  const R s = V::div(f, V::add(V::set1(2.f), f));
  const R z = V::mul(s, s);
  R poly = V::set1(2.f / 9);
  poly = V::fma(poly, z, V::set1(2.f / 7));
  poly = V::fma(poly, z, V::set1(2.f / 5));
  poly = V::fma(poly, z, V::set1(2.f / 3));
  poly = V::mul(poly, z);
  const R hfsq = V::mul(V::set1(0.5f), V::mul(f, f));
  // log(y) + c = k ln2_hi + (f - (hfsq - (s (hfsq + R) + (k ln2_lo + c))))
  const R tail = V::fma(s, V::add(hfsq, poly), V::fma(k, V::set1(1.42860677e-6f), c));
  R res = V::fma(k, V::set1(0.693145752f), V::sub(f, V::sub(hfsq, tail)));
  // Edges the reduction cannot see: +inf, -1 (log 0), below -1 (NaN).
  res = V::select(V::cmp_eq(u, V::set1(__builtin_inff())), u, res);
  res = V::select(V::cmp_eq(u, V::set1(-1.f)), V::set1(-__builtin_inff()), res);
  res = V::select(V::cmp_gt(V::set1(-1.f), u), V::set1(__builtin_nanf("")), res);
  return res;
}

// 1 / (1 + e^-x) from e = e^-|x| <= 1 only: no overflow anywhere, and for x < 0 the result
// e / (1 + e) keeps full relative accuracy down to the denormals.
template <class V>
inline typename V::R sigmoid(typename V::R x) {
  using R = typename V::R;
  const R e = exp<V>(V::neg_abs(x));
  const R d = V::div(V::set1(1.f), V::add(V::set1(1.f), e));
  return V::select(V::cmp_gt(x, V::zero()), d, V::mul(e, d));
}

// tanh|x| = -em / (2 + em), em = expm1(-2|x|) in (-1, 0]: accurate near 0 (no 1 - e^-2x
// cancellation) and exactly 1 for |x| >= 9; the sign is copied back.
template <class V>
inline typename V::R tanh(typename V::R x) {
  using R = typename V::R;
  const R ax = V::abs(x);
  const R em = expm1<V>(V::mul(V::set1(-2.f), ax));
  const R t = V::div(V::sub(V::zero(), em), V::add(V::set1(2.f), em));
  return V::copysign(t, x);
}

// erfc(z) 2^k for z >= 0, given z and z^2 = z2_hi + z2_lo (the caller's exact square).
// Numerical Recipes' Chebyshev fit (erfcc, fractional error < 1.2e-7 for all z >= 0):
// erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2). e^-z^2 is the sensitive factor: at z = 9 a
// one-ulp error in z^2 alone would be 5e-6 of the result, hence the exact square.
template <class V>
inline typename V::R erfc_core(typename V::R z, typename V::R z2_hi, typename V::R z2_lo,
                               float k = 0.f) {
  using R = typename V::R;
  const R t = V::div(V::set1(1.f), V::fma(V::set1(0.5f), z, V::set1(1.f)));
  R p = V::set1(0.17087277f);
  p = V::fma(p, t, V::set1(-0.82215223f));
  p = V::fma(p, t, V::set1(1.48851587f));
  p = V::fma(p, t, V::set1(-1.13520398f));
  p = V::fma(p, t, V::set1(0.27886807f));
  p = V::fma(p, t, V::set1(-0.18628806f));
  p = V::fma(p, t, V::set1(0.09678418f));
  p = V::fma(p, t, V::set1(0.37409196f));
  p = V::fma(p, t, V::set1(1.00002368f));
  p = V::fma(p, t, V::set1(-1.26551223f));
  return V::mul(t, exp_lo<V>(V::sub(V::zero(), z2_hi), V::sub(p, z2_lo), k));
}

// erfc(x) for any x: erfc(-z) = 2 - erfc(z). |x| is clamped at 10 (erfc(10) = 2e-45, the least
// denormal) so that z^2 stays finite.
template <class V>
inline typename V::R erfc(typename V::R x) {
  using R = typename V::R;
  const R z = V::min(V::set1(10.f), V::abs(x));
  const R hi = V::mul(z, z);
  const R lo = V::fma(z, z, V::sub(V::zero(), hi));
  const R q = erfc_core<V>(z, hi, lo);
  return V::select(V::cmp_gt(V::zero(), x), V::sub(V::set1(2.f), q), q);
}

// Phi(-|x|) 2^k = erfc(|x| / sqrt 2) 2^k / 2 (k as in exp_lo), and x^2 / 2 as an exact pair:
// z = |x|/sqrt 2 rounded would cost 5e-6 relative at x = -13. |x| is clamped at 20 (Phi(-20) =
// 3e-89: zero in float even scaled by 2^64). Also returns the pair through h_hi / h_lo for the
// callers that need e^(-x^2/2).
template <class V>
inline typename V::R normal_tail(typename V::R x, typename V::R& h_hi, typename V::R& h_lo,
                                 float k = 0.f) {
  using R = typename V::R;
  const R a = V::min(V::set1(20.f), V::abs(x));
  const R sq = V::mul(a, a);
  h_hi = V::mul(V::set1(0.5f), sq);
  h_lo = V::mul(V::set1(0.5f), V::fma(a, a, V::sub(V::zero(), sq)));
  const R z = V::mul(a, V::set1(0.707106781186547524f));
  return V::mul(V::set1(0.5f), erfc_core<V>(z, h_hi, h_lo, k));
}

// Phi(x), the standard normal CDF: Phi(-|x|) from normal_tail, 1 - that for x > 0.
template <class V>
inline typename V::R normal_cdf(typename V::R x) {
  typename V::R hi, lo;
  const typename V::R q = normal_tail<V>(x, hi, lo);
  return V::select(V::cmp_gt(x, V::zero()), V::sub(V::set1(1.f), q), q);
}

// gelu(x) = x Phi(x). For x < 0 the product is formed at scale 2^64 and scaled back last, so
// that results in the denormal range are rounded once (see exp_lo).
template <class V>
inline typename V::R gelu(typename V::R x) {
  using R = typename V::R;
  R hi, lo;
  const R qs = normal_tail<V>(x, hi, lo, 64.f);  // Phi(-|x|) 2^64
  const R down = V::set1(5.42101086e-20f);       // 2^-64
  const R pos = V::mul(x, V::sub(V::set1(1.f), V::mul(qs, down)));
  // Phi is already 0 below -20: clamping x there makes gelu(-inf) = -0, the limit, not -inf * 0.
  const R neg = V::mul(V::mul(V::max(V::set1(-20.f), x), qs), down);
  return V::select(V::cmp_gt(x, V::zero()), pos, neg);
}

// gelu'(x) = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi) from the exact x^2/2 pair;
// scaled by 2^64 for x < 0 as in gelu.
template <class V>
inline typename V::R gelu_derivative(typename V::R x) {
  using R = typename V::R;
  R hi, lo;
  const R qs = normal_tail<V>(x, hi, lo, 64.f);
  const R pdfs = V::mul(V::set1(0.398942280401432678f),
                        exp_lo<V>(V::sub(V::zero(), hi), V::sub(V::zero(), lo), 64.f));
  const R down = V::set1(5.42101086e-20f);
  const R pos = V::fma(x, V::mul(pdfs, down), V::sub(V::set1(1.f), V::mul(qs, down)));
  const R neg = V::mul(V::fma(V::max(V::set1(-20.f), x), pdfs, qs), down);  // as in gelu
  return V::select(V::cmp_gt(x, V::zero()), pos, neg);
}

}  // namespace simd_math
}  // namespace fastnn
