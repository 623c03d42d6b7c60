// The register-wrapper members that every x86 vector width and element type spells alike
// (_mm256_add_ps, _mm512_add_pd, ...), written once and stamped into the wrappers of
// simd_vec_avx2.h and simd_vec_avx512.h from the intrinsic prefix and element suffix, so the
// float and double, AVX2 and AVX-512 wrappers cannot drift apart in what these mean.
#pragma once

// T_ the element, R_ the register (W follows from their sizes); CMP(a, b, predicate) the ISA's
// compare, which yields the lane mask type M_ (a register on AVX2, a k-mask on AVX-512).
#define FASTNN_VEC_COMMON(PFX, SFX, T_, R_, CMP, M_)                  \
  using T = T_;                                                       \
  using R = R_;                                                       \
  static constexpr int W = int(sizeof(R_) / sizeof(T_));              \
  static R zero() { return PFX##_setzero_##SFX(); }                   \
  static R set1(T x) { return PFX##_set1_##SFX(x); }                  \
  static R load(const T* p) { return PFX##_loadu_##SFX(p); }          \
  static void store(T* p, R v) { PFX##_storeu_##SFX(p, v); }          \
  static R add(R a, R b) { return PFX##_add_##SFX(a, b); }            \
  static R sub(R a, R b) { return PFX##_sub_##SFX(a, b); }            \
  static R mul(R a, R b) { return PFX##_mul_##SFX(a, b); }            \
  static R div(R a, R b) { return PFX##_div_##SFX(a, b); }            \
  static R fma(R a, R b, R c) { return PFX##_fmadd_##SFX(a, b, c); }  \
  static R min(R a, R b) { return PFX##_min_##SFX(a, b); }            \
  static R max(R a, R b) { return PFX##_max_##SFX(a, b); }            \
  /* the ordered compares (false on NaN) and the NaN test */          \
  using M = M_;                                                       \
  static M cmp_gt(R a, R b) { return CMP(a, b, _CMP_GT_OQ); }         \
  static M cmp_ge(R a, R b) { return CMP(a, b, _CMP_GE_OQ); }         \
  static M cmp_eq(R a, R b) { return CMP(a, b, _CMP_EQ_OQ); }         \
  static M is_nan(R a) { return CMP(a, a, _CMP_UNORD_Q); }
