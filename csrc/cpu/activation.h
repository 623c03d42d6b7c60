// Activation functions as an enum shared by every kernel that applies one (the GEMM epilogue now,
// the elementwise kernels later). Names match fastnn.ops.
#pragma once
#include <string>

namespace fastnn {

enum class Act : int {
  None = 0,
  Relu,
  LeakyRelu,  // param = negative slope
  Sigmoid,
  Tanh,
  Gelu,       // exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
  Elu,        // param = alpha
  Softplus,
  Step,       // the perceptron's: 1 if x > 0 else 0
};

Act act_from_name(const std::string& name);  // throws ValueError naming the valid choices
const char* act_name(Act a);

namespace cpu {
// True when act' is a function of the output y = act(x), so that backward needs no copy of x:
// none, relu, sigmoid, tanh, step, softplus (1 - e^-y), and leaky_relu / elu with param >= 0
// (a non-negative slope or alpha keeps y > 0 exactly where x > 0). Here rather than in
// activations.h because the GPU module links this file (and not the CPU kernels) and needs the
// same rule.
bool act_grad_from_output_ok(Act act, double param);
}  // namespace cpu

}  // namespace fastnn
