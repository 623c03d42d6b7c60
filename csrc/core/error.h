// The errors fastnn's C++ raises. The bindings translate them into Python exceptions
// (ValueError, TypeError, RuntimeError), so a bad argument or a failed CUDA call never aborts
// the process. The one check of a CUDA return code lives in core/cuda_check.h (it needs the CUDA
// runtime's types, which plain C++ translation units must not see).
#pragma once
#include <stdexcept>
#include <string>

namespace fastnn {

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A failed CUDA call; the message names the kernel or runtime call and the CUDA error string.
// Deriving from runtime_error lets pybind11 turn it into RuntimeError with no extra translator.
struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

#define FASTNN_CHECK(cond, msg)                        \
  do {                                                 \
    if (!(cond)) throw ::fastnn::ValueError(msg);      \
  } while (0)

}  // namespace fastnn
