// The CPU GEMM: the contract of core/ops/gemm.h (GemmArgs), blocked and register-tiled on
// AVX-512, AVX2 or portable vectors (gemm_driver.h), picked at run time.
#pragma once
#include "core/ops/gemm.h"

namespace fastnn {
namespace cpu {

void gemm(const GemmArgs<float>& args);
void gemm(const GemmArgs<double>& args);

// The plain triple loop, the reference the blocked code is derived from; also what tests compare
// the fast paths against at odd strides.
void gemm_reference(const GemmArgs<float>& args);
void gemm_reference(const GemmArgs<double>& args);

}  // namespace cpu
}  // namespace fastnn
