// AVX2 + FMA GEMM: 6 x 16 (float) and 6 x 8 (double) micro-kernels, 12 of the 16 ymm registers
// as accumulators, 2 for the B row, 1 for the broadcast A value.
#define FASTNN_ISA avx2
#include "cpu/simd_vec_avx2.h"
#include "cpu/gemm_simd.h"

using F32Kernels = fastnn::cpu::avx2::KernelSet<fastnn::avx2::VecF32, 6, 2, 256, 144, 512>;
void fastnn::cpu::avx2::gemm(const GemmArgs<float>& g) { F32Kernels::gemm(g); }
void fastnn::cpu::avx2::gemm_packed(const GemmArgs<float>& g, const float* panels, int64_t P) {
  F32Kernels::gemm_packed(g, panels, P);
}
int64_t fastnn::cpu::avx2::packed_width(int64_t N) { return F32Kernels::packed_width(N); }
void fastnn::cpu::avx2::gemm(const GemmArgs<double>& g) {
  gemm_blocked<fastnn::avx2::VecF64, 6, 2, 256, 144, 256>(g);
}
