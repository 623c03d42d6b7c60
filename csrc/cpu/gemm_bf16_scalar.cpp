// The bf16 GEMM's fallback kernel, portable (see gemm_bf16_fallback.h).
#define FASTNN_ISA scalar
#include "cpu/gemm_bf16_fallback.h"
