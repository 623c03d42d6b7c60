// The BF16 tensor-core GEMM: placeholder until the mma.sync kernel lands (issue 5).
#include <string>

#include "core/error.h"
#include "cuda/gemm_sgemm2.h"

namespace fastnn {
namespace cuda {

void gemm_bf16_v2(const GemmArgs<float>&, void*) {
  throw ValueError("cuda gemm: the bf16 variant is not built yet");
}

}  // namespace cuda
}  // namespace fastnn
