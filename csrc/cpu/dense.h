// The CPU dense backward: the contract of core/ops/dense.h, as two gated GEMMs (cpu/gemm.h)
// that form dZ while they pack their operands.
#pragma once
#include "core/ops/dense.h"

namespace fastnn {
namespace cpu {

void dense_backward(const DenseBackwardArgs<float>& args);
void dense_backward(const DenseBackwardArgs<double>& args);

}  // namespace cpu
}  // namespace fastnn
