// Backward pass of a dense layer y = act(x @ W + b) on the GPU: the contract of core/ops/dense.h
// (DenseBackwardArgs<float>, every pointer a device pointer, row strides in elements):
//   dZ = dY * act'(gate), dW (+)= X^T dZ, db (+)= column sums of dZ, dX = dZ W^T (when dX set).
// Enqueued on `stream` (a cudaStream_t) without synchronising; launch failures throw CudaError
// naming the kernel, bad arguments ValueError. `precision` picks the GEMM arithmetic (FP32, TF32
// or BF16 operands, always FP32 accumulation). The workspace (device memory of at least
// dense_backward_workspace_bytes(M, N) bytes, 256-byte aligned) holds what the kernels need
// between launches; it must stay untouched until the stream has run them. Deterministic: the
// same inputs give the same bits, run after run.
//
// Two implementations behind it (dense.cu):
// - fused (FP32): one launch runs both GEMMs, the dW tiles and the dX tiles side by side; the
//   tile loaders multiply dY by act'(gate) as they stage it (dZ is never stored) and the blocks
//   of dW's first tile row sum the dZ columns they stage into db, in row order, in double; long
//   sums split over several blocks when the workspace allows (see the (M, K, N) size below);
// - composed (the reference, and TF32/BF16): dZ formed into the workspace by an element-wise
//   kernel, then the two GEMMs of `precision` and the column-sum kernel of reduce.h.
// Auto takes the fused path for FP32 unless act' is costly to recompute (it is evaluated once
// per 128-wide tile of each product) and the products are large.
#pragma once
#include <cstdint>
#include <string>

#include "core/ops/dense.h"
#include "cuda/gemm.h"

namespace fastnn {
namespace cuda {

int64_t dense_backward_workspace_bytes(int64_t M, int64_t N);
// At least the above, and enough for the fused path to split long sums over several blocks
// (split-K: when one product has few tiles and long sums, e.g. dW at a batch of 4096 over
// 1024x1024 weights); with the (M, N) size the fused path runs unsplit. The split depends on
// (M, K, N) only, so the bits of a result do not depend on the GPU.
int64_t dense_backward_workspace_bytes(int64_t M, int64_t K, int64_t N);

void dense_backward(const DenseBackwardArgs<float>& args, void* workspace,
                    int64_t workspace_bytes, void* stream = nullptr,
                    Precision precision = Precision::FP32);

// For tests and benchmarks: the path forced. Fused needs Precision::FP32 (ValueError otherwise);
// the fused paths use the workspace only to split sums (it may be null there). Fused64
// and Fused128 also force the tile size (operands not aligned for float4 always run 64).
enum class DenseBackwardPath { Auto, Fused, Composed, Fused64, Fused128 };
// "auto", "fused", "composed", "fused64" or "fused128"; anything else throws ValueError.
DenseBackwardPath dense_backward_path_from_name(const std::string& name);
void dense_backward_path(const DenseBackwardArgs<float>& args, void* workspace,
                         int64_t workspace_bytes, void* stream, Precision precision,
                         DenseBackwardPath path);

}  // namespace cuda
}  // namespace fastnn
