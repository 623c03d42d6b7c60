#include <pybind11/pybind11.h>
namespace py = pybind11;
// placeholder: filled in by the optim work
void bind_optim(py::module_& m) {}
