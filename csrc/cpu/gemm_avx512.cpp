// AVX-512 GEMM: 12 x 32 (float) and 12 x 16 (double) micro-kernels, 24 of the 32 zmm registers
// as accumulators, 2 for the B row, 1 for the broadcast A value.
#define FASTNN_ISA avx512
#define FASTNN_ISA_VECTOR_ACTIVATIONS 1
#include <immintrin.h>

#include "cpu/gemm_driver.h"

namespace fastnn {
namespace cpu {
namespace avx512 {

struct VecF {
  using T = float;
  using R = __m512;
  static constexpr int W = 16;
  static R zero() { return _mm512_setzero_ps(); }
  static R load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static R set1(float x) { return _mm512_set1_ps(x); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R max(R a, R b) { return _mm512_max_ps(a, b); }
  static R select_positive(R x, R if_pos, R otherwise) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, zero(), _CMP_GT_OQ), otherwise, if_pos);
  }
};

struct VecD {
  using T = double;
  using R = __m512d;
  static constexpr int W = 8;
  static R zero() { return _mm512_setzero_pd(); }
  static R load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, R v) { _mm512_storeu_pd(p, v); }
  static R set1(double x) { return _mm512_set1_pd(x); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R mul(R a, R b) { return _mm512_mul_pd(a, b); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static R max(R a, R b) { return _mm512_max_pd(a, b); }
  static R select_positive(R x, R if_pos, R otherwise) {
    return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, zero(), _CMP_GT_OQ), otherwise, if_pos);
  }
};

// KC keeps one A sliver (MR x KC) at ~12 KiB in L1. Float blocks were tuned on Zen 4 (1 MiB L2),
// 1 thread, GFLOP/s at 1024/2048: (KC,MC,NC) = (256,144,512) 100/93, (256,96,1024) 101/99,
// (384,144,384) 102/93, (256,48,2048) 102/104.
using KernelF = Kernel<VecF, 12, 2, 256, 48, 2048>;
using KernelFSmall = Kernel<VecF, 4, 4, 256, 48, 2048>;
using KernelFSingle = Kernel<VecF, 1, 4, 256, 48, 2048>;
using KernelD = Kernel<VecD, 12, 2, 128, 144, 512>;
using KernelDSmall = Kernel<VecD, 4, 4, 128, 144, 512>;
using KernelDSingle = Kernel<VecD, 1, 4, 128, 144, 512>;

// One vector wide, for few output columns (a classifier's last layer).
using KernelFNarrow = Kernel<VecF, 12, 1, 256, 48, 2048>;
using KernelFNarrowSingle = Kernel<VecF, 1, 1, 256, 48, 2048>;
using KernelDNarrow = Kernel<VecD, 12, 1, 128, 144, 512>;
using KernelDNarrowSingle = Kernel<VecD, 1, 1, 128, 144, 512>;

void gemm(const GemmArgs<float>& g) {
  gemm_by_rows<KernelF, KernelFSmall, KernelFSingle, KernelFNarrow, KernelFNarrowSingle>(g);
}
void gemm(const GemmArgs<double>& g) {
  gemm_by_rows<KernelD, KernelDSmall, KernelDSingle, KernelDNarrow, KernelDNarrowSingle>(g);
}

}  // namespace avx512
}  // namespace cpu
}  // namespace fastnn
