// The float32 AVX2 + FMA register wrapper (and its float64 twin for the GEMM) that simd_math.h
// and the activation kernels are written against (see simd_math.h for the contract). Include
// only from files compiled with -mavx2 -mfma.
#pragma once
#include <immintrin.h>

#include "cpu/simd_vec_ops.h"

namespace fastnn {
namespace avx2 {

struct VecF32 {
  // A lane mask is all ones / all zeros bits, as blendv wants.
  FASTNN_VEC_COMMON(_mm256, ps, float, __m256, _mm256_cmp_ps, __m256)
  static R abs(R a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a); }
  static R neg_abs(R a) { return _mm256_or_ps(a, _mm256_set1_ps(-0.f)); }
  static R copysign(R mag, R sgn) {
    const R s = _mm256_set1_ps(-0.f);
    return _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sgn));
  }
  static R round(R a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static R select(M m, R t, R f) { return _mm256_blendv_ps(f, t, m); }
  // 2^n built in the exponent field: valid for integer-valued n in [-126, 127].
  static R pow2(R n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  // y positive, normal, finite: exponent and mantissa fields read directly; mantissas >= 1.5
  // are halved (and k bumped) to land in [0.75, 1.5).
  // Two normal factors 2^n1 2^n2 (n1 = n/2 rounded): only the last product can round into the
  // denormals or overflow, so it is rounded once.
  static R ldexp(R p, R n) {
    const R n1 = round(_mm256_mul_ps(n, _mm256_set1_ps(0.5f)));
    return _mm256_mul_ps(_mm256_mul_ps(p, pow2(n1)), pow2(_mm256_sub_ps(n, n1)));
  }
  static R frexp(R y, R& k) {
    const __m256i b = _mm256_castps_si256(y);
    const __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(b, 23), _mm256_set1_epi32(127));
    R m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(b, _mm256_set1_epi32(0x007fffff)),
                                              _mm256_set1_epi32(0x3f800000)));
    const R big = _mm256_cmp_ps(m, _mm256_set1_ps(1.5f), _CMP_GE_OQ);
    m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), big);
    k = _mm256_add_ps(_mm256_cvtepi32_ps(e), _mm256_and_ps(big, _mm256_set1_ps(1.f)));
    return m;
  }
  static float hsum(R a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float hmax(R a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

// The float64 register, for the GEMM micro-kernels (arithmetic, compares and select only).
struct VecF64 {
  FASTNN_VEC_COMMON(_mm256, pd, double, __m256d, _mm256_cmp_pd, __m256d)
  static R select(M m, R t, R f) { return _mm256_blendv_pd(f, t, m); }
};

}  // namespace avx2
}  // namespace fastnn
