// AVX2 + FMA GEMM: 6 x 16 (float) and 6 x 8 (double) micro-kernels, 12 of the 16 ymm registers
// as accumulators, 2 for the B row, 1 for the broadcast A value.
#define FASTNN_ISA avx2
#define FASTNN_ISA_VECTOR_ACTIVATIONS 1
#include <immintrin.h>

#include "cpu/gemm_driver.h"

namespace fastnn {
namespace cpu {
namespace avx2 {

struct VecF {
  using T = float;
  using R = __m256;
  static constexpr int W = 8;
  static R zero() { return _mm256_setzero_ps(); }
  static R load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static R set1(float x) { return _mm256_set1_ps(x); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }
  static R select_positive(R x, R if_pos, R otherwise) {
    return _mm256_blendv_ps(otherwise, if_pos, _mm256_cmp_ps(x, zero(), _CMP_GT_OQ));
  }
};

struct VecD {
  using T = double;
  using R = __m256d;
  static constexpr int W = 4;
  static R zero() { return _mm256_setzero_pd(); }
  static R load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, R v) { _mm256_storeu_pd(p, v); }
  static R set1(double x) { return _mm256_set1_pd(x); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static R mul(R a, R b) { return _mm256_mul_pd(a, b); }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static R max(R a, R b) { return _mm256_max_pd(a, b); }
  static R select_positive(R x, R if_pos, R otherwise) {
    return _mm256_blendv_pd(otherwise, if_pos, _mm256_cmp_pd(x, zero(), _CMP_GT_OQ));
  }
};

using KernelF = Kernel<VecF, 6, 2, 256, 144, 512>;
using KernelFSmall = Kernel<VecF, 2, 4, 256, 144, 512>;
using KernelFSingle = Kernel<VecF, 1, 4, 256, 144, 512>;
using KernelD = Kernel<VecD, 6, 2, 256, 144, 256>;
using KernelDSmall = Kernel<VecD, 2, 4, 256, 144, 256>;
using KernelDSingle = Kernel<VecD, 1, 4, 256, 144, 256>;

// One vector wide, for few output columns (a classifier's last layer).
using KernelFNarrow = Kernel<VecF, 6, 1, 256, 144, 512>;
using KernelFNarrowSingle = Kernel<VecF, 1, 1, 256, 144, 512>;
using KernelDNarrow = Kernel<VecD, 6, 1, 256, 144, 256>;
using KernelDNarrowSingle = Kernel<VecD, 1, 1, 256, 144, 256>;

void gemm(const GemmArgs<float>& g) {
  gemm_by_rows<KernelF, KernelFSmall, KernelFSingle, KernelFNarrow, KernelFNarrowSingle>(g);
}
void gemm(const GemmArgs<double>& g) {
  gemm_by_rows<KernelD, KernelDSmall, KernelDSingle, KernelDNarrow, KernelDNarrowSingle>(g);
}

}  // namespace avx2
}  // namespace cpu
}  // namespace fastnn
