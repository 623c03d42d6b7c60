// Backward pass of a dense layer y = act(x @ W + b) on the GPU: the contract of cpu/dense.h
// (DenseBackwardArgs<float>, every pointer a device pointer, row strides in elements):
//   dZ = dY * act'(gate), dW (+)= X^T dZ, db (+)= column sums of dZ, dX = dZ W^T (when dX set).
// Enqueued on `stream` (a cudaStream_t) without synchronising; launch failures throw CudaError
// naming the kernel, bad arguments ValueError. `precision` picks the GEMM arithmetic (FP32, TF32
// or BF16 operands, always FP32 accumulation). The workspace (device memory of at least
// dense_backward_workspace_bytes(M, N) bytes, 256-byte aligned) holds what the kernels need
// between launches; it must stay untouched until the stream has run them. Deterministic: the
// same inputs give the same bits, run after run.
#pragma once
#include <cstdint>

#include "cpu/dense.h"
#include "cuda/gemm.h"

namespace fastnn {
namespace cuda {

int64_t dense_backward_workspace_bytes(int64_t M, int64_t N);

void dense_backward(const DenseBackwardArgs<float>& args, void* workspace,
                    int64_t workspace_bytes, void* stream = nullptr,
                    Precision precision = Precision::FP32);

}  // namespace cuda
}  // namespace fastnn
