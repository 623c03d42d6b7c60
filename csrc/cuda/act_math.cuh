// The activation formulas on the GPU, shared by every CUDA kernel that evaluates an activation or
// its derivative (activations.cu: the element-wise kernels; dense.cu: the fused dense backward,
// which forms dZ = dY * act'(gate) while its GEMM tiles are staged). One copy, so the fused and
// the composed paths compute the same dZ to the bit. Those of cpu/activations.cpp (forward_ref,
// derivative_ref, derivative_from_output_ref), in T.
#pragma once
#include <cuda_runtime.h>

#include "cpu/activation.h"
#include "cuda/elem_util.cuh"

namespace fastnn {
namespace cuda {
namespace act_math {

using elem::d_erfc;
using elem::d_exp;
using elem::d_expm1;
using elem::d_log1p;
using elem::d_tanh;

// e^(-x^2 / 2) in float32 as es * back, with x^2 / 2 split exactly into t + lo/2 (an FMA gives
// the square's rounding error): e^-(t + lo/2) = e^-t (1 - lo/2) to float precision. Rounding x^2
// first would cost a relative error of x^2/2 * 2^-24 -- 6e-6 at x = -14. Beyond t = 64 the
// factor e^-t is subnormal or nearly: es = e^(64 - t) (64 - t is exact there) and back = e^-64,
// so that the caller's product rounds into the subnormal range once, at the end.
struct GaussExp {
  float es, back;
};
__device__ __forceinline__ GaussExp gauss_exp(float x) {
  const float p = x * x, lo = fmaf(x, x, -p), t = 0.5f * p;
  const bool far = t > 64.f;
  return {expf(far ? 64.f - t : -t) * (1.f - 0.5f * lo), far ? 1.60381089e-28f : 1.f};
}

// GELU in float32 for x < 0 goes through erfcx(u) = e^(u^2) erfc(u), u = -x / sqrt 2, as
// 0.5 x erfcx(u) e^(-x^2/2): erfc(u) directly would carry the rounding of u amplified 2u^2 times
// (1.2e-5 relative at x = -14) and lose all precision where it turns subnormal (x < -13), while
// erfcx varies slowly (relative sensitivity to u about 1) and the Gaussian factor is exact above.
template <class T>
__device__ __forceinline__ T act_value(Act act, T p, T x) {
  switch (act) {
    case Act::None: return x;
    case Act::Relu: return x > T(0) ? x : (isnan(x) ? x : T(0));
    case Act::LeakyRelu: return x > T(0) ? x : x * p;
    case Act::Sigmoid: {
      const T e = d_exp(-fabs(x));  // <= 1: no overflow
      return x > T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
    }
    case Act::Tanh: return d_tanh(x);
    // x Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2: no 1 + erf cancellation for x << 0.
    case Act::Gelu:
      if (x < T(-40)) return T(-0.0);  // Phi underflows: the limit, also at -inf (not -inf * 0)
      if constexpr (sizeof(T) == 4) {
        if (x < 0.f) {
          const GaussExp g = gauss_exp(x);
          return (0.5f * x * erfcxf(-x * 0.70710678118654752440f) * g.es) * g.back;
        }
      }
      return T(0.5) * x * d_erfc(-x * T(0.70710678118654752440));
    case Act::Elu: return x > T(0) ? x : p * d_expm1(x);
    case Act::Softplus: return (x > T(0) ? x : T(0)) + d_log1p(d_exp(-fabs(x)));
    case Act::Step: return isnan(x) ? x : (x > T(0) ? T(1) : T(0));
  }
  return x;
}

template <class T>
__device__ __forceinline__ T act_deriv(Act act, T p, T x) {
  if (isnan(x)) return x;
  switch (act) {
    case Act::None: return T(1);
    case Act::Relu: return x > T(0) ? T(1) : T(0);
    case Act::LeakyRelu: return x > T(0) ? T(1) : p;
    case Act::Softplus:  // d softplus = sigmoid
    case Act::Sigmoid: {
      const T e = d_exp(-fabs(x));
      if (act == Act::Softplus) return x > T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
      return e / ((T(1) + e) * (T(1) + e));
    }
    case Act::Tanh: {
      const T e = d_exp(T(-2) * fabs(x));  // 1 - tanh^2 = 4e / (1 + e)^2
      return T(4) * e / ((T(1) + e) * (T(1) + e));
    }
    case Act::Gelu:
      if (x < T(-40)) return T(-0.0);
      if constexpr (sizeof(T) == 4) {
        const GaussExp g = gauss_exp(x);
        if (x < 0.f)
          return (g.es * (0.5f * erfcxf(-x * 0.70710678118654752440f) +
                           x * 0.39894228040143267794f)) * g.back;
        return 0.5f * erfcf(-x * 0.70710678118654752440f) +
               x * 0.39894228040143267794f * (g.es * g.back);
      }
      return T(0.5) * d_erfc(-x * T(0.70710678118654752440)) +
             x * T(0.39894228040143267794) * d_exp(T(-0.5) * x * x);
    case Act::Elu: return x > T(0) ? T(1) : p * d_exp(x);
    case Act::Step: return T(0);
  }
  return T(1);
}

template <class T>
__device__ __forceinline__ T act_deriv_from_output(Act act, T p, T y) {
  if (isnan(y)) return y;
  switch (act) {
    case Act::Relu: return y > T(0) ? T(1) : T(0);
    case Act::LeakyRelu: return y > T(0) ? T(1) : p;
    case Act::Sigmoid: return y * (T(1) - y);
    case Act::Tanh: return (T(1) - y) * (T(1) + y);
    case Act::Elu: return y > T(0) ? T(1) : y + p;
    case Act::Softplus: return -d_expm1(-y);
    case Act::Step: return T(0);
    default: return T(1);
  }
}

// Whether act' follows from the output: the CPU's rule (cpu/activation.cpp, linked into the GPU
// module too), so both backends take the same path.
inline bool grad_from_output_ok(Act act, double param) {
  return cpu::act_grad_from_output_ok(act, param);
}

}  // namespace act_math
}  // namespace cuda
}  // namespace fastnn
