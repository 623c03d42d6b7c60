// Dropout with AVX-512: Philox 4x32-10 on 16 counter blocks per vector (64 elements per step).
//
// The four output words of the 16 blocks come out as four vectors c0..c3 (lane l = block l);
// element 4l + j is word j of block l. Each word vector gives a 16-bit keep mask; pdep spreads
// the four masks into the 64-bit mask of the 64 elements in order, which then drives masked
// multiplies (y) and a masked byte move (the 0/1 mask) directly.
#define FASTNN_ISA avx512
#include <immintrin.h>

#include "cpu/dropout_impl.h"

namespace fastnn {
namespace cpu {
namespace avx512 {

namespace {

// The 32-bit word vector philox_rounds runs on.
struct Words {
  using R = __m512i;
  // (hi, lo) 32-bit halves of the 32x32 -> 64-bit products c * m, lane by lane.
  static void mul_hi_lo(__m512i c, __m512i m, __m512i& hi, __m512i& lo) {
    const __m512i even = _mm512_mul_epu32(c, m);                          // lanes 0, 2, ...
    const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(c, 32), m);    // lanes 1, 3, ...
    lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  }
  static R set1(uint32_t k) { return _mm512_set1_epi32(int(k)); }
  static R set1_64(uint32_t m) { return _mm512_set1_epi64(m); }
  static R xor_(R a, R b) { return _mm512_xor_si512(a, b); }
};

// Keep mask of the 64 elements starting at element 4 * block0.
inline uint64_t keep_mask64(uint64_t block0, uint32_t k0, uint32_t k1, __m512i keep_from) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // Counter (block0 + l) as (low word, high word); the carry into the high word is per lane.
  const __m512i lo_start = _mm512_set1_epi32(int(uint32_t(block0)));
  __m512i c0 = _mm512_add_epi32(lo_start, lane);
  const __mmask16 carry = _mm512_cmplt_epu32_mask(c0, lo_start);
  __m512i c1 = _mm512_mask_add_epi32(_mm512_set1_epi32(int(uint32_t(block0 >> 32))), carry,
                                     _mm512_set1_epi32(int(uint32_t(block0 >> 32))),
                                     _mm512_set1_epi32(1));
  __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
  dropout_detail::philox_rounds<Words>(c0, c1, c2, c3, k0, k1);
  const auto keep = [&](__m512i c) -> uint64_t {
    return _mm512_cmpge_epu32_mask(_mm512_srli_epi32(c, 8), keep_from);
  };
  return _pdep_u64(keep(c0), 0x1111111111111111ull) | _pdep_u64(keep(c1), 0x2222222222222222ull) |
         _pdep_u64(keep(c2), 0x4444444444444444ull) | _pdep_u64(keep(c3), 0x8888888888888888ull);
}

inline void apply(const float* x, float* y, uint64_t m, float scale) {
  const __m512 s = _mm512_set1_ps(scale);
  for (int q = 0; q < 4; ++q)
    _mm512_storeu_ps(y + 16 * q,
                     _mm512_maskz_mul_ps(__mmask16(m >> (16 * q)), _mm512_loadu_ps(x + 16 * q), s));
}

inline void apply(const double* x, double* y, uint64_t m, double scale) {
  const __m512d s = _mm512_set1_pd(scale);
  for (int q = 0; q < 8; ++q)
    _mm512_storeu_pd(y + 8 * q,
                     _mm512_maskz_mul_pd(__mmask8(m >> (8 * q)), _mm512_loadu_pd(x + 8 * q), s));
}


}  // namespace

template <class T>
void dropout_range(const T* x, T* y, uint8_t* mask, int64_t begin, int64_t end,
                   uint32_t keep_from, T scale, uint32_t k0, uint32_t k1) {
  const __m512i keep_vec = _mm512_set1_epi32(int(keep_from));
  const __m512i ones = _mm512_set1_epi8(1);
  dropout_batches<64>(x, y, mask, begin, end, keep_from, scale, k0, k1, [&](int64_t i) {
    const uint64_t m = keep_mask64(uint64_t(i) >> 2, k0, k1, keep_vec);
    _mm512_storeu_si512(mask + i, _mm512_maskz_mov_epi8(m, ones));
    apply(x + i, y + i, m, scale);
  });
}

FASTNN_INSTANTIATE_DROPOUT_RANGE

}  // namespace avx512
}  // namespace cpu
}  // namespace fastnn
