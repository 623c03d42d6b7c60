// Which SIMD instruction sets the CPU and OS support, and which kernel path is in use.
// The path starts as the best available, can be pinned with the environment variable
// FASTNN_SIMD=avx512|avx2|scalar (read once, at first use) or with set_simd() (tests do this to
// exercise every path on one machine).
#pragma once
#include <string>

namespace fastnn {

enum class Simd : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* simd_name(Simd s);
Simd simd_from_name(const std::string& name);  // throws ValueError for an unknown name

bool cpu_supports(Simd s);  // CPU and OS (XSAVE state) both enable the instruction set
Simd best_simd();
Simd active_simd();
void set_simd(Simd s);      // throws ValueError when the CPU lacks it

std::string cpu_feature_string();  // e.g. "avx2 fma avx512f avx512vl ..."

// AVX512_VNNI (vpdpbusd, the int8 dot product of quantized inference) next to the AVX-512 path.
bool cpu_has_avx512_vnni();

}  // namespace fastnn
