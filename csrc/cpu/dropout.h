// Inverted dropout. x, y (n,) contiguous; mask (n,) bytes, 1 = kept.
// Element i is kept when uniform01(philox(counter = i / 4, key = seed)[i % 4]) >= rate, and then
// scaled by 1 / (1 - rate); rate == 1 drops everything.
#pragma once
#include <cstdint>

namespace fastnn {
namespace cpu {

template <class T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, double rate, uint64_t seed);

// dx = dy * mask / (1 - rate)
template <class T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t n, double rate);

}  // namespace cpu
}  // namespace fastnn
