// The CPU bf16 GEMM: GemmArgs<float> (core/ops/gemm.h) with both product operands rounded to
// bfloat16 (round to nearest even, NaN stays NaN, as cuda/gemm_bf16.cu rounds) and FP32
// accumulation; bias, activation, beta, Z, gates and colsum_b as in the FP32 GEMM (gates and
// column sums apply to the FP32 values, before rounding).
//
// Operands are packed into bf16 pairs along K (the low half the even k, the high half the odd
// k: the operand layout of vdpbf16ps), B in panels of kBf16PanelCols columns. The product runs
// on vdpbf16ps where bf16_path() is Native (gemm_bf16_avx512bf16.cpp), else on FP32 FMA over the
// same packed operands widened back to float (gemm_bf16_fallback.h, AVX2 or portable).
#pragma once
#include <cstdint>
#include <vector>

#include "core/ops/dense.h"
#include "core/ops/gemm.h"

namespace fastnn {
namespace cpu {

constexpr int kBf16PanelCols = 32;  // two zmm registers of FP32 accumulators per row

// op(B) (K x N) packed once, e.g. a layer's weights kept in bf16 across inference calls:
// panel q, k pair p, column c is data[(q * kpairs + p) * kBf16PanelCols + c] (zero past K and N).
struct Bf16PackedB {
  int64_t K = 0, N = 0, kpairs = 0, panels = 0;
  std::vector<uint32_t> data;
};

// Packs op(B)[k, n] = B[k * rsb + n * csb] (no gate).
void pack_b_bf16(const float* B, int64_t rsb, int64_t csb, int64_t K, int64_t N, Bf16PackedB& out);

// The GEMM; with `packed` (from pack_b_bf16 of op(B), K and N matching) g.B, its strides and
// gate are ignored and g.colsum_b must be null.
void gemm_bf16(const GemmArgs<float>& g, const Bf16PackedB* packed = nullptr);

// A dense layer's backward pass (core/ops/dense.h) with its two GEMMs in bf16: dZ is formed
// once in FP32 (db summed from it in double), then dW = X^T dZ and dX = dZ W^T.
void dense_backward_bf16(const DenseBackwardArgs<float>& a);

// The instruction set the bf16 GEMM runs on now (cpu_features.h's bf16_path()).
const char* bf16_kernel_name();

}  // namespace cpu
}  // namespace fastnn
