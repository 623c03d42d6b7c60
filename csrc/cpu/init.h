// Weight initializers on the CPU: the contract of core/ops/init.h, split over the thread pool in
// chunks sized by n alone.
#pragma once
#include <cstdint>

#include "core/ops/init.h"

namespace fastnn {
namespace cpu {

// w (n,) written in place; n = fan_in * fan_out for the random kinds. gain < 0 means the
// kind's default. Throws ValueError on fan_in <= 0 (or fan_in + fan_out <= 0 for Glorot)
// when there are elements to draw.
template <class T>
void init_weights(Init kind, T* w, int64_t n, int64_t fan_in, int64_t fan_out, uint64_t seed,
                  double gain);

}  // namespace cpu
}  // namespace fastnn
