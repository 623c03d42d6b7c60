// Errors raised by kernels. The bindings translate these into Python exceptions
// (ValueError / TypeError), so a bad argument never aborts the process.
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

#define FASTNN_CHECK(cond, msg)                        \
  do {                                                 \
    if (!(cond)) throw ::fastnn::ValueError(msg);      \
  } while (0)

}  // namespace fastnn
