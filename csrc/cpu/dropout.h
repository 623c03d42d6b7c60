// Inverted dropout on the CPU: the contract of core/ops/dropout.h, the mask loop vectorized
// (dropout_<isa>.cpp) and split over the thread pool.
#pragma once
#include <cstdint>

#include "core/ops/dropout.h"

namespace fastnn {
namespace cpu {

template <class T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, double rate, uint64_t seed);

// dx = dy * mask / (1 - rate)
template <class T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t n, double rate);

}  // namespace cpu
}  // namespace fastnn
