// Dropout bindings: contiguous arrays in (fastnn/_dropout.py makes them so), GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "core/error.h"
#include "cpu/dropout.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

template <class T>
py::tuple forward(const py::array_t<T, py::array::c_style>& x, double rate, uint64_t seed) {
  py::array_t<T> y(x.request().shape);
  py::array_t<uint8_t> mask(x.request().shape);
  const T* xp = x.data();
  T* yp = y.mutable_data();
  uint8_t* mp = mask.mutable_data();
  const int64_t n = x.size();
  {
    py::gil_scoped_release release;
    cpu::dropout_forward(xp, yp, mp, n, rate, seed);
  }
  return py::make_tuple(y, mask);
}

// Into caller-provided y and mask (the training engine's way: no allocation per call).
template <class T>
void forward_into(const py::array_t<T, py::array::c_style>& x,
                  py::array_t<T, py::array::c_style>& y,
                  py::array_t<uint8_t, py::array::c_style>& mask, double rate, uint64_t seed) {
  if (y.size() != x.size() || mask.size() != x.size())
    throw ValueError("out / mask: expected as many elements as x");
  if (!y.writeable() || !mask.writeable()) throw ValueError("out / mask: arrays are read-only");
  const T* xp = x.data();
  T* yp = y.mutable_data();
  uint8_t* mp = mask.mutable_data();
  const int64_t n = x.size();
  py::gil_scoped_release release;
  cpu::dropout_forward(xp, yp, mp, n, rate, seed);
}

template <class T>
py::array backward(const py::array_t<T, py::array::c_style>& dy,
                   const py::array_t<uint8_t, py::array::c_style>& mask, double rate) {
  if (dy.size() != mask.size()) throw ValueError("mask: size does not match dy");
  py::array_t<T> dx(dy.request().shape);
  const T* dyp = dy.data();
  const uint8_t* mp = mask.data();
  T* dxp = dx.mutable_data();
  const int64_t n = dy.size();
  {
    py::gil_scoped_release release;
    cpu::dropout_backward(dyp, mp, dxp, n, rate);
  }
  return dx;
}

}  // namespace

void bind_dropout(py::module_& m) {
  // The float64 overloads come first: pybind11 tries overloads in order, and array_t<float>
  // would otherwise accept (by converting) a float64 array.
  m.def("dropout_forward", &forward<double>, py::arg("x").noconvert(), py::arg("rate"),
        py::arg("seed"));
  m.def("dropout_forward", &forward<float>, py::arg("x").noconvert(), py::arg("rate"),
        py::arg("seed"));
  m.def("dropout_forward_into", &forward_into<double>, py::arg("x").noconvert(),
        py::arg("out").noconvert(), py::arg("mask").noconvert(), py::arg("rate"), py::arg("seed"));
  m.def("dropout_forward_into", &forward_into<float>, py::arg("x").noconvert(),
        py::arg("out").noconvert(), py::arg("mask").noconvert(), py::arg("rate"), py::arg("seed"));
  m.def("dropout_backward", &backward<double>, py::arg("dy").noconvert(),
        py::arg("mask").noconvert(), py::arg("rate"));
  m.def("dropout_backward", &backward<float>, py::arg("dy").noconvert(),
        py::arg("mask").noconvert(), py::arg("rate"));
}
