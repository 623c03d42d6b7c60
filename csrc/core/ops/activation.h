// The activation family's contract, shared by cpu/activations.h and cuda/activations.h (and the
// GEMM epilogues, the dense backward and the fused MLP): the Act enum, its names, which
// derivatives follow from the output, and the ops' definitions. The scalar formulas themselves
// are core/act_math.h's, once for both backends.
//
//   y = act(x):          relu, leaky_relu (param = negative slope), sigmoid, tanh, gelu (exact,
//                        x Phi(x)), elu (param = alpha), softplus, step (1 if x > 0 else 0; its
//                        derivative is 0). A NaN input gives NaN for every activation (step and
//                        relu included) and a NaN gradient.
//   dx = dy * act'(x), or act' computed from y = act(x) when act_grad_from_output_ok.
//   softmax rows:        y = e^(x - max) / sum e^(x - max); log_softmax y = (x - max) -
//                        log(sum e^(x - max)); finite for any finite row.
//   their backward, from the forward output y: softmax dx = y * (dy - sum(dy * y));
//                        log_softmax dx = dy - e^y * sum(dy).
// Arrays are contiguous; y may alias x and dx may alias dy.
#pragma once
#include <string>

#include "core/error.h"

namespace fastnn {

enum class Act : int {
  None = 0,
  Relu,
  LeakyRelu,  // param = negative slope
  Sigmoid,
  Tanh,
  Gelu,       // exact: x Phi(x) = 0.5 x erfc(-x / sqrt 2)
  Elu,        // param = alpha
  Softplus,
  Step,       // the perceptron's: 1 if x > 0 else 0
};

// Indexed by Act; the names of fastnn.ops.
inline constexpr const char* kActNames[] = {"none", "relu", "leaky_relu", "sigmoid", "tanh",
                                            "gelu", "elu",  "softplus",   "step"};

inline const char* act_name(Act a) { return kActNames[static_cast<int>(a)]; }

// "" and "linear" are Act::None; anything unknown throws ValueError naming the valid choices.
inline Act act_from_name(const std::string& name) {
  if (name.empty() || name == "linear") return Act::None;
  for (int i = 0; i < int(sizeof(kActNames) / sizeof(kActNames[0])); ++i)
    if (name == kActNames[i]) return static_cast<Act>(i);
  throw ValueError("activation: expected one of None, 'relu', 'leaky_relu', 'sigmoid', 'tanh', "
                   "'gelu', 'elu', 'softplus', 'step', got '" + name + "'");
}

// True when act' is a function of the output y = act(x), so that backward needs no copy of x:
// none, relu, sigmoid, tanh, step, softplus (1 - e^-y), and leaky_relu / elu with param >= 0
// (a non-negative slope or alpha keeps y > 0 exactly where x > 0). Both backends take the same
// path by this one rule.
inline bool act_grad_from_output_ok(Act act, double param) {
  switch (act) {
    case Act::Gelu: return false;
    case Act::LeakyRelu:
    case Act::Elu: return param >= 0;
    default: return true;
  }
}

}  // namespace fastnn
