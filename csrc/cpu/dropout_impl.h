// The dropout mask loop, compiled once per instruction set (like gemm_driver.h: include it from a
// translation unit that defines FASTNN_ISA and has that ISA's flags; everything lives in
// fastnn::cpu::FASTNN_ISA and calls no inline function shared with other units, so no copy built
// for a wider ISA can be linked into a narrower path).
//
// Philox 4x32-10 runs on kLanes counter blocks at once, one block per vector lane (structure of
// arrays), which the compiler turns into 32x32->64-bit vector multiplies; the keep test is an
// integer compare of the top 24 bits, exactly `uniform01(bits) >= float(rate)` (see dropout.h).
#pragma once
#ifndef FASTNN_ISA
#error "define FASTNN_ISA before including dropout_impl.h"
#endif

#include <cstdint>
#include <cstring>
#include <type_traits>

// The float and double builds of the including unit's dropout_range<T>, whose addresses
// dropout.cpp takes.
#define FASTNN_INSTANTIATE_DROPOUT_RANGE                                                       \
  template void dropout_range<float>(const float*, float*, uint8_t*, int64_t, int64_t, uint32_t, \
                                     float, uint32_t, uint32_t);                               \
  template void dropout_range<double>(const double*, double*, uint8_t*, int64_t, int64_t,      \
                                      uint32_t, double, uint32_t, uint32_t);

namespace fastnn {
namespace cpu {
namespace FASTNN_ISA {

namespace dropout_detail {

constexpr int kLanes = 16;  // Philox blocks per batch: 64 elements
constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;

// Philox 4x32-10 of the counters (block0 + l, 0, 0) for l < kLanes, into c[word][lane].
inline void philox_lanes(uint64_t block0, uint32_t k0, uint32_t k1, uint32_t c[4][kLanes]) {
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const uint64_t b = block0 + uint64_t(l);
    c0[l] = uint32_t(b);
    c1[l] = uint32_t(b >> 32);
    c2[l] = 0;
    c3[l] = 0;
  }
  for (int round = 0; round < 10; ++round) {
    for (int l = 0; l < kLanes; ++l) {
      const uint64_t p0 = uint64_t(M0) * c0[l], p1 = uint64_t(M1) * c2[l];
      const uint32_t n0 = uint32_t(p1 >> 32) ^ c1[l] ^ k0;
      const uint32_t n2 = uint32_t(p0 >> 32) ^ c3[l] ^ k1;
      c1[l] = uint32_t(p1);
      c3[l] = uint32_t(p0);
      c0[l] = n0;
      c2[l] = n2;
    }
    k0 += W0;
    k1 += W1;
  }
  for (int l = 0; l < kLanes; ++l) {
    c[0][l] = c0[l];
    c[1][l] = c1[l];
    c[2][l] = c2[l];
    c[3][l] = c3[l];
  }
}

// v where keep, +0 where not, without a branch: a data-dependent branch on a random mask
// mispredicts half the time (about 4 ns per element measured), a bit mask costs nothing. Unlike
// v * 0, an infinite v still gives 0 when dropped.
template <class T>
inline T keep_or_zero(T v, bool keep) {
  using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  U bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits &= U(0) - U(keep);
  std::memcpy(&v, &bits, sizeof bits);
  return v;
}

// The ten Philox rounds on the word vectors c0..c3 (one counter block per lane), for the vector
// builds. W is the ISA's 32-bit word vector: R, mul_hi_lo(c, m, hi, lo) (the 32-bit halves of
// the lane-wise 32x32 -> 64-bit products), xor_, set1 (a word in every lane) and set1_64 (a
// multiplier in every 64-bit lane, as the 32x32 -> 64-bit multiply reads it).
template <class W>
inline void philox_rounds(typename W::R& c0, typename W::R& c1, typename W::R& c2,
                          typename W::R& c3, uint32_t k0, uint32_t k1) {
  using R = typename W::R;
  const R m0 = W::set1_64(M0), m1 = W::set1_64(M1);
  for (int round = 0; round < 10; ++round) {
    R hi0, lo0, hi1, lo1;
    W::mul_hi_lo(c0, m0, hi0, lo0);
    W::mul_hi_lo(c2, m1, hi1, lo1);
    c0 = W::xor_(W::xor_(hi1, c1), W::set1(k0));
    c2 = W::xor_(W::xor_(hi0, c3), W::set1(k1));
    c1 = lo1;
    c3 = lo0;
    k0 += W0;
    k1 += W1;
  }
}

// Elements ahead of the current batch whose cache lines the vector builds request early: the
// Philox rounds leave long gaps between memory accesses, in which the hardware prefetchers fall
// behind on arrays beyond the caches (measured with AVX-512: 1.3 ns per element at 4M elements
// against 0.43 at 256K).
constexpr int64_t kPrefetchAhead = 512;

}  // namespace dropout_detail

// Elements [begin, end) of inverted dropout; begin is a multiple of 4 (a Philox block).
// keep_from: the smallest top-24-bit value that keeps an element.
template <class T>
void dropout_range_generic(const T* x, T* y, uint8_t* mask, int64_t begin, int64_t end,
                   uint32_t keep_from, T scale, uint32_t k0, uint32_t k1) {
  using namespace dropout_detail;
  uint32_t c[4][kLanes];
  for (int64_t i = begin; i < end; i += 4 * kLanes) {
    philox_lanes(uint64_t(i) >> 2, k0, k1, c);
    if (i + 4 * kLanes <= end) {
      for (int l = 0; l < kLanes; ++l)
        for (int j = 0; j < 4; ++j) {
          const int64_t e = i + 4 * l + j;
          const bool keep = (c[j][l] >> 8) >= keep_from;
          mask[e] = keep;
          y[e] = keep_or_zero(x[e] * scale, keep);
        }
    } else {
      for (int64_t e = i; e < end; ++e) {
        const int64_t d = e - i;
        const bool keep = (c[d & 3][d >> 2] >> 8) >= keep_from;
        mask[e] = keep;
        y[e] = keep_or_zero(x[e] * scale, keep);
      }
    }
  }
}


// The vector builds' loop: batches of B elements from begin (a multiple of 4) through
// batch(i), each after asking for x a little ahead, and the rest through the generic loop.
template <int B, class T, class Batch>
void dropout_batches(const T* x, T* y, uint8_t* mask, int64_t begin, int64_t end,
                     uint32_t keep_from, T scale, uint32_t k0, uint32_t k1, const Batch& batch) {
  int64_t i = begin;
  for (; i + B <= end; i += B) {
    for (int q = 0; q < int(B * sizeof(T)); q += 64)
      __builtin_prefetch(reinterpret_cast<const char*>(x + i + dropout_detail::kPrefetchAhead) + q,
                         0, 3);
    batch(i);
  }
  if (i < end) dropout_range_generic(x, y, mask, i, end, keep_from, scale, k0, k1);
}

}  // namespace FASTNN_ISA
}  // namespace cpu
}  // namespace fastnn
