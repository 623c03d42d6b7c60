// The int8 GEMM's AVX2 path (qgemm.h): A in u16 and B widened to s16 (panels of 8 columns x 2
// rows of K per lane), vpmaddwd summing each pair of products exactly into int32 lanes (the
// saturating vpmaddubsw would not be exact); MR x NP micro-tiles.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "cpu/qgemm.h"

namespace fastnn {
namespace cpu {
namespace qgemm {
namespace avx2 {

namespace {

constexpr int kPanel = 8;  // columns per panel: one ymm of int32 sums
constexpr int kMR = 4;     // 4 x 2 accumulators, 2 panels, a broadcast and a product: 13 ymm
constexpr int kNP = 2;

inline __m256i broadcast_pair(const uint16_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// All-ones in the int32 lanes below `cols` (<= 8): the masked loads and stores of a partial panel.
inline __m256i lane_mask(int64_t cols) {
  const int n = cols < 0 ? 0 : (cols > kPanel ? kPanel : int(cols));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int MR, int NP>
void micro(const PackedB& b, const uint16_t* A, int64_t lda, int64_t m, int64_t p0, int64_t cols,
           const Out& o) {
  const int64_t groups = padded_depth(b.K) / 2;
  const auto* B = reinterpret_cast<const int8_t*>(b.data.get()) + p0 * groups * 32;
  // As in the VNNI kernel: sums in registers through the loop, stored once for the epilogue.
  __m256i acc[MR][NP];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int j = 0; j < NP; ++j) acc[r][j] = _mm256_setzero_si256();
  const uint16_t* ar = A + m * lda;
  for (int64_t g = 0; g < groups; ++g) {
    __m256i bv[NP];
#pragma GCC unroll 2
    for (int j = 0; j < NP; ++j)
      bv[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(B + (j * groups + g) * 32));
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      const __m256i av = broadcast_pair(ar + r * lda + 2 * g);
#pragma GCC unroll 2
      for (int j = 0; j < NP; ++j)
        acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(av, bv[j]));
    }
  }
  alignas(32) int32_t sums[MR][NP][kPanel];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
    for (int j = 0; j < NP; ++j)
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums[r][j]), acc[r][j]);
  const int64_t n0 = p0 * kPanel;
  for (int j = 0; j < NP; ++j) {
    const int64_t n = n0 + j * kPanel;
    const __m256i k = lane_mask(cols - j * kPanel);
    if (!o.dq) {
      for (int r = 0; r < MR; ++r)
        _mm256_maskstore_epi32(reinterpret_cast<int*>(o.c + (m + r) * o.ldc + n), k,
                               _mm256_load_si256(reinterpret_cast<const __m256i*>(sums[r][j])));
      continue;
    }
    const Dequant& e = *o.dq;
    const __m256i csum = _mm256_maskload_epi32(reinterpret_cast<const int*>(e.col_sum + n), k);
    const __m256 cscale = _mm256_maskload_ps(e.col_scale + n, k);
    const __m256 bias = _mm256_maskload_ps(e.bias + n, k);
    for (int r = 0; r < MR; ++r) {
      const __m256i d = _mm256_sub_epi32(
          _mm256_load_si256(reinterpret_cast<const __m256i*>(sums[r][j])),
          _mm256_mullo_epi32(_mm256_set1_epi32(e.row_zero[m + r]), csum));
      const __m256 s = _mm256_mul_ps(_mm256_set1_ps(e.row_scale[m + r]), cscale);
      __m256 y = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(d), s), bias);
      if (e.relu) y = _mm256_max_ps(_mm256_setzero_ps(), y);  // qgemm.h relu_of
      _mm256_maskstore_ps(e.out + (m + r) * e.ldo + n, k, y);
    }
  }
}

template <int MR>
void row_tile(const PackedB& b, const uint16_t* A, int64_t lda, int64_t m, int64_t p0,
              int64_t np, int64_t cols, const Out& o) {
  // Pairs of panels, then the odd one.
  int64_t j = 0;
  for (; j + kNP <= np; j += kNP)
    micro<MR, kNP>(b, A, lda, m, p0 + j, cols - j * kPanel, o);
  if (j < np) micro<MR, 1>(b, A, lda, m, p0 + j, cols - j * kPanel, o);
}

}  // namespace

void tile(const PackedB& b, const void* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
          const Out& o) {
  const auto* A = static_cast<const uint16_t*>(a);
  const int64_t lda = padded_depth(b.K);
  for (int64_t c0 = n0; c0 < n1; c0 += kColumnBlock) {
    const int64_t cols = std::min(kColumnBlock, n1 - c0);
    const int64_t p0 = c0 / kPanel, np = (cols + kPanel - 1) / kPanel;
    int64_t m = m0;
    for (; m + kMR <= m1; m += kMR) row_tile<kMR>(b, A, lda, m, p0, np, cols, o);
    switch (m1 - m) {
      case 1: row_tile<1>(b, A, lda, m, p0, np, cols, o); break;
      case 2: row_tile<2>(b, A, lda, m, p0, np, cols, o); break;
      case 3: row_tile<3>(b, A, lda, m, p0, np, cols, o); break;
      default: break;
    }
  }
}

void quantize_rows(const float* x, int64_t ldx, int64_t M, int64_t K, void* a,
                   float* row_scale, int32_t* row_zero) {
  const int64_t lda = padded_depth(K);
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * ldx;
    __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k += 8) {
      const __m256 v = _mm256_maskload_ps(xr + k, lane_mask(K - k));  // absent lanes read 0
      vlo = _mm256_min_ps(vlo, v);
      vhi = _mm256_max_ps(vhi, v);
      const __m256 d = _mm256_sub_ps(v, v);  // NaN exactly where v is NaN or infinite
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(d, d, _CMP_UNORD_Q));
    }
    alignas(32) float lo8[8], hi8[8];
    _mm256_store_ps(lo8, vlo);
    _mm256_store_ps(hi8, vhi);
    RowQuant q = row_quant(*std::min_element(lo8, lo8 + 8), *std::max_element(hi8, hi8 + 8));
    const bool nonfinite = _mm256_movemask_ps(bad) != 0;
    if (nonfinite) q = {std::nanf(""), 1.f, 0};
    row_scale[m] = q.scale;
    row_zero[m] = q.zero;
    uint16_t* ar = static_cast<uint16_t*>(a) + m * lda;
    if (nonfinite) {
      std::fill(ar, ar + lda, uint16_t(0));
      continue;
    }
    const __m256 inv = _mm256_set1_ps(q.inv);
    const __m256i zero = _mm256_set1_epi32(q.zero), top = _mm256_set1_epi32(255);
    for (int64_t k = 0; k < lda; k += 8) {
      const __m256i mk = lane_mask(K - k);
      const __m256i r = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_maskload_ps(xr + k, mk), inv));
      __m256i v = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(r, zero),
                                                    _mm256_setzero_si256()), top);
      v = _mm256_and_si256(v, mk);  // the padding past K is zero
      // 8 int32 in [0, 255] -> 8 u16: pack (in-lane), then gather the two halves.
      const __m128i u16 = _mm256_castsi256_si128(
          _mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), 0x08));
      alignas(16) uint16_t tmp[8];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), u16);
      std::copy(tmp, tmp + std::min<int64_t>(8, lda - k), ar + k);
    }
  }
}

}  // namespace avx2
}  // namespace qgemm
}  // namespace cpu
}  // namespace fastnn
