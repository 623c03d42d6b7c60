// Inverted dropout on the GPU: the contract of core/ops/dropout.h (the CPU's mask bit for bit),
// with x, y, dy, dx (n,) and mask (n,) contiguous device arrays. Enqueued on `stream`
// (cudaStream_t; nullptr = legacy default), not synchronised; a launch failure throws CudaError,
// a rate outside [0, 1] ValueError.
#pragma once
#include <cstdint>

#include "core/ops/dropout.h"

namespace fastnn {
namespace cuda {

// seed_dev: when set, the kernel reads the seed from this device address instead of `seed`
// (what a captured CUDA graph needs: the key changes every step, the launch does not).
template <class T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, double rate, uint64_t seed,
                     void* stream = nullptr, const uint64_t* seed_dev = nullptr);

// dx = dy * mask / (1 - rate)
template <class T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t n, double rate,
                      void* stream = nullptr);

}  // namespace cuda
}  // namespace fastnn
