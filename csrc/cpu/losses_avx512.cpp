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

FASTNN_DEFINE_LOSSES(fastnn::avx512::VecF32, AccD)

}  // namespace avx512
}  // namespace cpu
}  // namespace fastnn
