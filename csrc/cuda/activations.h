// Element-wise activations, their gradients, and row softmax / log-softmax on the GPU.
//
// The contract is that of core/ops/activation.h, with the formulas of core/act_math.h: NaN in
// gives NaN out for every activation, and the gradient from the output is allowed exactly when
// act_grad_from_output_ok says so. Pointers are device pointers to contiguous arrays; y may alias
// x and dx may alias dy. float32 computes in float32 (CUDA's single-precision libm, a few ulp
// from the CPU), float64 in float64. Every function enqueues on `stream` (a
// cudaStream_t; nullptr = the legacy default stream) and returns without synchronising; a launch
// failure throws CudaError naming the kernel, a bad argument ValueError.
#pragma once
#include <cstdint>

#include "core/ops/activation.h"

namespace fastnn {
namespace cuda {

// y = act(x); x, y (n,)
template <class T>
void act_forward(Act act, T param, const T* x, T* y, int64_t n, void* stream = nullptr);

// dx = dy * act'(x); dy, x, dx (n,)
template <class T>
void act_backward(Act act, T param, const T* dy, const T* x, T* dx, int64_t n,
                  void* stream = nullptr);

// dx = dy * act'(x) from y = act(x); ValueError when !act_grad_from_output_ok(act, param).
template <class T>
void act_backward_from_output(Act act, T param, const T* dy, const T* y, T* dx, int64_t n,
                              void* stream = nullptr);

// x, y (rows, cols) row-major. log = false: y = e^(x - max) / sum e^(x - max); log = true:
// y = (x - max) - log(sum e^(x - max)). One pass for the row's max and sum (online), one to
// write. 4 lanes per row up to 4 columns, 16 up to 16, a warp up to 1024, a block above.
template <class T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t cols, bool log, void* stream = nullptr);

// From the forward output y: softmax dx = y * (dy - sum(dy * y)); log_softmax
// dx = dy - e^y * sum(dy). dx may alias dy.
template <class T>
void softmax_rows_backward(const T* dy, const T* y, T* dx, int64_t rows, int64_t cols, bool log,
                           void* stream = nullptr);

}  // namespace cuda
}  // namespace fastnn
