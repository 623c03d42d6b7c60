#include "core/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define FASTNN_HAVE_CPUID 1
#endif

namespace fastnn {

namespace {

struct Features {
  bool avx2 = false, fma = false, avx512f = false, avx512vl = false, avx512dq = false,
       avx512bw = false, bmi2 = false;
  bool avx512vnni = false, avx512_bf16 = false;
};

#ifdef FASTNN_HAVE_CPUID
unsigned long long read_xcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

Features detect() {
  Features f;
#ifdef FASTNN_HAVE_CPUID
  unsigned int a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), has_fma = c & (1u << 12), has_avx = c & (1u << 28);
  if (!osxsave || !has_avx) return f;
  // The OS must save the YMM (bits 1,2) and, for AVX-512, the opmask/ZMM state (bits 5,6,7).
  const unsigned long long xcr0 = read_xcr0();
  const bool ymm_ok = (xcr0 & 0x6) == 0x6, zmm_ok = (xcr0 & 0xe6) == 0xe6;
  if (!ymm_ok) return f;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.fma = has_fma;
  f.avx2 = b & (1u << 5);
  f.bmi2 = b & (1u << 8);
  if (zmm_ok) {
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.avx512vnni = c & (1u << 11);
    const unsigned int max_sub = a;  // leaf 7 subleaf 0 gives the highest subleaf in EAX
    if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512_bf16 = a & (1u << 5);
  }
#endif
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

Simd initial_simd() {
  Simd s = best_simd();
  if (const char* env = std::getenv("FASTNN_SIMD")) {
    if (*env) {
      // An unknown or unsupported request falls back to the best path rather than failing the
      // import; show_config() reports what is in use.
      try {
        Simd want = simd_from_name(env);
        if (cpu_supports(want)) s = want;
      } catch (const ValueError&) {
      }
    }
  }
  return s;
}

std::atomic<int>& active() {
  static std::atomic<int> a{static_cast<int>(initial_simd())};
  return a;
}

}  // namespace

const char* simd_name(Simd s) {
  switch (s) {
    case Simd::Avx512: return "avx512";
    case Simd::Avx2: return "avx2";
    default: return "scalar";
  }
}

Simd simd_from_name(const std::string& name) {
  if (name == "avx512") return Simd::Avx512;
  if (name == "avx2") return Simd::Avx2;
  if (name == "scalar") return Simd::Scalar;
  throw ValueError("simd: expected one of 'avx512', 'avx2', 'scalar', got '" + name + "'");
}

bool cpu_supports(Simd s) {
  const Features& f = features();
  switch (s) {
    case Simd::Avx512:
#ifdef FASTNN_X86
      // BMI2 (pdep) is used next to AVX-512 (dropout); every AVX-512 CPU has it.
      return f.avx512f && f.avx512vl && f.avx512dq && f.avx512bw && f.avx2 && f.fma && f.bmi2;
#else
      return false;
#endif
    case Simd::Avx2:
#ifdef FASTNN_X86
      return f.avx2 && f.fma;
#else
      return false;
#endif
    default: return true;
  }
}

Simd best_simd() {
  if (cpu_supports(Simd::Avx512)) return Simd::Avx512;
  if (cpu_supports(Simd::Avx2)) return Simd::Avx2;
  return Simd::Scalar;
}

Simd active_simd() { return static_cast<Simd>(active().load(std::memory_order_relaxed)); }

void set_simd(Simd s) {
  if (!cpu_supports(s))
    throw ValueError(std::string("simd: this CPU does not support '") + simd_name(s) +
                     "'; the best available is '" + simd_name(best_simd()) + "'");
  active().store(static_cast<int>(s));
}

std::string cpu_feature_string() {
  const Features& f = features();
  std::string out;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!out.empty()) out += ' ';
    out += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.avx512f, "avx512f");
  add(f.avx512vl, "avx512vl");
  add(f.avx512dq, "avx512dq");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vnni, "avx512vnni");
  add(f.avx512_bf16, "avx512_bf16");
  return out.empty() ? "none" : out;
}

bool cpu_has_avx512_vnni() { return cpu_supports(Simd::Avx512) && features().avx512vnni; }

namespace {

std::atomic<int>& bf16_forced() {
  static std::atomic<int> forced{[] {
    const char* env = std::getenv("FASTNN_BF16");
    return env && std::strcmp(env, "fallback") == 0 ? 1 : 0;
  }()};
  return forced;
}

}  // namespace

bool cpu_supports_avx512_bf16() {
#ifdef FASTNN_X86
  return cpu_supports(Simd::Avx512) && features().avx512_bf16;
#else
  return false;
#endif
}

Bf16Path bf16_path() {
  // The vdpbf16ps kernel is part of the AVX-512 path: FASTNN_SIMD=avx2 or scalar selects the
  // fallback on that instruction set too.
  const bool native = cpu_supports_avx512_bf16() && active_simd() == Simd::Avx512 &&
                      !bf16_forced().load(std::memory_order_relaxed);
  return native ? Bf16Path::Native : Bf16Path::Fallback;
}

void set_bf16_fallback(bool forced) { bf16_forced().store(forced ? 1 : 0); }

const char* bf16_path_name(Bf16Path p) {
  return p == Bf16Path::Native ? "avx512_bf16 (vdpbf16ps)"
                               : "fallback: fp32 FMA on bf16-rounded operands";
}

}  // namespace fastnn
