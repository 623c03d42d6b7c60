// Float32 loss loops built for AVX2 (see losses_simd.h).
#include <immintrin.h>

#include "cpu/losses_simd.h"
#include "cpu/simd_vec_avx2.h"

namespace fastnn {
namespace cpu {
namespace avx2 {

namespace {
// Eight floats added into four double lanes.
struct AccD {
  __m256d a = _mm256_setzero_pd();
  void add(__m256 v) {
    a = _mm256_add_pd(a, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    a = _mm256_add_pd(a, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  double total() const {
    alignas(32) double d[4];
    _mm256_store_pd(d, a);
    return (d[0] + d[1]) + (d[2] + d[3]);
  }
};
}  // namespace

FASTNN_DEFINE_LOSSES(fastnn::avx2::VecF32, AccD)

}  // namespace avx2
}  // namespace cpu
}  // namespace fastnn
