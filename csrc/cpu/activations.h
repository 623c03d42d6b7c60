// Element-wise activations, their gradients, and row softmax / log-softmax, on the CPU.
//
// Formulas are those of the GEMM epilogue (gemm_driver.h, act_scalar): relu, leaky_relu
// (param = negative slope), sigmoid, tanh, gelu (exact, x Phi(x)), elu (param = alpha),
// softplus, step (1 if x > 0 else 0; its derivative is 0). One difference: here a NaN input gives
// NaN for every activation (step and relu included) and a NaN gradient.
//
// All arrays are contiguous. float32 runs vectorized (AVX-512 / AVX2 under active_simd(), a
// scalar loop otherwise); float64 runs the scalar loop on libm. Above 64K elements the work is
// split over the thread pool in fixed chunks; each element (each softmax row) is computed by the
// same code whatever the thread count, so results are bit-identical for any thread count.
// SIMD paths differ from the scalar one by a few float32 ulp (see simd_math.h).
#pragma once
#include <cstdint>

#include "cpu/activation.h"

namespace fastnn {
namespace cpu {

// y = act(x); x (n,), y (n,); y == x (in place) is allowed.
template <class T>
void act_forward(Act act, T param, const T* x, T* y, int64_t n);

// dx = dy * act'(x); dx may alias dy or x.
template <class T>
void act_backward(Act act, T param, const T* dy, const T* x, T* dx, int64_t n);

// act_grad_from_output_ok(act, param): cpu/activation.h.

// dx = dy * act'(x) computed from y = act(x); throws ValueError when !act_grad_from_output_ok.
template <class T>
void act_backward_from_output(Act act, T param, const T* dy, const T* y, T* dx, int64_t n);

// x, y (rows, cols), row-major; each row: y = softmax(x) = e^(x - max) / sum e^(x - max), or
// log_softmax(x) = (x - max) - log(sum e^(x - max)). In place allowed.
template <class T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t cols);
template <class T>
void log_softmax_rows(const T* x, T* y, int64_t rows, int64_t cols);

// Vector-Jacobian products, from the forward output y:
// softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - e^y * sum(dy). dx may alias dy.
template <class T>
void softmax_rows_backward(const T* dy, const T* y, T* dx, int64_t rows, int64_t cols);
template <class T>
void log_softmax_rows_backward(const T* dy, const T* y, T* dx, int64_t rows, int64_t cols);

}  // namespace cpu
}  // namespace fastnn
