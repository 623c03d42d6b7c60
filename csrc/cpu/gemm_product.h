// A plain product's GemmArgs from its shape and operands, for callers that build GEMMs (dense
// backward; the engine's layer GEMMs set the same fields) and then add what differs.
#pragma once
#include <cstdint>

#include "cpu/gemm.h"

namespace fastnn {
namespace cpu {

// C (M x N, rows rsc apart) = op(A) (M x K) op(B) (K x N), each operand given by its pointer and
// its row and column strides; the caller adds gates, beta and the column sum.
template <class T>
GemmArgs<T> gemm_product(int64_t M, int64_t N, int64_t K, const T* A, int64_t rsa, int64_t csa,
                         const T* B, int64_t rsb, int64_t csb, T* C, int64_t rsc) {
  GemmArgs<T> g;
  g.M = M;
  g.N = N;
  g.K = K;
  g.A = A;
  g.rsa = rsa;
  g.csa = csa;
  g.B = B;
  g.rsb = rsb;
  g.csb = csb;
  g.C = C;
  g.rsc = rsc;
  g.csc = 1;
  return g;
}

}  // namespace cpu
}  // namespace fastnn
