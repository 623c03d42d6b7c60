#include "cpu/dropout.h"

#include "core/parallel.h"
#include "core/philox.h"

namespace fastnn {
namespace cpu {

namespace {

// Work is split into fixed chunks (a multiple of 4 elements, one Philox block), not per thread:
// the mask is a function of (seed, index) alone.
constexpr int64_t kChunk = 1 << 16;

template <class F>
void for_chunks(int64_t n, F&& body) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  auto run = [&](int c) {
    const int64_t begin = c * kChunk, end = begin + kChunk < n ? begin + kChunk : n;
    body(begin, end);
  };
  if (chunks <= 1)
    run(0);
  else
    parallel_for(static_cast<int>(chunks), run);
}

}  // namespace

template <class T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, double rate, uint64_t seed) {
  const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  const float threshold = float(rate);
  const T scale = rate < 1.0 ? T(1.0 / (1.0 - rate)) : T(0);
  for_chunks(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i += 4) {
      const uint64_t block = uint64_t(i) >> 2;
      const Philox4x32 r = philox4x32_10(uint32_t(block), uint32_t(block >> 32), 0, 0, k0, k1);
      const int64_t stop = i + 4 < end ? i + 4 : end;
      for (int64_t j = i; j < stop; ++j) {
        // u < 1 always, so rate == 1 drops every element with no special case.
        const bool keep = uniform01(r.v[j - i]) >= threshold;
        mask[j] = keep;
        y[j] = keep ? x[j] * scale : T(0);
      }
    }
  });
}

template <class T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t n, double rate) {
  const T scale = rate < 1.0 ? T(1.0 / (1.0 - rate)) : T(0);
  for_chunks(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) dx[i] = mask[i] ? dy[i] * scale : T(0);
  });
}

template void dropout_forward<float>(const float*, float*, uint8_t*, int64_t, double, uint64_t);
template void dropout_forward<double>(const double*, double*, uint8_t*, int64_t, double, uint64_t);
template void dropout_backward<float>(const float*, const uint8_t*, float*, int64_t, double);
template void dropout_backward<double>(const double*, const uint8_t*, double*, int64_t, double);

}  // namespace cpu
}  // namespace fastnn
