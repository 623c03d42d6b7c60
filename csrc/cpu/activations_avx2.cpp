// float32 activation kernels for AVX2 (compiled with its own -m flags, chosen at run time by
// activations.cpp through active_simd()).
#include "cpu/activations_simd.h"
#include "cpu/simd_vec_avx2.h"

namespace fastnn {
namespace cpu {
namespace avx2 {

FASTNN_DEFINE_ACTIVATIONS(::fastnn::avx2::VecF32)

}  // namespace avx2
}  // namespace cpu
}  // namespace fastnn
