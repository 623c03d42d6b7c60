// The optimizer loops compiled for AVX512 (flags in CMakeLists.txt); see optim_loops.h.
#define FASTNN_OPTIM_ISA avx512
#include "cpu/optim_loops.h"
