// float32 activation kernels for AVX512 (compiled with its own -m flags, chosen at run time by
// activations.cpp through active_simd()).
#include "cpu/activations_simd.h"
#include "cpu/simd_vec_avx512.h"

namespace fastnn {
namespace cpu {
namespace avx512 {

FASTNN_DEFINE_ACTIVATIONS(::fastnn::avx512::VecF32)

}  // namespace avx512
}  // namespace cpu
}  // namespace fastnn
