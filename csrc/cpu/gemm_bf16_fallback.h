// The bf16 GEMM's fallback micro-kernel: the packed bf16 pairs widened back to float (a bf16 is
// the upper half of a float32, so widening is a shift) and FP32 FMA, in plain C++ that the
// compiler vectorizes over the panel's columns. Included by one unit per instruction set
// (gemm_bf16_avx2.cpp with -mavx2 -mfma, gemm_bf16_scalar.cpp with no flags) after defining
// FASTNN_ISA, so each gets its own copy in fastnn::cpu::FASTNN_ISA.
#pragma once
#include <cstring>

#include "cpu/gemm_bf16_epilogue.h"
#include "cpu/gemm_bf16_kernels.h"
#include "cpu/gemm_bf16_round.h"

namespace fastnn {
namespace cpu {
namespace FASTNN_ISA {
namespace {

constexpr int kFallbackRows = 4;

inline float bf16_to_float(uint32_t upper16_in_place) {
  float f;
  std::memcpy(&f, &upper16_in_place, sizeof f);
  return f;
}

template <int R>
void tile_rows(const uint32_t* a, int64_t lda, const uint32_t* b, int64_t kpairs, float* acc) {
  constexpr int C = kBf16PanelCols;
  float sum[R][C] = {};
  for (int64_t p = 0; p < kpairs; ++p) {
    const uint32_t* bp = b + p * C;
    float even[C], odd[C];
    for (int c = 0; c < C; ++c) {
      even[c] = bf16_to_float(bp[c] << 16);
      odd[c] = bf16_to_float(bp[c] & 0xFFFF0000u);
    }
    for (int r = 0; r < R; ++r) {
      const uint32_t pair = a[r * lda + p];
      const float ae = bf16_to_float(pair << 16), ao = bf16_to_float(pair & 0xFFFF0000u);
      for (int c = 0; c < C; ++c) sum[r][c] += ae * even[c] + ao * odd[c];
    }
  }
  std::memcpy(acc, sum, sizeof sum);
}

void tile(const uint32_t* a, int64_t lda, int rows, const uint32_t* b, int64_t kpairs,
          float* acc) {
  switch (rows) {
    case 1: return tile_rows<1>(a, lda, b, kpairs, acc);
    case 2: return tile_rows<2>(a, lda, b, kpairs, acc);
    case 3: return tile_rows<3>(a, lda, b, kpairs, acc);
    default: return tile_rows<4>(a, lda, b, kpairs, acc);
  }
}
static_assert(kFallbackRows == 4, "tile() dispatches up to four rows");

}  // namespace

Bf16Kernel bf16_kernel() {
  return {kFallbackRows, &tile, &bf16_round::round_row, &bf16_round::pair_rows,
          &bf16_epilogue::store_tile};
}

}  // namespace FASTNN_ISA
}  // namespace cpu
}  // namespace fastnn
