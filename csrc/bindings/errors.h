// fastnn's C++ errors as Python exceptions, shared by _C and _cuda. Other std::runtime_error
// (CudaError among them) reach Python as RuntimeError through pybind11's own translation.
#pragma once
#include <pybind11/pybind11.h>

#include "core/error.h"

namespace fastnn {

inline void register_error_translators() {
  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
}

}  // namespace fastnn
