// Fused dense backward: two GEMMs whose operand packing applies act' (see dense.h).
#include "cpu/dense.h"

#include <vector>

#include "cpu/gemm.h"

namespace fastnn {
namespace cpu {

namespace {

template <class T>
void dense_backward_impl(const DenseBackwardArgs<T>& a) {
  // dW (K x N) = X^T (K x M) @ dZ (M x N); db = colsum(dZ) while dZ is packed.
  std::vector<T> db_new;
  GemmArgs<T> w;
  w.M = a.K;
  w.N = a.N;
  w.K = a.M;
  w.A = a.X;
  w.rsa = 1;
  w.csa = a.ldx;
  w.B = a.dY;
  w.rsb = a.ldy;
  w.csb = 1;
  w.gate_b = a.gate;
  w.C = a.dW;
  w.rsc = a.lddw;
  w.csc = 1;
  w.beta = a.accumulate ? T(1) : T(0);
  if (a.db) {
    if (a.accumulate) {
      db_new.resize(static_cast<size_t>(a.N));
      w.colsum_b = db_new.data();
    } else {
      w.colsum_b = a.db;
    }
  }
  gemm(w);
  if (a.db && a.accumulate)
    for (int64_t j = 0; j < a.N; ++j) a.db[j] += db_new[static_cast<size_t>(j)];

  if (!a.dX) return;
  // dX (M x K) = dZ (M x N) @ W^T (N x K), dZ formed again while A is packed.
  GemmArgs<T> x;
  x.M = a.M;
  x.N = a.K;
  x.K = a.N;
  x.A = a.dY;
  x.rsa = a.ldy;
  x.csa = 1;
  x.gate_a = a.gate;
  x.B = a.W;
  x.rsb = 1;
  x.csb = a.ldw;
  x.C = a.dX;
  x.rsc = a.lddx;
  x.csc = 1;
  gemm(x);
}

}  // namespace

void dense_backward(const DenseBackwardArgs<float>& a) { dense_backward_impl(a); }
void dense_backward(const DenseBackwardArgs<double>& a) { dense_backward_impl(a); }

}  // namespace cpu
}  // namespace fastnn
