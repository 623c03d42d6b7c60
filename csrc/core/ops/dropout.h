// The dropout family's contract, implemented by cpu/dropout.h and cuda/dropout.h, which give
// the same mask bit for bit. Inverted dropout: x, y (n,) contiguous; mask (n,) bytes, 1 = kept.
// Element i is kept when the top 24 bits of philox4x32_10(counter = (i / 4, 0, 0, 0),
// key = seed)[i % 4] (core/philox.h) are at least dropout_keep_from(rate), and then scaled by
// dropout_scale(rate) = 1 / (1 - rate); rate == 1 drops everything. Backward:
// dx = dy * mask * dropout_scale(rate). y may alias x, dx may alias dy.
#pragma once
#include <cmath>
#include <cstdint>

namespace fastnn {

// uniform01(bits) = (bits >> 8) / 2^24 >= float(rate) exactly when (bits >> 8) >= this; with
// rate == 1 it is 2^24 and nothing is kept.
inline uint32_t dropout_keep_from(double rate) {
  return uint32_t(std::ceil(double(float(rate)) * 16777216.0));
}

template <class T>
inline T dropout_scale(double rate) {
  return rate < 1.0 ? T(1.0 / (1.0 - rate)) : T(0);
}

}  // namespace fastnn
