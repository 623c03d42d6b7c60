// Element-wise activations, their gradients, and row softmax / log-softmax on the CPU: the
// contract of core/ops/activation.h, with the formulas of core/act_math.h.
//
// float32 runs vectorized (AVX-512 / AVX2 under active_simd(), simd_math.h: a few float32 ulp from
// act_math.h's formulas evaluated in double), or else the scalar loop, which evaluates
// act_math.h in double and rounds once; float64 runs that scalar loop. Above 64K elements the
// work is split over the thread pool in fixed chunks; each element (each softmax row) is computed
// by the same code whatever the thread count, so results are bit-identical for any thread count.
#pragma once
#include <cstdint>

#include "core/ops/activation.h"

namespace fastnn {
namespace cpu {

// y = act(x); x (n,), y (n,); y == x (in place) is allowed.
template <class T>
void act_forward(Act act, T param, const T* x, T* y, int64_t n);

// dx = dy * act'(x); dx may alias dy or x.
template <class T>
void act_backward(Act act, T param, const T* dy, const T* x, T* dx, int64_t n);

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
