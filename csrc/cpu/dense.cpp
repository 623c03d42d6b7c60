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
  GemmArgs<T> w = gemm_product(a.K, a.N, a.M, a.X, 1, a.ldx, a.dY, a.ldy, 1, a.dW, a.lddw);
  w.gate_b = a.gate;
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
  GemmArgs<T> x = gemm_product(a.M, a.K, a.N, a.dY, a.ldy, 1, a.W, 1, a.ldw, a.dX, a.lddx);
  x.gate_a = a.gate;
  gemm(x);
}

}  // namespace

void dense_backward(const DenseBackwardArgs<float>& a) { dense_backward_impl(a); }
void dense_backward(const DenseBackwardArgs<double>& a) { dense_backward_impl(a); }

}  // namespace cpu
}  // namespace fastnn
