// The GEMM family's contract, implemented by cpu/gemm.h (AVX-512 / AVX2 / portable) and
// cuda/gemm.h (FP32, TF32 and BF16 kernels):
//
//   C = act(alpha * op(A) @ op(B) + beta * C + bias), hand-written, no BLAS.
//
// A is (M,K), B is (K,N), C is (M,N) after op(); transposes and any layout are expressed through
// element strides (rs = step between rows, cs = step between columns; negative or zero is fine).
// beta == 0 means C is write-only: its old contents (NaN included) are never read. K == 0 gives
// act(beta * C + bias). bias (N,) may be null; it and the activation (core/act_math.h) are
// applied once, after the full K sum.
//
// For backpropagation the product can also (all optional; the CPU honours them in gemm(), not in
// its reference loop; the GPU in its general kernel):
// - gate an operand: read op(A)[i,k] as A[i,k] * act'(gate[i,k]), the gate having A's strides
//   (dZ = dY * act'(Z) formed while packing, so dZ never exists in memory); likewise for B;
// - sum op(B) over K (after its gate) into colsum_b (N,): a dense layer's bias gradient, summed
//   while B is packed; colsum_b is overwritten, in double precision internally;
// - store the pre-activation (the value before act) into Z with C's strides (forward pass of an
//   activation whose derivative needs it).
#pragma once
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/ops/activation.h"

namespace fastnn {

// act'(gate) multiplies an operand as it is packed. from_output: gate holds act(z) rather than z
// (allowed when act_grad_from_output_ok).
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

// A plain product C (M x N, rows rsc apart, columns adjacent) = op(A) (M x K) op(B) (K x N),
// each operand given by its pointer and its row and column strides: the one place a GemmArgs is
// laid out from shapes, for every caller that builds GEMMs (the CPU dense backward, both
// engines' layer GEMMs); the caller then sets what differs (bias, activation, gates, beta).
template <class T>
GemmArgs<T> gemm_product(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsa, int64_t csa,
                         const T* B, int64_t rsb, int64_t csb, T* C, int64_t rsc) {
  GemmArgs<T> g;
  g.M = M, g.N = N, g.K = K;  // each operand on one line with its strides
  g.A = A, g.rsa = rsa, g.csa = csa;
  g.B = B, g.rsb = rsb, g.csb = csb;
  g.C = C, g.rsc = rsc, g.csc = 1;
  return g;
}

// The arithmetic a training run asks for (Sequential(precision=...)): storage stays FP32 (master
// weights, optimizer state, activations); only the GEMM operands are rounded, to TF32 (10-bit
// mantissa) or bfloat16 (8-bit), with FP32 accumulation. The CPU computes every precision as FP32.
enum class Precision { FP32, TF32, BF16 };

// "fp32", "tf32" or "bf16"; anything else throws ValueError.
inline Precision precision_from_name(const std::string& name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "tf32") return Precision::TF32;
  if (name == "bf16") return Precision::BF16;
  throw ValueError("precision: expected 'fp32', 'tf32' or 'bf16', got '" + name + "'");
}

}  // namespace fastnn
