// The fully fused MLP: placeholder until the kernel lands (issue 6). fused_mlp_applies() says no,
// so the engine runs its layer-by-layer kernels.
#include "cuda/fused_mlp.h"

#include "core/error.h"

namespace fastnn {
namespace cuda {

bool fused_mlp_applies(const FusedMlpLayer*, int64_t, Precision) { return false; }

void fused_mlp_forward(const FusedMlpLayer*, int64_t, const float*, int64_t, float* const*,
                       Precision, void*) {
  throw ValueError("cuda fused_mlp_forward: the fused MLP kernel is not built yet");
}

void fused_mlp_backward(const FusedMlpLayer*, int64_t, const float*, const float* const*,
                        const float*, int64_t, float* const*, float*, Precision, void*) {
  throw ValueError("cuda fused_mlp_backward: the fused MLP kernel is not built yet");
}

}  // namespace cuda
}  // namespace fastnn
