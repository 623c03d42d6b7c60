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
  float x[kBf16PanelCols], bias[kBf16PanelCols];
  if (g.bias)
    for (int j = 0; j < cols; ++j) bias[j] = g.bias[(j0 + j) * g.bias_stride];
  act_math::with_act(g.act, [&](auto tag) {
    constexpr Act act = decltype(tag)::value;
    for (int r = 0; r < rows; ++r) {
      const float* s = acc + r * kBf16PanelCols;
      float* c = g.C + (i0 + r) * g.rsc + j0 * g.csc;
      for (int j = 0; j < cols; ++j) x[j] = g.alpha * s[j];
      if (g.beta != 0.0f) {
        if (g.csc == 1)
          for (int j = 0; j < cols; ++j) x[j] += g.beta * c[j];
        else
          for (int j = 0; j < cols; ++j) x[j] += g.beta * c[j * g.csc];
      }
      if (g.bias)
        for (int j = 0; j < cols; ++j) x[j] += bias[j];
      if (g.Z) {
        float* z = g.Z + (i0 + r) * g.rsc + j0 * g.csc;
        for (int j = 0; j < cols; ++j) z[j * g.csc] = x[j];
      }
      if (g.csc == 1)
        for (int j = 0; j < cols; ++j) c[j] = act_math::forward(act, g.act_param, x[j]);
      else
        for (int j = 0; j < cols; ++j) c[j * g.csc] = act_math::forward(act, g.act_param, x[j]);
    }
  });
}

}  // namespace
}  // namespace bf16_epilogue
}  // namespace cpu
}  // namespace fastnn
