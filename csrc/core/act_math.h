// ONE scalar definition of each activation and of its derivative, for the host and the device.
// Every scalar path evaluates an activation through this file: the CPU's float64 kernels and
// scalar fallback (cpu/activations.cpp, computed in double), the CPU GEMM's scalar epilogue and
// gates (cpu/gemm_driver.h, cpu/gemm.cpp), and on the GPU the element-wise kernels, the GEMM
// epilogues, the dense backward and the fused MLP. The vectorized CPU code (cpu/simd_math.h,
// cpu/activations_simd.h) computes the same formulas on AVX-512 / AVX2 registers; this file is
// its reference.
//
// T is the arithmetic type. Formulas are chosen for accuracy over the whole range: exponentials
// only of non-positive numbers (no overflow), no 1 - s or 1 + erf cancellation. The GPU's float
// GELU takes a longer road (erfcx and an exact x^2 / 2) for the last bits in the far negative
// tail; the host computes float32 activations in double where accuracy matters.
#pragma once
#include <type_traits>
#include <utility>

#include "core/ops/activation.h"
#include "core/hd.h"
#include "core/typed_math.h"

namespace fastnn {
namespace act_math {
// Internal linkage: the CPU compiles this file into translation units built for different
// instruction sets (gemm_avx512.cpp, gemm_scalar.cpp...). An out-of-line copy shared between them
// could be linked with the wrong instructions; each unit keeps its own.
namespace {

using namespace typed_math;  // exp_, erfc_...: libm by argument type

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

#ifdef __CUDA_ARCH__
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
#endif

// ------------------------------------------------------------------ forward, y = act(x)
template <class T>
FASTNN_HD_INLINE T relu(T x) { return x > T(0) ? x : (x != x ? x : T(0)); }
template <class T>
FASTNN_HD_INLINE T leaky_relu(T x, T slope) { return x > T(0) ? x : x * slope; }
template <class T>
FASTNN_HD_INLINE T sigmoid(T x) {
  const T e = exp_(-fabs_(x));  // <= 1: no overflow
  return x > T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}
template <class T>
FASTNN_HD_INLINE T tanh(T x) { return tanh_(x); }
// x Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2: 1 + erf(x / sqrt 2) would cancel in the negative
// tail (gelu(-5.5) = -2e-7 came out 22% off in float).
template <class T>
FASTNN_HD_INLINE T gelu(T x) {
  if (x < T(-40)) return T(-0.0);  // Phi underflows: the limit, also at -inf (not -inf * 0)
#ifdef __CUDA_ARCH__
  // float32, x < 0: 0.5 x erfcx(u) e^(-x^2/2), u = -x / sqrt 2. erfc(u) directly would carry the
  // rounding of u amplified 2u^2 times (1.2e-5 relative at x = -14) and lose all precision where
  // it turns subnormal (x < -13); erfcx varies slowly and the Gaussian factor is exact.
  if constexpr (std::is_same<T, float>::value) {
    if (x < 0.f) {
      const GaussExp g = gauss_exp(x);
      return (0.5f * x * erfcxf(-x * float(kInvSqrt2)) * g.es) * g.back;
    }
  }
#endif
  return T(0.5) * x * erfc_(-x * T(kInvSqrt2));
}
template <class T>
FASTNN_HD_INLINE T elu(T x, T alpha) { return x > T(0) ? x : alpha * expm1_(x); }
// max(x, 0) + log1p(e^-|x|): the exponent is never positive.
template <class T>
FASTNN_HD_INLINE T softplus(T x) { return (x > T(0) ? x : T(0)) + log1p_(exp_(-fabs_(x))); }
template <class T>
FASTNN_HD_INLINE T step(T x) { return x != x ? x : (x > T(0) ? T(1) : T(0)); }

// ------------------------------------------------------------------ derivatives from x
// (NaN x is handled once, by derivative() below.)
template <class T>
FASTNN_HD_INLINE T sigmoid_grad(T x) {
  const T e = exp_(-fabs_(x));  // s (1 - s) = e / (1 + e)^2: no 1 - s cancellation
  return e / ((T(1) + e) * (T(1) + e));
}
template <class T>
FASTNN_HD_INLINE T tanh_grad(T x) {
  const T e = exp_(T(-2) * fabs_(x));  // 1 - tanh^2 = 4e / (1 + e)^2: accurate where tanh^2 ~ 1
  return T(4) * e / ((T(1) + e) * (T(1) + e));
}
// Phi(x) + x phi(x).
template <class T>
FASTNN_HD_INLINE T gelu_grad(T x) {
  if (x < T(-40)) return T(-0.0);  // as in gelu
#ifdef __CUDA_ARCH__
  if constexpr (std::is_same<T, float>::value) {
    const GaussExp g = gauss_exp(x);
    const float u = -x * float(kInvSqrt2);
    if (x < 0.f) return (g.es * (0.5f * erfcxf(u) + x * float(kInvSqrt2Pi))) * g.back;
    return 0.5f * erfcf(u) + x * float(kInvSqrt2Pi) * (g.es * g.back);
  }
#endif
  return T(0.5) * erfc_(-x * T(kInvSqrt2)) + x * T(kInvSqrt2Pi) * exp_(T(-0.5) * x * x);
}
template <class T>
FASTNN_HD_INLINE T elu_grad(T x, T alpha) { return x > T(0) ? T(1) : alpha * exp_(x); }

// ------------------------------------------------------------------ the dispatchers
template <class T>
FASTNN_HD_INLINE T forward(Act act, T p, T x) {
  switch (act) {
    case Act::None: return x;
    case Act::Relu: return relu(x);
    case Act::LeakyRelu: return leaky_relu(x, p);
    case Act::Sigmoid: return sigmoid(x);
    case Act::Tanh: return tanh(x);
    case Act::Gelu: return gelu(x);
    case Act::Elu: return elu(x, p);
    case Act::Softplus: return softplus(x);
    case Act::Step: return step(x);
  }
  return x;
}

// act'(x); a NaN x gives NaN.
template <class T>
FASTNN_HD_INLINE T derivative(Act act, T p, T x) {
  if (x != x) return x;
  switch (act) {
    case Act::None: return T(1);
    case Act::Relu: return x > T(0) ? T(1) : T(0);
    case Act::LeakyRelu: return x > T(0) ? T(1) : p;
    case Act::Sigmoid: return sigmoid_grad(x);
    case Act::Tanh: return tanh_grad(x);
    case Act::Gelu: return gelu_grad(x);
    case Act::Elu: return elu_grad(x, p);
    case Act::Softplus: return sigmoid(x);
    case Act::Step: return T(0);
  }
  return T(1);
}

// act'(x) from y = act(x), for the activations act_grad_from_output_ok accepts; a NaN y gives NaN.
template <class T>
FASTNN_HD_INLINE T derivative_from_output(Act act, T p, T y) {
  if (y != y) return y;
  switch (act) {
    case Act::Relu: return y > T(0) ? T(1) : T(0);
    case Act::LeakyRelu: return y > T(0) ? T(1) : p;
    case Act::Sigmoid: return y * (T(1) - y);
    case Act::Tanh: return (T(1) - y) * (T(1) + y);
    case Act::Elu: return y > T(0) ? T(1) : y + p;  // y = alpha (e^x - 1), so alpha e^x = y + alpha
    case Act::Softplus: return -expm1_(-y);        // 1 - e^-y
    case Act::Step: return T(0);
    default: return T(1);
  }
}

// f(std::integral_constant<Act, act>()): a loop written inside f is compiled once per
// activation, with the activation a constant (one switch per call, not one per element).
template <class F>
FASTNN_HD_INLINE decltype(auto) with_act(Act act, F&& f) {
  switch (act) {
    case Act::Relu: return f(std::integral_constant<Act, Act::Relu>());
    case Act::LeakyRelu: return f(std::integral_constant<Act, Act::LeakyRelu>());
    case Act::Sigmoid: return f(std::integral_constant<Act, Act::Sigmoid>());
    case Act::Tanh: return f(std::integral_constant<Act, Act::Tanh>());
    case Act::Gelu: return f(std::integral_constant<Act, Act::Gelu>());
    case Act::Elu: return f(std::integral_constant<Act, Act::Elu>());
    case Act::Softplus: return f(std::integral_constant<Act, Act::Softplus>());
    case Act::Step: return f(std::integral_constant<Act, Act::Step>());
    default: return f(std::integral_constant<Act, Act::None>());
  }
}

}  // namespace
}  // namespace act_math
}  // namespace fastnn
