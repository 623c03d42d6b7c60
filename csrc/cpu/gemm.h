// C = act(alpha * op(A) @ op(B) + beta * C + bias), hand-written, no BLAS.
//
// A is (M,K), B is (K,N), C is (M,N) after op(); transposes and any layout are expressed through
// element strides (rs = step between rows, cs = step between columns; negative or zero is fine).
// beta == 0 means C is write-only: its old contents (NaN included) are never read.
// bias (N,) may be null; it and the activation are applied once, after the full K sum.
//
// For backpropagation the driver can also (all optional, honoured by gemm(), not by the reference):
// - gate an operand: read op(A)[i,k] as A[i,k] * act'(gate[i,k]), the gate having A's strides
//   (dZ = dY * act'(Z) formed while packing, so dZ never exists in memory); likewise for B;
// - sum op(B) over K (after its gate) into colsum_b (N,): a dense layer's bias gradient, summed
//   while B is packed; colsum_b is overwritten, in double precision internally;
// - store the pre-activation (the value before act) into Z with C's strides (forward pass of an
//   activation whose derivative needs it).
#pragma once
#include <cstdint>

#include "cpu/activation.h"

namespace fastnn {

// act'(gate) multiplies an operand as it is packed. from_output: gate holds act(z) rather than z
// (relu, leaky_relu with a positive slope, sigmoid, tanh, elu and step allow it).
template <class T>
struct OperandGate {
  const T* data = nullptr;  // null: no gate
  Act act = Act::None;
  T param = 0;
  bool from_output = false;
};

template <class T>
struct GemmArgs {
  int64_t M = 0, N = 0, K = 0;
  T alpha = 1, beta = 0;
  const T* A = nullptr;
  int64_t rsa = 0, csa = 0;
  const T* B = nullptr;
  int64_t rsb = 0, csb = 0;
  T* C = nullptr;
  int64_t rsc = 0, csc = 0;
  const T* bias = nullptr;
  int64_t bias_stride = 1;
  Act act = Act::None;
  T act_param = 0;
  OperandGate<T> gate_a, gate_b;
  T* colsum_b = nullptr;
  T* Z = nullptr;
};

namespace cpu {

void gemm(const GemmArgs<float>& args);
void gemm(const GemmArgs<double>& args);

// The plain triple loop, the reference the blocked code is derived from; also what tests compare
// the fast paths against at odd strides.
void gemm_reference(const GemmArgs<float>& args);
void gemm_reference(const GemmArgs<double>& args);

}  // namespace cpu
}  // namespace fastnn
