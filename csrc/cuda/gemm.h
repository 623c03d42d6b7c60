// C = act(alpha * op(A) @ op(B) + beta * C + bias) on the GPU, FP32, hand-written (no cuBLAS).
//
// The contract is exactly that of cpu/gemm.h: the same GemmArgs<float>, with every pointer a
// device pointer and every stride an element stride (negative or zero is fine). beta == 0 means C
// is write-only, so uninitialised or NaN-filled outputs are safe. K == 0 gives
// act(beta * C + bias).
#pragma once
#include <stdexcept>
#include <string>

#include "cpu/gemm.h"

namespace fastnn {

// A failed CUDA call; the message names the kernel or runtime call and the CUDA error string.
// Deriving from runtime_error lets pybind11 turn it into RuntimeError with no extra translator.
struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace cuda {

// Enqueues the kernel on `stream` (a cudaStream_t; void* keeps this header free of CUDA headers
// so plain C++ translation units can include it) and returns without synchronising. Launch
// errors throw CudaError at once; errors while the kernel runs surface at the caller's next
// synchronising call, as with any asynchronous CUDA work. Bad arguments throw ValueError.
void gemm(const GemmArgs<float>& args, void* stream = nullptr);

}  // namespace cuda
}  // namespace fastnn
