// The bf16 GEMM's fallback kernel on AVX2 + FMA (see gemm_bf16_fallback.h).
#define FASTNN_ISA avx2
#include "cpu/gemm_bf16_fallback.h"
