// Dropout mask loop built with the AVX2 flags (see dropout_impl.h): the generic lane code, which
// the compiler vectorizes in part.
#define FASTNN_ISA avx2
#include "cpu/dropout_impl.h"

namespace fastnn {
namespace cpu {
namespace avx2 {

template <class T>
void dropout_range(const T* x, T* y, uint8_t* mask, int64_t begin, int64_t end,
                   uint32_t keep_from, T scale, uint32_t k0, uint32_t k1) {
  dropout_range_generic(x, y, mask, begin, end, keep_from, scale, k0, k1);
}

template void dropout_range<float>(const float*, float*, uint8_t*, int64_t, int64_t, uint32_t,
                                   float, uint32_t, uint32_t);
template void dropout_range<double>(const double*, double*, uint8_t*, int64_t, int64_t, uint32_t,
                                    double, uint32_t, uint32_t);

}  // namespace avx2
}  // namespace cpu
}  // namespace fastnn
