// The one check of a CUDA runtime result, for CUDA translation units (.cu files and the host
// files of the GPU module): it includes cuda_runtime.h, so plain C++ code never includes it.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

namespace fastnn {
namespace cuda {

// Throws CudaError("fastnn: <what> failed: <name>: <description>") unless err is cudaSuccess.
inline void check(cudaError_t err, const std::string& what) {
  if (err == cudaSuccess) return;
  // Clear the (non-sticky) error so that an unrelated later cudaGetLastError does not report it.
  cudaGetLastError();
  throw CudaError("fastnn: " + what + " failed: " + cudaGetErrorName(err) + ": " +
                  cudaGetErrorString(err));
}
inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) check(err, std::string(what));
}

// Before a launch: a launch error left by earlier, unrelated work would otherwise be blamed on
// the next kernel.
inline void clear_launch_error() { cudaGetLastError(); }

// After a launch: picks up launch errors (bad configuration, missing image, too much shared
// memory...); errors while the kernel runs surface at the next synchronising call.
inline void check_launch(const char* kernel) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw CudaError(std::string("fastnn: CUDA kernel ") + kernel + " failed to launch: " +
                    cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}
inline void check_launch(const std::string& kernel) { check_launch(kernel.c_str()); }

}  // namespace cuda
}  // namespace fastnn
