// A P x 16 block of a row-major operand written k-major into a packed sliver, in registers.
//
// Packing W^T (the dX product of a backward pass) and row-major A reads runs along k that the
// sliver wants P elements apart. Through an L1 tile and scalar copies this cost 12% of a
// 256 x 2048 x 2048 product at one thread; 16 x 16 (AVX-512) and 8 x 8 (AVX2) register
// transposes move whole vectors instead. Compiled per instruction set like gemm_driver.h (which
// includes it), in the namespace fastnn::cpu::FASTNN_ISA, so copies built with different flags
// never meet at link time.
#pragma once
#ifndef FASTNN_ISA
#error "define FASTNN_ISA before including gemm_transpose.h"
#endif

#include <cstdint>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace fastnn {
namespace cpu {
namespace FASTNN_ISA {

// Rows of this many k values are transposed at a time (one 64-byte line of floats).
constexpr int64_t kTransTile = 16;

#if defined(__AVX512F__)
// r[i] (row i, 16 floats) -> r[k] (column k): unpack pairs of floats, then pairs of pairs, then
// 128-bit lanes twice.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}
#endif

#if defined(__AVX2__)
inline void transpose8(__m256 r[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    s[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
  }
}
#endif

// dst[k * P + p] = src[p * ld + k] for p < P and k < kTransTile. False where this instruction
// set has no register transpose (the caller then copies through its L1 tile).
template <int P>
inline bool transpose_block(const float* src, int64_t ld, float* dst) {
#if defined(__AVX512F__)
  for (int p0 = 0; p0 < P; p0 += 16) {
    const int rows = P - p0 < 16 ? P - p0 : 16;
    __m512 r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = i < rows ? _mm512_loadu_ps(src + (p0 + i) * ld) : _mm512_setzero_ps();
    transpose16(r);
    const __mmask16 keep = static_cast<__mmask16>(rows == 16 ? 0xffff : (1u << rows) - 1);
    for (int k = 0; k < 16; ++k) _mm512_mask_storeu_ps(dst + k * P + p0, keep, r[k]);
  }
  return true;
#elif defined(__AVX2__)
  for (int k0 = 0; k0 < 16; k0 += 8) {
    for (int p0 = 0; p0 < P; p0 += 8) {
      const int rows = P - p0 < 8 ? P - p0 : 8;
      __m256 r[8];
      for (int i = 0; i < 8; ++i)
        r[i] = i < rows ? _mm256_loadu_ps(src + (p0 + i) * ld + k0) : _mm256_setzero_ps();
      transpose8(r);
      // Lanes [0, rows) of a partial chunk: the sign bit of each 32-bit mask lane selects it.
      const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows),
                                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      for (int k = 0; k < 8; ++k) {
        float* d = dst + (k0 + k) * P + p0;
        if (rows == 8)
          _mm256_storeu_ps(d, r[k]);
        else
          _mm256_maskstore_ps(d, keep, r[k]);
      }
    }
  }
  return true;
#else
  (void)src, (void)ld, (void)dst;
  return false;
#endif
}

template <int P>
inline bool transpose_block(const double*, int64_t, double*) {
  return false;
}

}  // namespace FASTNN_ISA
}  // namespace cpu
}  // namespace fastnn
