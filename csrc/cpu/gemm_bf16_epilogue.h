// The bf16 GEMM's epilogue, included by each kernel unit so that its loops vectorize with that
// unit's instruction set (the weight gradient's epilogue covers a whole weight matrix).
#pragma once
#include <cstdint>

#include "core/act_math.h"
#include "core/ops/gemm.h"
#include "cpu/gemm_bf16.h"

namespace fastnn {
namespace cpu {
namespace bf16_epilogue {
// Internal linkage: one copy per unit, built with that unit's flags (gemm_bf16_round.h's reason).
namespace {

// C[i0 + r, j0 + c] for r < rows, c < cols from the tile's sums: alpha, beta C, bias, Z, act.
// Each step is its own loop over the row with the options decided outside it, so that the
// loops vectorize.
void store_tile(const GemmArgs<float>& g, int64_t i0, int rows, int64_t j0, int cols,
                const float* acc) {
  // The arguments as locals: stores through C could otherwise alias them, which keeps the
  // compiler from vectorizing (it would reload them after every store).
  const float alpha = g.alpha, beta = g.beta, param = g.act_param;
  const int64_t rsc = g.rsc, csc = g.csc;
  float* const C = g.C + i0 * rsc + j0 * csc;
  float* const Z = g.Z ? g.Z + i0 * rsc + j0 * csc : nullptr;
  float bias[kBf16PanelCols];
  for (int j = 0; j < cols; ++j) bias[j] = g.bias ? g.bias[(j0 + j) * g.bias_stride] : 0.0f;
  act_math::with_act(g.act, [&](auto tag) {
    constexpr Act act = decltype(tag)::value;
    if (csc == 1) {  // rows of C contiguous: a row at a time
      float x[kBf16PanelCols];
      for (int r = 0; r < rows; ++r) {
        const float* __restrict s = acc + r * kBf16PanelCols;
        float* __restrict c = C + r * rsc;
        for (int j = 0; j < cols; ++j) x[j] = alpha * s[j] + bias[j];
        if (beta != 0.0f)
          for (int j = 0; j < cols; ++j) x[j] += beta * c[j];
        if (Z)
          for (int j = 0; j < cols; ++j) Z[r * rsc + j] = x[j];
        for (int j = 0; j < cols; ++j) c[j] = act_math::forward(act, param, x[j]);
      }
    } else {  // C stored transposed (dX^T) or strided: down the columns, the rows adjacent
      for (int j = 0; j < cols; ++j) {
        float* __restrict c = C + j * csc;
        for (int r = 0; r < rows; ++r) {
          float x = alpha * acc[r * kBf16PanelCols + j] + bias[j];
          if (beta != 0.0f) x += beta * c[r * rsc];
          if (Z) Z[r * rsc + j * csc] = x;
          c[r * rsc] = act_math::forward(act, param, x);
        }
      }
    }
  });
}

}  // namespace
}  // namespace bf16_epilogue
}  // namespace cpu
}  // namespace fastnn
