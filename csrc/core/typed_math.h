// libm chosen by argument type, for code compiled for the host and the device alike: exp_(x) is
// expf for a float x (single precision on the GPU too, never a silent promotion to double) and
// exp for a double. Used by core/act_math.h and the CUDA kernels.
#pragma once
#include <math.h>

#include "core/hd.h"

namespace fastnn {
namespace typed_math {
// Internal linkage: the CPU includes this in translation units built for different instruction
// sets; an out-of-line copy shared between them could be linked with the wrong instructions.
namespace {

#define FASTNN_TYPED_LIBM(name)                                       \
  FASTNN_HD_INLINE float name##_(float x) { return ::name##f(x); }    \
  FASTNN_HD_INLINE double name##_(double x) { return ::name(x); }
FASTNN_TYPED_LIBM(exp)
FASTNN_TYPED_LIBM(expm1)
FASTNN_TYPED_LIBM(log1p)
FASTNN_TYPED_LIBM(tanh)
FASTNN_TYPED_LIBM(erfc)
FASTNN_TYPED_LIBM(fabs)
#undef FASTNN_TYPED_LIBM

}  // namespace
}  // namespace typed_math
}  // namespace fastnn
