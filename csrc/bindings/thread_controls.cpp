// Plain C entry points to the thread count, exported from _C for threadpoolctl: its fastnn
// controller (fastnn/_threadpoolctl.py) finds this library among the loaded shared objects by
// these symbols and calls them through ctypes, as it calls openblas_set_num_threads.
#include "core/parallel.h"

#define FASTNN_C_API extern "C" __attribute__((visibility("default")))

FASTNN_C_API int fastnn_get_num_threads() { return fastnn::get_num_threads(); }

// No exception may cross into C: a count beyond the cap is clamped, as OpenBLAS clamps to its
// own maximum.
FASTNN_C_API void fastnn_set_num_threads(int n) { fastnn::clamp_num_threads(n); }
