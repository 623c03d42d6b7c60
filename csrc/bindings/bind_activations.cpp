// Activation bindings: argument conversion and GIL release only. fastnn/_activations.py validates
// with user-facing messages and hands over C-contiguous arrays of one dtype (out included); the
// checks here only make sure that no call from Python can read or write out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "core/error.h"
#include "core/ops/activation.h"
#include "cpu/activations.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

// Every array: the dtype of the first, C-contiguous, the size of the first; `out` writable.
void check_arrays(std::initializer_list<std::pair<const py::array*, const char*>> arrays) {
  const py::array& first = *arrays.begin()->first;
  for (const auto& [a, name] : arrays) {
    if (!a->dtype().equal(first.dtype()))
      throw TypeError(std::string(name) + ": expected dtype " + std::string(py::str(first.dtype())) +
                      ", got " + std::string(py::str(a->dtype())));
    if (!(a->flags() & py::array::c_style))
      throw ValueError(std::string(name) + ": expected a C-contiguous array");
    if (a->size() != first.size())
      throw ValueError(std::string(name) + ": expected " + std::to_string(first.size()) +
                       " elements, got " + std::to_string(a->size()));
  }
  const py::array& out = *(arrays.end() - 1)->first;
  if (!out.writeable()) throw ValueError("out: array is read-only");
}

bool is_float(const py::array& a) {
  if (a.dtype().equal(py::dtype::of<float>())) return true;
  if (a.dtype().equal(py::dtype::of<double>())) return false;
  throw TypeError("x: expected float32 or float64, got " + std::string(py::str(a.dtype())));
}

template <class T>
const T* in(const py::array& a) { return static_cast<const T*>(a.data()); }
template <class T>
T* out_ptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }

void act_forward(const py::array& x, py::array& out, const std::string& name, double param) {
  check_arrays({{&x, "x"}, {&out, "out"}});
  const Act act = act_from_name(name);
  const int64_t n = x.size();
  if (is_float(x)) {
    const float* xp = in<float>(x);
    float* yp = out_ptr<float>(out);
    py::gil_scoped_release release;
    cpu::act_forward<float>(act, static_cast<float>(param), xp, yp, n);
  } else {
    const double* xp = in<double>(x);
    double* yp = out_ptr<double>(out);
    py::gil_scoped_release release;
    cpu::act_forward<double>(act, param, xp, yp, n);
  }
}

template <class T>
void run_backward(Act act, T param, const T* dy, const T* v, T* dx, int64_t n, bool from_output) {
  py::gil_scoped_release release;
  if (from_output)
    cpu::act_backward_from_output<T>(act, param, dy, v, dx, n);
  else
    cpu::act_backward<T>(act, param, dy, v, dx, n);
}

void act_backward(const py::array& dy, const py::array& v, py::array& out, const std::string& name,
                  double param, bool from_output) {
  check_arrays({{&dy, "dy"}, {&v, from_output ? "y" : "x"}, {&out, "out"}});
  const Act act = act_from_name(name);
  if (from_output && !cpu::act_grad_from_output_ok(act, param))
    throw ValueError("activation: the gradient of '" + name +
                     "' with this parameter is not a function of its output");
  if (is_float(dy))
    run_backward<float>(act, static_cast<float>(param), in<float>(dy), in<float>(v),
                        out_ptr<float>(out), dy.size(), from_output);
  else
    run_backward<double>(act, param, in<double>(dy), in<double>(v), out_ptr<double>(out),
                         dy.size(), from_output);
}

// Rows and columns of a (rows, cols) or (cols,) array.
std::pair<int64_t, int64_t> rows_cols(const py::array& a) {
  if (a.ndim() < 1) throw ValueError("x: expected at least a 1-D array");
  const int64_t cols = a.shape(a.ndim() - 1);
  return {cols == 0 ? 0 : a.size() / cols, cols};
}

void softmax_forward(const py::array& x, py::array& out, bool log) {
  check_arrays({{&x, "x"}, {&out, "out"}});
  const auto [rows, cols] = rows_cols(x);
  if (is_float(x)) {
    const float* xp = in<float>(x);
    float* yp = out_ptr<float>(out);
    py::gil_scoped_release release;
    log ? cpu::log_softmax_rows(xp, yp, rows, cols) : cpu::softmax_rows(xp, yp, rows, cols);
  } else {
    const double* xp = in<double>(x);
    double* yp = out_ptr<double>(out);
    py::gil_scoped_release release;
    log ? cpu::log_softmax_rows(xp, yp, rows, cols) : cpu::softmax_rows(xp, yp, rows, cols);
  }
}

template <class T>
void run_softmax_backward(const T* dy, const T* y, T* dx, int64_t rows, int64_t cols, bool log) {
  py::gil_scoped_release release;
  if (log)
    cpu::log_softmax_rows_backward(dy, y, dx, rows, cols);
  else
    cpu::softmax_rows_backward(dy, y, dx, rows, cols);
}

void softmax_backward(const py::array& dy, const py::array& y, py::array& out, bool log) {
  check_arrays({{&dy, "dy"}, {&y, "y"}, {&out, "out"}});
  const auto [rows, cols] = rows_cols(y);
  if (is_float(dy))
    run_softmax_backward<float>(in<float>(dy), in<float>(y), out_ptr<float>(out), rows, cols, log);
  else
    run_softmax_backward<double>(in<double>(dy), in<double>(y), out_ptr<double>(out), rows, cols,
                                 log);
}

}  // namespace

void bind_activations(py::module_& m) {
  m.def("act_forward", &act_forward, py::arg("x").noconvert(), py::arg("out").noconvert(),
        py::arg("activation"), py::arg("param"), "out = act(x), element-wise; out may be x");
  m.def("act_backward", &act_backward, py::arg("dy").noconvert(), py::arg("v").noconvert(),
        py::arg("out").noconvert(), py::arg("activation"), py::arg("param"),
        py::arg("from_output") = false,
        "out = dy * act'(x), v = x (or v = y = act(x) when from_output)");
  m.def("act_grad_from_output_ok",
        [](const std::string& name, double param) {
          return cpu::act_grad_from_output_ok(act_from_name(name), param);
        },
        py::arg("activation"), py::arg("param"));
  m.def("softmax_forward", &softmax_forward, py::arg("x").noconvert(), py::arg("out").noconvert(),
        py::arg("log"), "(log-)softmax over the last axis; out may be x");
  m.def("softmax_backward", &softmax_backward, py::arg("dy").noconvert(), py::arg("y").noconvert(),
        py::arg("out").noconvert(), py::arg("log"),
        "vector-Jacobian product of (log-)softmax over the last axis, from its output y");
}
