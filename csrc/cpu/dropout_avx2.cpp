// Dropout with AVX2: Philox 4x32-10 on 8 counter blocks per vector (32 elements per step).
//
// As in dropout_avx512.cpp, the four word vectors c0..c3 (lane l = block l) give four 8-bit keep
// masks; element 4l + j is word j of block l, so the 32-bit mask of the 32 elements in order
// interleaves them. pdep would do that in one instruction but is microcoded (hundreds of cycles)
// on Zen 1 and 2, which are AVX2 machines: a 256-entry table spreads 8 bits 4 apart instead.
// Masks then become lane masks (compare against the bit values) for the floats and bytes.
#define FASTNN_ISA avx2
#include <immintrin.h>

#include "cpu/dropout_impl.h"

namespace fastnn {
namespace cpu {
namespace avx2 {

namespace {

// spread[b]: bit i of b moved to bit 4i.
struct SpreadTable {
  uint32_t v[256];
  SpreadTable() {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t s = 0;
      for (int i = 0; i < 8; ++i) s |= ((b >> i) & 1u) << (4 * i);
      v[b] = s;
    }
  }
};
const SpreadTable kSpread;

// The 32-bit word vector philox_rounds runs on.
struct Words {
  using R = __m256i;
  // (hi, lo) 32-bit halves of the 32x32 -> 64-bit products c * m, lane by lane.
  static void mul_hi_lo(__m256i c, __m256i m, __m256i& hi, __m256i& lo) {
    const __m256i even = _mm256_mul_epu32(c, m);
    const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(c, 32), m);
    lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
    hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  }
  static R set1(uint32_t k) { return _mm256_set1_epi32(int(k)); }
  static R set1_64(uint32_t m) { return _mm256_set1_epi64x(m); }
  static R xor_(R a, R b) { return _mm256_xor_si256(a, b); }
};

// Keep mask of the 32 elements starting at element 4 * block0 (bit e = element e).
inline uint32_t keep_mask32(uint64_t block0, uint32_t k0, uint32_t k1, __m256i keep_below) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  // Counter (block0 + l) as (low word, high word), carrying into the high word per lane. The
  // unsigned "less than" is a signed compare after flipping the sign bits.
  const __m256i lo_start = _mm256_set1_epi32(int(uint32_t(block0)));
  __m256i c0 = _mm256_add_epi32(lo_start, lane);
  const __m256i flip = _mm256_set1_epi32(int(0x80000000u));
  const __m256i carry = _mm256_cmpgt_epi32(_mm256_xor_si256(lo_start, flip),
                                           _mm256_xor_si256(c0, flip));  // -1 where wrapped
  __m256i c1 = _mm256_sub_epi32(_mm256_set1_epi32(int(uint32_t(block0 >> 32))), carry);
  __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
  dropout_detail::philox_rounds<Words>(c0, c1, c2, c3, k0, k1);
  // (bits >> 8) < 2^24, so a signed compare works: keep when (bits >> 8) > keep_from - 1.
  const auto keep = [&](__m256i c) -> uint32_t {
    const __m256i k = _mm256_cmpgt_epi32(_mm256_srli_epi32(c, 8), keep_below);
    return kSpread.v[uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(k)))];
  };
  return keep(c0) | (keep(c1) << 1) | (keep(c2) << 2) | (keep(c3) << 3);
}

// All-ones lanes where bit i of the 8-bit `bits` is set (lane i).
inline __m256i lane_mask8(uint32_t bits) {
  const __m256i b = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int(bits)), b), b);
}

inline void apply(const float* x, float* y, uint32_t m, float scale) {
  const __m256 s = _mm256_set1_ps(scale);
  for (int q = 0; q < 4; ++q) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * q), s);
    _mm256_storeu_ps(y + 8 * q,
                     _mm256_and_ps(v, _mm256_castsi256_ps(lane_mask8((m >> (8 * q)) & 0xFF))));
  }
}

inline void apply(const double* x, double* y, uint32_t m, double scale) {
  const __m256d s = _mm256_set1_pd(scale);
  const __m256i b = _mm256_setr_epi64x(1, 2, 4, 8);
  for (int q = 0; q < 8; ++q) {
    const __m256i bits = _mm256_set1_epi64x(int64_t((m >> (4 * q)) & 0xF));
    const __m256i lanes = _mm256_cmpeq_epi64(_mm256_and_si256(bits, b), b);
    const __m256d v = _mm256_mul_pd(_mm256_loadu_pd(x + 4 * q), s);
    _mm256_storeu_pd(y + 4 * q, _mm256_and_pd(v, _mm256_castsi256_pd(lanes)));
  }
}

// The 32 mask bytes (0 or 1) of a 32-bit mask.
inline void store_mask_bytes(uint8_t* out, uint32_t m) {
  // Byte i of the vector takes bit i: broadcast the mask, pick each byte's source byte, test
  // the bit within it.
  const __m256i bcast = _mm256_set1_epi32(int(m));
  const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bytes = _mm256_shuffle_epi8(bcast, pick);
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                      _mm256_and_si256(set, _mm256_set1_epi8(1)));
}


}  // namespace

template <class T>
void dropout_range(const T* x, T* y, uint8_t* mask, int64_t begin, int64_t end,
                   uint32_t keep_from, T scale, uint32_t k0, uint32_t k1) {
  const __m256i keep_below = _mm256_set1_epi32(int(keep_from) - 1);
  dropout_batches<32>(x, y, mask, begin, end, keep_from, scale, k0, k1, [&](int64_t i) {
    const uint32_t m = keep_mask32(uint64_t(i) >> 2, k0, k1, keep_below);
    store_mask_bytes(mask + i, m);
    apply(x + i, y + i, m, scale);
  });
}

FASTNN_INSTANTIATE_DROPOUT_RANGE

}  // namespace avx2
}  // namespace cpu
}  // namespace fastnn
