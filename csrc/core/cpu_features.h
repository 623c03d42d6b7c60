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

// The bf16 GEMM (cpu/gemm_bf16.h): vdpbf16ps where the CPU has AVX512_BF16 (CPUID leaf 7
// subleaf 1, EAX bit 5, with the OS saving the ZMM state) and the AVX-512 path is active;
// otherwise fp32 FMA on the bf16-rounded operands. FASTNN_BF16=fallback (read once) or
// set_bf16_fallback(true) forces the fallback, so tests cover it on any machine.
enum class Bf16Path : int { Native = 0, Fallback = 1 };
bool cpu_supports_avx512_bf16();
Bf16Path bf16_path();
void set_bf16_fallback(bool forced);
const char* bf16_path_name(Bf16Path p);  // what show_config() prints

}  // namespace fastnn
