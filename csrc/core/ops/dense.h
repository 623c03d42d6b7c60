// The dense-backward family's contract, implemented by cpu/dense.h and cuda/dense.h. Backward
// pass of a dense layer y = act(x @ W + b), fused:
//   dZ = dY * act'(Z)     formed while the products stage their operands, never stored;
//   dW = X^T dZ           (db = column sums of dZ, summed in double);
//   dX = dZ W^T           (skipped when dX is null: a network's first layer needs none).
// The gate holds Z, or Y = act(Z) for the activations whose derivative follows from the output
// (OperandGate::from_output, act_grad_from_output_ok); it has dY's row stride. All matrices
// row-major with the given row strides (elements), columns contiguous.
#pragma once
#include <cstdint>

#include "core/ops/gemm.h"

namespace fastnn {

template <class T>
struct DenseBackwardArgs {
  int64_t M = 0, K = 0, N = 0;  // batch, in_features, out_features
  const T* X = nullptr;         // (M, K)
  int64_t ldx = 0;
  const T* W = nullptr;         // (K, N)
  int64_t ldw = 0;
  const T* dY = nullptr;        // (M, N)
  int64_t ldy = 0;
  OperandGate<T> gate;          // (M, N) with stride ldy; data null = no activation
  T* dW = nullptr;              // (K, N)
  int64_t lddw = 0;
  T* db = nullptr;              // (N,) or null
  T* dX = nullptr;              // (M, K) or null
  int64_t lddx = 0;
  bool accumulate = false;      // dW += ..., db += ... (gradient accumulation); dX is overwritten
};

}  // namespace fastnn
