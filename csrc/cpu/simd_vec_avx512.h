// The float32 AVX-512 register wrapper (and its float64 twin for the GEMM) that simd_math.h and
// the activation kernels are written against (see simd_math.h for the contract). Include only
// from files compiled with -mavx512f.
#pragma once
#include <immintrin.h>

#include "cpu/simd_vec_ops.h"

namespace fastnn {
namespace avx512 {

struct VecF32 {
  FASTNN_VEC_COMMON(_mm512, ps, float, __m512, _mm512_cmp_ps_mask, __mmask16)
  static R abs(R a) { return _mm512_abs_ps(a); }
  static R neg_abs(R a) {
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_set1_epi32(int(0x80000000u))));
  }
  static R copysign(R mag, R sgn) {
    const __m512i s = _mm512_set1_epi32(int(0x80000000u));
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(s, _mm512_castps_si512(sgn),
                                                         _mm512_castps_si512(mag), 0xca));  // s ? sgn : mag
  }
  static R round(R a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static R select(M m, R t, R f) { return _mm512_mask_blend_ps(m, f, t); }
  // scalef handles any exponent; the callers keep n in the normal range anyway.
  static R pow2(R n) { return _mm512_scalef_ps(_mm512_set1_ps(1.f), n); }
  static R ldexp(R p, R n) { return _mm512_scalef_ps(p, n); }  // one rounding, denormals too
  static R frexp(R y, R& k) {
    const R m = _mm512_getmant_ps(y, _MM_MANT_NORM_p75_1p5, _MM_MANT_SIGN_src);
    k = _mm512_sub_ps(_mm512_getexp_ps(y), _mm512_getexp_ps(m));  // getexp(m) is -1 or 0
    return m;
  }
  static float hsum(R a) { return _mm512_reduce_add_ps(a); }
  static float hmax(R a) { return _mm512_reduce_max_ps(a); }
};

// The float64 register, for the GEMM micro-kernels (arithmetic, compares and select only).
struct VecF64 {
  FASTNN_VEC_COMMON(_mm512, pd, double, __m512d, _mm512_cmp_pd_mask, __mmask8)
  static R select(M m, R t, R f) { return _mm512_mask_blend_pd(m, f, t); }
};

}  // namespace avx512
}  // namespace fastnn
