// C = act(alpha * op(A) @ op(B) + beta * C + bias), hand-written, no BLAS.
//
// A is (M,K), B is (K,N), C is (M,N) after op(); transposes and any layout are expressed through
// element strides (rs = step between rows, cs = step between columns; negative or zero is fine).
// beta == 0 means C is write-only: its old contents (NaN included) are never read.
// bias (N,) may be null; it and the activation are applied once, after the full K sum.
#pragma once
#include <cstdint>

#include "cpu/activation.h"

namespace fastnn {

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
