#include "cpu/dropout.h"

#include <cmath>

#include "core/cpu_features.h"
#include "core/parallel.h"

// The portable build of the mask loop; the AVX2 and AVX-512 builds are in dropout_<isa>.cpp.
#define FASTNN_ISA scalar
#include "cpu/dropout_impl.h"
#undef FASTNN_ISA

namespace fastnn {
namespace cpu {
namespace scalar {
template <class T>
void dropout_range(const T* x, T* y, uint8_t* mask, int64_t begin, int64_t end,
                   uint32_t keep_from, T scale, uint32_t k0, uint32_t k1) {
  dropout_range_generic(x, y, mask, begin, end, keep_from, scale, k0, k1);
}
}  // namespace scalar
}  // namespace cpu
}  // namespace fastnn

namespace fastnn {
namespace cpu {

#ifdef FASTNN_X86
#define FASTNN_DECLARE_DROPOUT(isa)                                                           \
  namespace isa {                                                                             \
  template <class T>                                                                          \
  void dropout_range(const T*, T*, uint8_t*, int64_t, int64_t, uint32_t, T, uint32_t, uint32_t); \
  }
FASTNN_DECLARE_DROPOUT(avx2)
FASTNN_DECLARE_DROPOUT(avx512)
#undef FASTNN_DECLARE_DROPOUT
#endif

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

template <class T>
using RangeFn = void (*)(const T*, T*, uint8_t*, int64_t, int64_t, uint32_t, T, uint32_t, uint32_t);

template <class T>
RangeFn<T> pick_range() {
  switch (active_simd()) {
#ifdef FASTNN_X86
    case Simd::Avx512: return &avx512::dropout_range<T>;
    case Simd::Avx2: return &avx2::dropout_range<T>;
#endif
    default: return &scalar::dropout_range<T>;
  }
}

}  // namespace

template <class T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, double rate, uint64_t seed) {
  const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  const uint32_t keep_from = dropout_keep_from(rate);
  const T scale = dropout_scale<T>(rate);
  const RangeFn<T> range = pick_range<T>();
  for_chunks(n, [&](int64_t begin, int64_t end) {
    range(x, y, mask, begin, end, keep_from, scale, k0, k1);
  });
}

template <class T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t n, double rate) {
  const T scale = dropout_scale<T>(rate);
  for_chunks(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      dx[i] = scalar::dropout_detail::keep_or_zero(dy[i] * scale, mask[i] != 0);
  });
}

template void dropout_forward<float>(const float*, float*, uint8_t*, int64_t, double, uint64_t);
template void dropout_forward<double>(const double*, double*, uint8_t*, int64_t, double, uint64_t);
template void dropout_backward<float>(const float*, const uint8_t*, float*, int64_t, double);
template void dropout_backward<double>(const double*, const uint8_t*, double*, int64_t, double);

}  // namespace cpu
}  // namespace fastnn
