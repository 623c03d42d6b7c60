#include "cpu/activation.h"

#include "core/error.h"

namespace fastnn {

namespace {
const char* const kNames[] = {"none", "relu", "leaky_relu", "sigmoid", "tanh",
                              "gelu", "elu",  "softplus",   "step"};
constexpr int kCount = sizeof(kNames) / sizeof(kNames[0]);
}  // namespace

Act act_from_name(const std::string& name) {
  if (name.empty() || name == "linear") return Act::None;
  for (int i = 0; i < kCount; ++i)
    if (name == kNames[i]) return static_cast<Act>(i);
  throw ValueError("activation: expected one of None, 'relu', 'leaky_relu', 'sigmoid', 'tanh', "
                   "'gelu', 'elu', 'softplus', 'step', got '" + name + "'");
}

const char* act_name(Act a) {
  return kNames[static_cast<int>(a)];
}

namespace cpu {

bool act_grad_from_output_ok(Act act, double param) {
  switch (act) {
    case Act::Gelu: return false;
    case Act::LeakyRelu:
    case Act::Elu: return param >= 0;
    default: return true;
  }
}

}  // namespace cpu
}  // namespace fastnn
