// Float32 loss loops built for AVX-512 (see losses_simd.h).
#include <immintrin.h>

#include "cpu/losses_simd.h"
#include "cpu/simd_vec_avx512.h"

namespace fastnn {
namespace cpu {
namespace avx512 {

namespace {
// Sixteen floats added into eight double lanes.
struct AccD {
  __m512d a = _mm512_setzero_pd();
  void add(__m512 v) {
    a = _mm512_add_pd(a, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    a = _mm512_add_pd(a, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
  }
  double total() const { return _mm512_reduce_add_pd(a); }
};
}  // namespace

double xent_index_rows(const float* logits, const int64_t* labels, const float* weight, int64_t C,
                       int64_t begin, int64_t end, double inv_norm, float* grad) {
  return losses_simd::xent_index_rows<fastnn::avx512::VecF32>(logits, labels, weight, C, begin,
                                                              end, inv_norm, grad);
}

double bce_range(const float* x, const float* t, int64_t begin, int64_t end, float inv_n,
                 float* grad) {
  return losses_simd::bce_range<fastnn::avx512::VecF32, AccD>(x, t, begin, end, inv_n, grad);
}

}  // namespace avx512
}  // namespace cpu
}  // namespace fastnn
