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

}  // namespace fastnn
