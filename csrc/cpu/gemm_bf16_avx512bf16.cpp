// The bf16 GEMM's kernel on vdpbf16ps (AVX512_BF16): each instruction takes 16 bf16 pairs of a
// B panel row and one broadcast A pair and adds both products to 16 FP32 lanes. A tile is up
// to 12 rows x 32 columns: 24 zmm accumulators, 2 for the B pairs, 1 for the A pair.
// Built with -mavx512bf16 (CMakeLists.txt); only called when cpu_features' bf16_path() is Native.
#include <immintrin.h>

#include "cpu/gemm_bf16_epilogue.h"
#include "cpu/gemm_bf16_kernels.h"
#include "cpu/gemm_bf16_round.h"

namespace fastnn {
namespace cpu {
namespace avx512bf16 {
namespace {

constexpr int kRows = 12;
static_assert(kBf16PanelCols == 32, "two zmm registers per panel row");

inline __m512bh as_pairs(__m512i v) { return (__m512bh)v; }

// U independent accumulator sets over alternate k pairs: with few rows (batch 1 streams the
// weights) one set per row would leave the loop waiting on the dot-product latency.
template <int R, int U>
void tile_rows(const uint32_t* a, int64_t lda, const uint32_t* b, int64_t kpairs, float* acc) {
  __m512 c0[U][R], c1[U][R];
  for (int u = 0; u < U; ++u)
    for (int r = 0; r < R; ++r) c0[u][r] = c1[u][r] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + U <= kpairs; p += U) {
    for (int u = 0; u < U; ++u) {
      const uint32_t* bp = b + (p + u) * kBf16PanelCols;
      const __m512bh b0 = as_pairs(_mm512_loadu_si512(bp));
      const __m512bh b1 = as_pairs(_mm512_loadu_si512(bp + 16));
      for (int r = 0; r < R; ++r) {
        const __m512bh av = as_pairs(_mm512_set1_epi32(int(a[r * lda + p + u])));
        c0[u][r] = _mm512_dpbf16_ps(c0[u][r], av, b0);
        c1[u][r] = _mm512_dpbf16_ps(c1[u][r], av, b1);
      }
    }
  }
  for (; p < kpairs; ++p) {
    const uint32_t* bp = b + p * kBf16PanelCols;
    const __m512bh b0 = as_pairs(_mm512_loadu_si512(bp));
    const __m512bh b1 = as_pairs(_mm512_loadu_si512(bp + 16));
    for (int r = 0; r < R; ++r) {
      const __m512bh av = as_pairs(_mm512_set1_epi32(int(a[r * lda + p])));
      c0[0][r] = _mm512_dpbf16_ps(c0[0][r], av, b0);
      c1[0][r] = _mm512_dpbf16_ps(c1[0][r], av, b1);
    }
  }
  for (int r = 0; r < R; ++r) {
    __m512 s0 = c0[0][r], s1 = c1[0][r];
    for (int u = 1; u < U; ++u) {
      s0 = _mm512_add_ps(s0, c0[u][r]);
      s1 = _mm512_add_ps(s1, c1[u][r]);
    }
    _mm512_storeu_ps(acc + r * kBf16PanelCols, s0);
    _mm512_storeu_ps(acc + r * kBf16PanelCols + 16, s1);
  }
}

void tile(const uint32_t* a, int64_t lda, int rows, const uint32_t* b, int64_t kpairs,
          float* acc) {
  switch (rows) {
    case 1: return tile_rows<1, 4>(a, lda, b, kpairs, acc);
    case 2: return tile_rows<2, 4>(a, lda, b, kpairs, acc);
    case 3: return tile_rows<3, 2>(a, lda, b, kpairs, acc);
    case 4: return tile_rows<4, 2>(a, lda, b, kpairs, acc);
    case 5: return tile_rows<5, 2>(a, lda, b, kpairs, acc);
    case 6: return tile_rows<6, 1>(a, lda, b, kpairs, acc);
    case 7: return tile_rows<7, 1>(a, lda, b, kpairs, acc);
    case 8: return tile_rows<8, 1>(a, lda, b, kpairs, acc);
    case 9: return tile_rows<9, 1>(a, lda, b, kpairs, acc);
    case 10: return tile_rows<10, 1>(a, lda, b, kpairs, acc);
    case 11: return tile_rows<11, 1>(a, lda, b, kpairs, acc);
    default: return tile_rows<12, 1>(a, lda, b, kpairs, acc);
  }
}

// gemm_bf16_round.h's loops on vcvtne2ps2bf16 (the same rounding, one instruction for 32
// values), the scalar loops for the tails. (The instruction also flushes float32 denormals to
// zero, which vdpbf16ps does with bf16 denormals anyway: the products are the same.)
void round_row(const float* x, int64_t n, uint16_t* out) {
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + j + 16), _mm512_loadu_ps(x + j));
    _mm512_storeu_si512(out + j, (__m512i)v);
  }
  bf16_round::round_row(x + j, n - j, out + j);
}

void pair_rows(const float* even, const float* odd, int64_t n, uint32_t* out) {
  // The conversion gives even[0..15] in the low 16 words and odd[0..15] in the high ones;
  // word 2i of a pair row takes even[i], word 2i + 1 odd[i].
  alignas(64) static const uint16_t interleave[32] = {
      0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
      8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i idx = _mm512_load_si512(interleave);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(odd + j), _mm512_loadu_ps(even + j));
    _mm512_storeu_si512(out + j, _mm512_permutexvar_epi16(idx, (__m512i)v));
  }
  bf16_round::pair_rows(even + j, odd + j, n - j, out + j);
}

}  // namespace

Bf16Kernel bf16_kernel() {
  return {kRows, &tile, &round_row, &pair_rows, &bf16_epilogue::store_tile};
}

}  // namespace avx512bf16
}  // namespace cpu
}  // namespace fastnn
