// A whole stack of narrow dense layers in one launch (tiny-cuda-nn's "fully fused MLP", here in
// FP32 / TF32 / BF16 with biases and any batch size): each block takes a slab of rows and keeps
// their activations in shared memory and registers from the input to the last layer, so hidden
// activations never make a round trip through device memory except where training needs them.
//
// Forward: out_l = act_l(in_l @ W_l + b_l), in_0 = X, for l = 0..count-1.
// Backward (training): given dY = dLoss/d out_{count-1}, the kernel walks the layers back in the
// same block and writes dZ_l = dLoss/d(in_l @ W_l + b_l) for every layer (and dX when asked);
// the weight gradients dW_l = in_l^T dZ_l and db_l = column sums of dZ_l, which reduce over the
// whole batch, are left to the GEMM and column-sum kernels (as tiny-cuda-nn does), which keeps
// the result deterministic.
//
// Every pointer is a device pointer; matrices are row-major and contiguous (W_l is (in_l, out_l)).
// Calls enqueue on `stream` (a cudaStream_t) and return; launch failures throw CudaError naming
// the kernel, arguments outside fused_mlp_applies() ValueError.
#pragma once
#include <cstdint>

#include "core/ops/activation.h"
#include "cuda/gemm.h"

namespace fastnn {
namespace cuda {

struct FusedMlpLayer {
  const float* W = nullptr;  // (in, out)
  const float* b = nullptr;  // (out,) or null
  int64_t in = 0, out = 0;
  Act act = Act::None;
  float act_param = 0.0f;
};

// Whether the fused kernel handles this stack: 1 to kFusedMlpMaxLayers layers, every width
// (inputs included) at most kFusedMlpMaxWidth, and activations whose derivative follows from the
// output (act_grad_from_output_ok), since the backward pass only keeps outputs. Host-only: asks
// no device.
constexpr int64_t kFusedMlpMaxWidth = 128;
constexpr int64_t kFusedMlpMaxLayers = 16;
bool fused_mlp_applies(const FusedMlpLayer* layers, int64_t count, Precision precision);
// fused_mlp_applies, and a 16-row slab of the widest layer fits the current device's shared
// memory: the widest stacks do not on GPUs with less of it than an H100 (A100: fp32 / tf32 wider
// than 96, bf16 at 128; 8.6 / 8.9 cards: wider than 64), where the engine runs the layers one by
// one. Asks the current device.
bool fused_mlp_fits_device(const FusedMlpLayer* layers, int64_t count, Precision precision);

// X (M, layers[0].in) -> outputs[l] (M, layers[l].out) for every l. outputs[l] may be null for
// l < count - 1 (inference: hidden activations are then not written); training passes them all,
// since the backward pass reads them.
void fused_mlp_forward(const FusedMlpLayer* layers, int64_t count, const float* X, int64_t M,
                       float* const* outputs, Precision precision, void* stream = nullptr);

// outputs: the forward's outputs[l] for every l; dY (M, layers[count-1].out) -> dZ[l]
// (M, layers[l].out) for every l, and dX (M, layers[0].in) when not null. dZ[count-1] may alias
// dY (it is read before it is written, by the same thread).
void fused_mlp_backward(const FusedMlpLayer* layers, int64_t count, const float* X,
                        const float* const* outputs, const float* dY, int64_t M,
                        float* const* dZ, float* dX, Precision precision,
                        void* stream = nullptr);

}  // namespace cuda
}  // namespace fastnn
