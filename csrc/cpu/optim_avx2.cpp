// The optimizer loops compiled for AVX2 (flags in CMakeLists.txt); see optim_loops.h.
#define FASTNN_OPTIM_ISA avx2
#include "cpu/optim_loops.h"
