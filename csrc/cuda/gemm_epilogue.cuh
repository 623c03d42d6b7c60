// The GEMM epilogue's activation, shared by the SGEMM kernels (gemm.cu, gemm_sgemm2.cu).
#pragma once
#include <cuda_runtime.h>

#include "cpu/activation.h"

namespace fastnn {
namespace cuda {
namespace gemm_detail {

// The same formulas as the CPU epilogue (cpu/gemm.cpp), so both back ends agree on edge cases:
// relu keeps NaN, sigmoid and softplus only ever exponentiate non-positive numbers.
__device__ __forceinline__ float apply_act(float x, Act act, float param) {
  switch (act) {
    case Act::None: return x;
    case Act::Relu: return x > 0.f ? x : (isnan(x) ? x : 0.f);
    case Act::LeakyRelu: return x > 0.f ? x : x * param;
    case Act::Sigmoid:
      if (x >= 0.f) return 1.f / (1.f + expf(-x));
      else {
        const float e = expf(x);
        return e / (1.f + e);
      }
    case Act::Tanh: return tanhf(x);
    case Act::Gelu: return 0.5f * x * (1.f + erff(x * 0.70710678118654752440f));
    case Act::Elu: return x > 0.f ? x : param * expm1f(x);
    case Act::Softplus: return fmaxf(x, 0.f) + log1pf(expf(-fabsf(x)));
    case Act::Step: return x > 0.f ? 1.f : 0.f;
  }
  return x;
}

}  // namespace gemm_detail
}  // namespace cuda
}  // namespace fastnn
