// The bf16 GEMM's micro-kernels, one per instruction set, behind one signature: the driver
// (gemm_bf16.cpp) packs, splits the work and applies the epilogue; a kernel only multiplies a
// tile of up to kRows packed A rows by one packed B panel.
#pragma once
#include <cstdint>

#include "cpu/gemm_bf16.h"

namespace fastnn {
namespace cpu {

// acc[r * kBf16PanelCols + c] = sum over p < kpairs of the two products of A's pair
// a[r * lda + p] with B's pair b[p * kBf16PanelCols + c], for r < rows (rows <= the kernel's
// row count); FP32 accumulation.
using Bf16TileFn = void (*)(const uint32_t* a, int64_t lda, int rows, const uint32_t* b,
                            int64_t kpairs, float* acc);

// An instruction set's tile kernel and its builds of gemm_bf16_round.h's packing loops.
struct Bf16Kernel {
  int rows;  // rows per tile
  Bf16TileFn tile;
  void (*round_row)(const float* x, int64_t n, uint16_t* out);
  void (*pair_rows)(const float* even, const float* odd, int64_t n, uint32_t* out);
  // gemm_bf16_epilogue.h's store_tile: C from a tile's sums (alpha, beta, bias, Z, act).
  void (*store)(const GemmArgs<float>& g, int64_t i0, int rows, int64_t j0, int cols,
                const float* acc);
};

#define FASTNN_DECLARE_BF16_KERNEL(isa) \
  namespace isa {                       \
  Bf16Kernel bf16_kernel();             \
  }
FASTNN_DECLARE_BF16_KERNEL(scalar)
#ifdef FASTNN_X86
FASTNN_DECLARE_BF16_KERNEL(avx2)
FASTNN_DECLARE_BF16_KERNEL(avx512bf16)
#endif
#undef FASTNN_DECLARE_BF16_KERNEL

}  // namespace cpu
}  // namespace fastnn
