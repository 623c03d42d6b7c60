// Inverted dropout on the GPU, with the CPU's mask bit for bit (cpu/dropout.h): element i is kept
// when the top 24 bits of philox4x32_10(counter = (i / 4, 0, 0, 0), key = seed)[i % 4] are at
// least ceil(float(rate) * 2^24), and then scaled by 1 / (1 - rate); rate == 1 drops everything.
// x, y, dy, dx (n,) contiguous device arrays; mask (n,) bytes, 1 = kept. y may alias x, dx dy.
// Enqueued on `stream` (cudaStream_t; nullptr = legacy default), not synchronised; a launch
// failure throws CudaError, a rate outside [0, 1] ValueError.
#pragma once
#include <cstdint>

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
