// float32 -> bfloat16 rounding, the one definition the bf16 GEMM's packing uses (every
// instruction set includes it, so its loops vectorize with that unit's flags): round to nearest
// even, a NaN stays a quiet NaN, finite values past the largest bf16 become Inf -- as
// tests/oracle.py's round_bf16 and the GPU's cvt.rn.bf16.f32 round.
#pragma once
#include <cstdint>
#include <cstring>

namespace fastnn {
namespace cpu {
namespace bf16_round {
// Internal linkage: each unit keeps its own copy, built with its own instruction set (one merged
// inline copy could carry AVX-512 code into the portable path).
namespace {

// The rounded value in the upper 16 bits of a float32 bit pattern, the lower 16 bits zero.
// Branch-free so that loops over it vectorize.
inline uint32_t upper(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
  const uint32_t quiet_nan = (u | 0x00400000u) & 0xFFFF0000u;
  return (u & 0x7FFFFFFFu) > 0x7F800000u ? quiet_nan : rounded;
}

// out[j] = bf16(x[j]) for j < n.
inline void round_row(const float* __restrict x, int64_t n, uint16_t* __restrict out) {
  for (int64_t j = 0; j < n; ++j) out[j] = uint16_t(upper(x[j]) >> 16);
}

// out[j] = the vdpbf16ps pair (bf16(even[j]) low, bf16(odd[j]) high) for j < n.
inline void pair_rows(const float* __restrict even, const float* __restrict odd, int64_t n,
                      uint32_t* __restrict out) {
  for (int64_t j = 0; j < n; ++j) out[j] = (upper(even[j]) >> 16) | upper(odd[j]);
}

}  // namespace
}  // namespace bf16_round
}  // namespace cpu
}  // namespace fastnn
