// The optimizer loops for the baseline instruction set (SSE2 on x86-64), the path every CPU
// can run; see optim_loops.h.
#define FASTNN_OPTIM_ISA scalar
#include "cpu/optim_loops.h"
