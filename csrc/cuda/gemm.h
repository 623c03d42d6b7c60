// C = act(alpha * op(A) @ op(B) + beta * C + bias) on the GPU, FP32, hand-written (no cuBLAS).
//
// The contract is exactly that of core/ops/gemm.h: the same GemmArgs<float>, with every pointer
// a device pointer and every stride an element stride (negative or zero is fine). beta == 0 means
// C is write-only, so uninitialised or NaN-filled outputs are safe.
#pragma once
#include <string>

#include "core/error.h"  // CudaError
#include "core/ops/gemm.h"

namespace fastnn {
namespace cuda {

// Enqueues the kernel on `stream` (a cudaStream_t; void* keeps this header free of CUDA headers
// so plain C++ translation units can include it) and returns without synchronising. Launch
// errors throw CudaError at once; errors while the kernel runs surface at the caller's next
// synchronising call, as with any asynchronous CUDA work. Bad arguments throw ValueError.
//
// Two kernels sit behind it: v2 (gemm_sgemm2.cu: 128x128 tiles, 128-bit loads, double buffered)
// when every operand has a unit stride, leading dimensions that are multiples of 4, 16-byte
// aligned pointers, no gates/colsum/Z and a grid big enough to fill the GPU; v1 (the general
// strided kernel, 64x64 tiles) otherwise.
void gemm(const GemmArgs<float>& args, void* stream = nullptr);

// The same, with the kernel chosen by the caller (tests and benchmarks): Auto is gemm(); V1
// always runs the general kernel; V2 throws ValueError when its layout conditions do not hold
// (it ignores the grid-size heuristic).
// TF32 rounds A and B to TF32 (10-bit mantissa) and multiplies on tensor cores with FP32
// accumulation: ~1e-3 relative error instead of ~1e-6; same layout conditions as V2 (ValueError
// otherwise), K == 0 runs v1 (there is nothing to round).
// BF16 rounds A and B (FP32 in memory) to bfloat16 (8-bit mantissa, round to nearest even) as
// they are staged, and multiplies on tensor cores with FP32 accumulation: ~4e-3 relative error
// per product; the epilogue (alpha, beta, bias, activation) runs in FP32.
enum class GemmVariant { Auto, V1, V2, TF32, BF16 };

// The kernel of a training precision (core/ops/gemm.h).
GemmVariant gemm_variant_for(Precision p);

// The GEMM a training step runs: the tensor-core kernel of `precision` where its layout
// conditions hold, the FP32 kernels otherwise (odd leading dimensions, gates, tiny K), so every
// shape works in every precision.
void gemm_precision(const GemmArgs<float>& args, void* stream, Precision precision);
void gemm_variant(const GemmArgs<float>& args, void* stream, GemmVariant variant);

// The TF32 tensor-core GEMM: gemm_variant(args, stream, GemmVariant::TF32).
void gemm_tf32(const GemmArgs<float>& args, void* stream = nullptr);

// The BF16 tensor-core GEMM: gemm_variant(args, stream, GemmVariant::BF16).
void gemm_bf16(const GemmArgs<float>& args, void* stream = nullptr);

// "auto", "v1", "v2", "tf32" or "bf16"; anything else throws ValueError.
GemmVariant gemm_variant_from_name(const std::string& name);

}  // namespace cuda
}  // namespace fastnn
