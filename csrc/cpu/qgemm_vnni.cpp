// The int8 GEMM's AVX512_VNNI path (qgemm.h): vpdpbusd on B packed in panels of 16 columns x 4
// rows of K per lane; MR x NP micro-tiles of MR rows and NP panels, their sums in registers.
// Compiled with -mavx512vnni (and the AVX-512 flags); run only where cpu_has_avx512_vnni().
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "cpu/qgemm.h"

namespace fastnn {
namespace cpu {
namespace qgemm {
namespace vnni {

namespace {

constexpr int kPanel = 16;  // columns per panel: one zmm of int32 sums
constexpr int kMR = 6;      // rows per micro-tile: 6 x 4 accumulators + 4 panels + 1 broadcast
constexpr int kNP = 4;      // panels per micro-tile (= kColumnBlock / kPanel)
static_assert(kNP * kPanel == kColumnBlock, "one micro-tile spans a column block");

inline __m512i broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

inline __mmask16 valid_lanes(int64_t cols) {
  return cols >= kPanel ? __mmask16(0xffff) : cols <= 0 ? __mmask16(0) : __mmask16((1u << cols) - 1);
}

// Rows [m, m + MR) x panels [p0, p0 + NP); `cols` of the tile's columns are inside B.
template <int MR, int NP>
void micro(const PackedB& b, const uint8_t* A, int64_t lda, int64_t m, int64_t p0, int64_t cols,
           const Out& o) {
  const int64_t groups = padded_depth(b.K) / 4;
  const auto* B = reinterpret_cast<const int8_t*>(b.data.get()) + p0 * groups * 64;
  // The sums stay in registers through the loop (every index a constant once unrolled), and
  // leave them once, for the epilogue.
  __m512i acc[MR][NP];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_setzero_si512();
  const uint8_t* ar = A + m * lda;
  int64_t g = 0;
  if (MR == 1) {
    // One row (batch-1 inference) has only NP chains of dependent vpdpbusd: a second set of
    // sums over the odd groups doubles them, to stream B at the memory's pace rather than the
    // instruction's latency. Integer sums: the order changes nothing.
    __m512i odd[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) odd[j] = _mm512_setzero_si512();
    for (; g + 2 <= groups; g += 2) {
      const __m512i a0 = broadcast4(ar + 4 * g), a1 = broadcast4(ar + 4 * g + 4);
#pragma GCC unroll 4
      for (int j = 0; j < NP; ++j) {
        acc[0][j] = _mm512_dpbusd_epi32(acc[0][j], a0, _mm512_load_si512(B + (j * groups + g) * 64));
        odd[j] = _mm512_dpbusd_epi32(odd[j], a1, _mm512_load_si512(B + (j * groups + g + 1) * 64));
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) acc[0][j] = _mm512_add_epi32(acc[0][j], odd[j]);
  }
  for (; g < groups; ++g) {
    __m512i bv[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) bv[j] = _mm512_load_si512(B + (j * groups + g) * 64);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512i av = broadcast4(ar + r * lda + 4 * g);
#pragma GCC unroll 4
      for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, bv[j]);
    }
  }
  alignas(64) int32_t sums[MR][NP][kPanel];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) _mm512_store_si512(sums[r][j], acc[r][j]);
  const int64_t n0 = p0 * kPanel;
  for (int j = 0; j < NP; ++j) {
    const __mmask16 k = valid_lanes(cols - j * kPanel);
    const int64_t n = n0 + j * kPanel;
    if (!o.dq) {
      for (int r = 0; r < MR; ++r)
        _mm512_mask_storeu_epi32(o.c + (m + r) * o.ldc + n, k, _mm512_load_si512(sums[r][j]));
      continue;
    }
    const Dequant& e = *o.dq;
    const __m512i csum = _mm512_maskz_loadu_epi32(k, e.col_sum + n);
    const __m512 cscale = _mm512_maskz_loadu_ps(k, e.col_scale + n);
    const __m512 bias = _mm512_maskz_loadu_ps(k, e.bias + n);
    for (int r = 0; r < MR; ++r) {
      const __m512i d = _mm512_sub_epi32(
          _mm512_load_si512(sums[r][j]),
          _mm512_mullo_epi32(_mm512_set1_epi32(e.row_zero[m + r]), csum));
      const __m512 s = _mm512_mul_ps(_mm512_set1_ps(e.row_scale[m + r]), cscale);
      __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(d), s), bias);
      if (e.relu) y = _mm512_max_ps(_mm512_setzero_ps(), y);  // qgemm.h relu_of
      _mm512_mask_storeu_ps(e.out + (m + r) * e.ldo + n, k, y);
    }
  }
}

template <int MR>
void row_tile(const PackedB& b, const uint8_t* A, int64_t lda, int64_t m, int64_t p0, int64_t np,
              int64_t cols, const Out& o) {
  switch (np) {
    case 1: return micro<MR, 1>(b, A, lda, m, p0, cols, o);
    case 2: return micro<MR, 2>(b, A, lda, m, p0, cols, o);
    case 3: return micro<MR, 3>(b, A, lda, m, p0, cols, o);
    default: return micro<MR, 4>(b, A, lda, m, p0, cols, o);
  }
}

}  // namespace

void tile(const PackedB& b, const void* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
          const Out& o) {
  const auto* A = static_cast<const uint8_t*>(a);
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
      case 4: row_tile<4>(b, A, lda, m, p0, np, cols, o); break;
      case 5: row_tile<5>(b, A, lda, m, p0, np, cols, o); break;
      default: break;
    }
  }
}

void quantize_rows(const float* x, int64_t ldx, int64_t M, int64_t K, void* a,
                   float* row_scale, int32_t* row_zero) {
  const int64_t lda = padded_depth(K), full = K / 16 * 16;
  // Rows in groups: each phase runs over the group's rows at once, so that one row's scalar
  // work (reductions, divisions) overlaps the next row's instead of waiting on it -- with
  // narrow layers (64, 128 inputs) that per-row latency is most of the quantizer's time.
  constexpr int kGroup = 16;
  float lo[kGroup], hi[kGroup];
  bool bad[kGroup];
  RowQuant q[kGroup];
  for (int64_t m0 = 0; m0 < M; m0 += kGroup) {
    const int rows = int(std::min<int64_t>(kGroup, M - m0));
    for (int i = 0; i < rows; ++i) {
      const float* xr = x + (m0 + i) * ldx;
      // Two chains each of min and max (their latency, not their count, bounds the loop);
      // NaN and infinity are told by fpclass.
      __m512 lo0 = _mm512_setzero_ps(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
      __mmask16 nonfinite = 0;
      int64_t k = 0;
      for (; k + 32 <= full; k += 32) {
        const __m512 v0 = _mm512_loadu_ps(xr + k), v1 = _mm512_loadu_ps(xr + k + 16);
        lo0 = _mm512_min_ps(lo0, v0), hi0 = _mm512_max_ps(hi0, v0);
        lo1 = _mm512_min_ps(lo1, v1), hi1 = _mm512_max_ps(hi1, v1);
        nonfinite |= _mm512_fpclass_ps_mask(v0, 0x99) | _mm512_fpclass_ps_mask(v1, 0x99);
      }
      for (; k < K; k += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(valid_lanes(K - k), xr + k);  // absent lanes: 0
        lo0 = _mm512_min_ps(lo0, v), hi0 = _mm512_max_ps(hi0, v);
        nonfinite |= _mm512_fpclass_ps_mask(v, 0x99);
      }
      lo[i] = _mm512_reduce_min_ps(_mm512_min_ps(lo0, lo1));
      hi[i] = _mm512_reduce_max_ps(_mm512_max_ps(hi0, hi1));
      bad[i] = nonfinite != 0;
    }
    for (int i = 0; i < rows; ++i) {
      q[i] = bad[i] ? RowQuant{std::nanf(""), 1.f, 0} : row_quant(lo[i], hi[i]);
      row_scale[m0 + i] = q[i].scale;
      row_zero[m0 + i] = q[i].zero;
    }
    for (int i = 0; i < rows; ++i) {
      const float* xr = x + (m0 + i) * ldx;
      uint8_t* ar = static_cast<uint8_t*>(a) + (m0 + i) * lda;
      if (bad[i]) {
        std::memset(ar, 0, size_t(lda));
        continue;
      }
      const __m512 inv = _mm512_set1_ps(q[i].inv);
      const __m512i zero = _mm512_set1_epi32(q[i].zero), top = _mm512_set1_epi32(255);
      auto rounded = [&](const float* p) {
        return _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(p), inv)), zero);
      };
      auto codes = [&](__m512 v) {
        const __m512i r = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv)), zero);
        return _mm512_cvtepi32_epi8(
            _mm512_min_epi32(_mm512_max_epi32(r, _mm512_setzero_si512()), top));
      };
      int64_t k = 0;
      // 64 codes at a time: the unsigned-saturating packs clamp to [0, 255] as the min / max
      // above do, and leave each 128-bit lane holding 4 codes of each source; one dword
      // permutation puts them in order, one store writes them.
      const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
      for (; k + 64 <= full; k += 64) {
        const __m512i ab = _mm512_packus_epi32(rounded(xr + k), rounded(xr + k + 16));
        const __m512i cd = _mm512_packus_epi32(rounded(xr + k + 32), rounded(xr + k + 48));
        _mm512_storeu_si512(ar + k, _mm512_permutexvar_epi32(order, _mm512_packus_epi16(ab, cd)));
      }
      for (; k < full; k += 16)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(ar + k), codes(_mm512_loadu_ps(xr + k)));
      for (; k < lda; k += 16) {
        // Lanes in [K, lda) are the row's zero padding; lanes past lda are not written.
        const __mmask16 mk = valid_lanes(K - k), mw = valid_lanes(lda - k);
        const __m128i c = codes(_mm512_maskz_loadu_ps(mk, xr + k));
        _mm_mask_storeu_epi8(ar + k, mw, _mm_maskz_mov_epi8(mk, c));
      }
    }
  }
}

}  // namespace vnni
}  // namespace qgemm
}  // namespace cpu
}  // namespace fastnn
