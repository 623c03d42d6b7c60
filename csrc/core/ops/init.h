// The initializer family's contract (implemented on the CPU by cpu/init.h). Weight
// initializers, with torch.nn.init's formulas, drawn from Philox 4x32-10 keyed by the
// seed with the element's (flat, row-major) index as counter: the same (kind, shape, seed) give
// the same bits for any thread count, and float32 results are the float64 ones rounded.
//
// W is (in_features, out_features): fan_in = rows, fan_out = cols. With gain g (default in
// parentheses):
//   glorot_uniform  U(-a, a), a = g sqrt(6 / (fan_in + fan_out))   (g = 1)    torch xavier_uniform_
//   glorot_normal   N(0, s),  s = g sqrt(2 / (fan_in + fan_out))   (g = 1)    torch xavier_normal_
//   he_uniform      U(-a, a), a = g sqrt(3 / fan_in)               (g = sqrt 2) torch kaiming_uniform_
//   he_normal       N(0, s),  s = g / sqrt(fan_in)                 (g = sqrt 2) torch kaiming_normal_
//   lecun_uniform   U(-a, a), a = g sqrt(3 / fan_in)               (g = 1)   variance 1 / fan_in
//   lecun_normal    N(0, s),  s = g / sqrt(fan_in)                 (g = 1)   (not truncated)
//   zeros, ones     constants (any shape; fans unused)
// Element i takes word i % 4 of Philox block (counter = i / 4, key = seed). Uniform: u = word
// * 2^-32 in [0, 1), w = -a + 2 a u (in double, then rounded to T; so |w| <= a). Normal: words
// (0, 1) and (2, 3) of a block are Box-Muller pairs, u1 = (word0 + 1) * 2^-32 in (0, 1],
// u2 = word1 * 2^-32, r = sqrt(-2 ln u1): element 4b + 0 / 1 = s r cos / sin(2 pi u2), and
// likewise for 4b + 2 / 3.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

#include "core/error.h"

namespace fastnn {

enum class Init : int {
  GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Zeros, Ones
};

// The accepted names, comma-separated, for messages.
inline const char* init_names() {
  return "glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform, lecun_normal, "
         "zeros, ones, xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal";
}

// "glorot_uniform" ... "ones"; also torch's "xavier_uniform", "xavier_normal",
// "kaiming_uniform", "kaiming_normal". Unknown name -> ValueError listing the choices.
inline Init init_from_name(const std::string& name) {
  struct Named {
    const char* name;
    Init kind;
  };
  static constexpr Named kNames[] = {
      {"glorot_uniform", Init::GlorotUniform}, {"glorot_normal", Init::GlorotNormal},
      {"he_uniform", Init::HeUniform},         {"he_normal", Init::HeNormal},
      {"lecun_uniform", Init::LecunUniform},   {"lecun_normal", Init::LecunNormal},
      {"zeros", Init::Zeros},                  {"ones", Init::Ones},
      {"xavier_uniform", Init::GlorotUniform}, {"xavier_normal", Init::GlorotNormal},
      {"kaiming_uniform", Init::HeUniform},    {"kaiming_normal", Init::HeNormal},
  };
  for (const Named& e : kNames)
    if (name == e.name) return e.kind;
  throw ValueError("kind: expected one of " + std::string(init_names()) + ", got '" + name + "'");
}

// He (Kaiming) is for ReLU layers: torch's calculate_gain("relu") = sqrt(2).
inline double init_default_gain(Init kind) {
  return kind == Init::HeUniform || kind == Init::HeNormal ? std::sqrt(2.0) : 1.0;
}

inline bool init_needs_fans(Init kind) { return kind != Init::Zeros && kind != Init::Ones; }

}  // namespace fastnn
