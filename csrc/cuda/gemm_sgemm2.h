// SGEMM v2 (gemm_sgemm2.cu): the fast path for the common layouts, used by cuda::gemm (gemm.cu)
// when sgemm2_applies() holds; sgemm_tiled (v1) stays the fallback for every other case.
#pragma once
#include "core/ops/gemm.h"

namespace fastnn {
namespace cuda {

// True when v2 can run g: K > 0; each of A and B stored with one unit stride (either one: that
// picks the transpose variant) and the other stride a positive multiple of 4; C row-major with
// its row stride a positive multiple of 4; A, B and C 16-byte aligned; no operand gates, colsum
// or Z output (the v1 path's contract for those is left as it is); the 128x128 grid fits.
bool sgemm2_applies(const GemmArgs<float>& g);

// True when the 128x128 tile grid of g is large enough to keep the GPU busy; below that the
// smaller tiles of v1 spread the work over more multiprocessors.
bool sgemm2_worth_it(const GemmArgs<float>& g);

// Enqueues v2 on `stream` (a cudaStream_t); requires sgemm2_applies(g). Throws CudaError naming
// the kernel when the launch fails.
void sgemm2(const GemmArgs<float>& g, void* stream);

// The TF32 tensor-core kernel (mma.sync m16n8k8, FP32 accumulation) on the same layouts; throws
// ValueError unless sgemm2_applies(g).
void gemm_tf32_v2(const GemmArgs<float>& g, void* stream);

// The BF16 tensor-core kernel (gemm_bf16.cu): A and B rounded to bfloat16 as they are staged,
// FP32 accumulation and epilogue.
void gemm_bf16_v2(const GemmArgs<float>& g, void* stream);

}  // namespace cuda
}  // namespace fastnn
