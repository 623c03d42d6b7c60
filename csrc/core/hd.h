// Functions written once for the host and the device. FASTNN_HD marks one that nvcc compiles for
// both; FASTNN_HD_INLINE one that is also always inlined there (the small math of the kernels'
// inner loops: a call per element would cost more than the arithmetic). Plain C++ sees `inline`.
#pragma once

#ifdef __CUDACC__
#define FASTNN_HD __host__ __device__
#define FASTNN_HD_INLINE FASTNN_HD __forceinline__
#else
#define FASTNN_HD
#define FASTNN_HD_INLINE inline
#endif
