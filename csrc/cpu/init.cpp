// Weight initializers (see init.h).
#include "cpu/init.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "core/philox.h"

namespace fastnn {
namespace cpu {

namespace {

// Chunks are a multiple of 4 elements (one Philox block) and sized by n alone.
constexpr int64_t kChunk = int64_t(1) << 16;

template <class F>
void for_chunks(int64_t n, const F& body) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  auto run = [&](int c) { body(int64_t(c) * kChunk, std::min(n, (int64_t(c) + 1) * kChunk)); };
  if (chunks <= 1)
    body(0, n);
  else
    parallel_for(static_cast<int>(chunks), run);
}

constexpr double kTwoPow32 = 4294967296.0;
constexpr double kTwoPi = 6.283185307179586476925286766559;

// Philox draws for elements [0, n), 4 per block, the block of element i being i / 4 under the
// key `seed`: block(i, end, r) fills elements i .. min(i + 4, end) - 1 from the block's four
// words r. The draws depend on the element index alone, so not on the chunking or threads.
template <class Block>
void for_philox_blocks(int64_t n, uint64_t seed, const Block& block) {
  const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for_chunks(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i += 4) {
      const uint64_t b = uint64_t(i) >> 2;
      block(i, std::min(end, i + 4), philox4x32_10(uint32_t(b), uint32_t(b >> 32), 0, 0, k0, k1));
    }
  });
}

template <class T>
void fill_uniform(T* w, int64_t n, uint64_t seed, double a) {
  for_philox_blocks(n, seed, [&](int64_t i, int64_t stop, const Philox4x32& r) {
    for (int64_t j = i; j < stop; ++j)
      w[j] = static_cast<T>(-a + 2.0 * a * (double(r.v[j - i]) / kTwoPow32));
  });
}

template <class T>
void fill_normal(T* w, int64_t n, uint64_t seed, double s) {
  for_philox_blocks(n, seed, [&](int64_t i, int64_t stop, const Philox4x32& r) {
    double z[4];
    for (int p = 0; p < 2; ++p) {
      // u1 in (0, 1]: log never sees 0, so no infinite draw.
      const double u1 = (double(r.v[2 * p]) + 1.0) / kTwoPow32;
      const double u2 = double(r.v[2 * p + 1]) / kTwoPow32;
      const double rad = std::sqrt(-2.0 * std::log(u1));
      z[2 * p] = rad * std::cos(kTwoPi * u2);
      z[2 * p + 1] = rad * std::sin(kTwoPi * u2);
    }
    for (int64_t j = i; j < stop; ++j) w[j] = static_cast<T>(s * z[j - i]);
  });
}

}  // namespace

template <class T>
void init_weights(Init kind, T* w, int64_t n, int64_t fan_in, int64_t fan_out, uint64_t seed,
                  double gain) {
  if (kind == Init::Zeros || kind == Init::Ones) {
    const T v = kind == Init::Ones ? T(1) : T(0);
    for_chunks(n, [&](int64_t b, int64_t e) { std::fill(w + b, w + e, v); });
    return;
  }
  if (n == 0) return;  // an empty weight has nothing to draw, whatever its fans
  const double g = gain < 0 ? init_default_gain(kind) : gain;
  switch (kind) {
    case Init::GlorotUniform:
    case Init::GlorotNormal:
      FASTNN_CHECK(fan_in + fan_out > 0, "shape: Glorot needs fan_in + fan_out > 0");
      break;
    default:
      FASTNN_CHECK(fan_in > 0, "shape: this initializer needs fan_in = shape[0] > 0");
  }
  switch (kind) {
    case Init::GlorotUniform: return fill_uniform(w, n, seed, g * std::sqrt(6.0 / double(fan_in + fan_out)));
    case Init::GlorotNormal: return fill_normal(w, n, seed, g * std::sqrt(2.0 / double(fan_in + fan_out)));
    case Init::HeUniform:
    case Init::LecunUniform: return fill_uniform(w, n, seed, g * std::sqrt(3.0 / double(fan_in)));
    case Init::HeNormal:
    case Init::LecunNormal: return fill_normal(w, n, seed, g / std::sqrt(double(fan_in)));
    default: return;
  }
}

template void init_weights<float>(Init, float*, int64_t, int64_t, int64_t, uint64_t, double);
template void init_weights<double>(Init, double*, int64_t, int64_t, int64_t, uint64_t, double);

}  // namespace cpu
}  // namespace fastnn
