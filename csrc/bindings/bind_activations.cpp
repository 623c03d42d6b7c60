#include <pybind11/pybind11.h>
namespace py = pybind11;
// placeholder: filled in by the activations work
void bind_activations(py::module_& m) {}
