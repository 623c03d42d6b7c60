// The op families, each bound by its own bind_<family>.cpp; fastnn._C and fastnn._cuda register
// the same list, so one family file serves both modules (bindings/convert.h).
#pragma once
#include <pybind11/pybind11.h>

namespace fastnn::bind {

void bind_activations(pybind11::module_& m);
void bind_dense(pybind11::module_& m);
void bind_losses(pybind11::module_& m);
void bind_dropout(pybind11::module_& m);
void bind_batchnorm(pybind11::module_& m);
void bind_reduce(pybind11::module_& m);
void bind_optim(pybind11::module_& m);
void bind_sampled(pybind11::module_& m);
void bind_init(pybind11::module_& m);

inline void bind_op_families(pybind11::module_& m) {
  bind_activations(m);
  bind_dense(m);
  bind_losses(m);
  bind_dropout(m);
  bind_batchnorm(m);
  bind_reduce(m);
  bind_optim(m);
  bind_sampled(m);
  bind_init(m);
}

}  // namespace fastnn::bind
