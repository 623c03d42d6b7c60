// AVX-512 GEMM: 12 x 32 (float) and 12 x 16 (double) micro-kernels, 24 of the 32 zmm registers
// as accumulators, 2 for the B row, 1 for the broadcast A value.
#define FASTNN_ISA avx512
#include "cpu/simd_vec_avx512.h"
#include "cpu/gemm_simd.h"

// KC keeps one A sliver (MR x KC) at ~12 KiB in L1. Float blocks were tuned on Zen 4 (1 MiB L2),
// 1 thread, GFLOP/s at 1024/2048: (KC,MC,NC) = (256,144,512) 100/93, (256,96,1024) 101/99,
// (384,144,384) 102/93, (256,48,2048) 102/104. Training's 256-row batches against 2048-wide
// weights prefer NC = 1024 (one thread, share of square 2048 GEMM's rate: forward 0.88 -> 0.91,
// dX = dZ W^T 0.81 -> 0.83, square and dW unchanged); two threads split such an N in two anyway.
using F32Kernels = fastnn::cpu::avx512::KernelSet<fastnn::avx512::VecF32, 12, 4, 256, 48, 1024>;
void fastnn::cpu::avx512::gemm(const GemmArgs<float>& g) { F32Kernels::gemm(g); }
void fastnn::cpu::avx512::gemm_packed(const GemmArgs<float>& g, const float* panels, int64_t P) {
  F32Kernels::gemm_packed(g, panels, P);
}
int64_t fastnn::cpu::avx512::packed_width(int64_t N) { return F32Kernels::packed_width(N); }
void fastnn::cpu::avx512::gemm(const GemmArgs<double>& g) {
  gemm_blocked<fastnn::avx512::VecF64, 12, 4, 128, 144, 512>(g);
}
