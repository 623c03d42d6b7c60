// Loss bindings: argument conversion and GIL release only. fastnn/_losses.py validates with
// user-facing messages and hands over C-contiguous arrays; the checks here only make sure that
// no call from Python can read or write out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/losses.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

bool is_contiguous(const py::array& a) {
  return (a.flags() & py::array::c_style) != 0;
}

void require(const py::array& a, const py::dtype& dt, const char* name) {
  if (!a.dtype().equal(dt))
    throw TypeError(std::string(name) + ": expected dtype " + std::string(py::str(dt)) +
                    ", got " + std::string(py::str(a.dtype())));
  if (!is_contiguous(a)) throw ValueError(std::string(name) + ": expected a C-contiguous array");
}

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

template <class T>
py::tuple run_xent(const py::array& logits, const py::array& labels, const py::object& weight,
                   double label_smoothing) {
  const py::dtype dt = py::dtype::of<T>();
  require(logits, dt, "logits");
  if (logits.ndim() != 2) throw ValueError("logits: expected a 2-D array");
  cpu::SoftmaxXentArgs<T> a;
  a.N = logits.shape(0);
  a.C = logits.shape(1);
  a.logits = static_cast<const T*>(logits.data());
  if (labels.ndim() == 1) {
    require(labels, py::dtype::of<int64_t>(), "labels");
    if (labels.shape(0) != a.N) throw ValueError("labels: expected one label per row of logits");
    a.labels = static_cast<const int64_t*>(labels.data());
  } else {
    require(labels, dt, "labels");
    if (labels.ndim() != 2 || labels.shape(0) != a.N || labels.shape(1) != a.C)
      throw ValueError("labels: probability labels must have the shape of logits");
    a.probs = static_cast<const T*>(labels.data());
  }
  py::array w;
  if (!weight.is_none()) {
    w = py::reinterpret_borrow<py::array>(weight);
    require(w, dt, "class_weight");
    if (w.ndim() != 1 || w.shape(0) != a.C)
      throw ValueError("class_weight: expected one weight per class");
    a.weight = static_cast<const T*>(w.data());
  }
  a.label_smoothing = label_smoothing;
  py::array_t<T> grad(shape_of(logits));
  a.grad = grad.mutable_data();
  double loss;
  {
    py::gil_scoped_release release;
    loss = cpu::softmax_cross_entropy(a);
  }
  return py::make_tuple(loss, grad);
}

py::tuple softmax_cross_entropy(const py::array& logits, const py::array& labels,
                                const py::object& weight, double label_smoothing) {
  if (!weight.is_none() && !py::isinstance<py::array>(weight))
    throw TypeError("class_weight: expected a NumPy array or None");
  if (logits.dtype().equal(py::dtype::of<float>()))
    return run_xent<float>(logits, labels, weight, label_smoothing);
  if (logits.dtype().equal(py::dtype::of<double>()))
    return run_xent<double>(logits, labels, weight, label_smoothing);
  throw TypeError("logits: expected float32 or float64, got " + std::string(py::str(logits.dtype())));
}

// The three element-wise losses share one shape: (a, b) of one dtype and size -> (loss, grad).
template <class T>
using Elementwise = double (*)(const T*, const T*, int64_t, T*);

template <class T>
py::tuple run_elementwise(Elementwise<T> kernel, const py::array& a, const py::array& b,
                          const char* a_name, const char* b_name) {
  const py::dtype dt = py::dtype::of<T>();
  require(a, dt, a_name);
  require(b, dt, b_name);
  if (shape_of(a) != shape_of(b))
    throw ValueError(std::string(b_name) + ": expected the shape of " + a_name);
  py::array_t<T> grad(shape_of(a));
  const T* ap = static_cast<const T*>(a.data());
  const T* bp = static_cast<const T*>(b.data());
  T* gp = grad.mutable_data();
  const int64_t n = a.size();
  double loss;
  {
    py::gil_scoped_release release;
    loss = kernel(ap, bp, n, gp);
  }
  return py::make_tuple(loss, grad);
}

template <Elementwise<float> F32, Elementwise<double> F64>
py::tuple elementwise(const py::array& a, const py::array& b, const char* a_name,
                      const char* b_name) {
  if (a.dtype().equal(py::dtype::of<float>())) return run_elementwise<float>(F32, a, b, a_name, b_name);
  if (a.dtype().equal(py::dtype::of<double>())) return run_elementwise<double>(F64, a, b, a_name, b_name);
  throw TypeError(std::string(a_name) + ": expected float32 or float64, got " +
                  std::string(py::str(a.dtype())));
}

}  // namespace

void bind_losses(py::module_& m) {
  m.def("softmax_cross_entropy", &softmax_cross_entropy, py::arg("logits").noconvert(),
        py::arg("labels").noconvert(), py::arg("class_weight"), py::arg("label_smoothing"),
        "(mean loss, dlogits); labels are int64 indices (N,) or probabilities (N, C)");
  m.def("binary_cross_entropy_with_logits",
        [](const py::array& x, const py::array& t) {
          return elementwise<cpu::binary_cross_entropy_with_logits,
                             cpu::binary_cross_entropy_with_logits>(x, t, "logits", "targets");
        },
        py::arg("logits").noconvert(), py::arg("targets").noconvert());
  m.def("mse",
        [](const py::array& p, const py::array& t) {
          return elementwise<cpu::mse, cpu::mse>(p, t, "pred", "target");
        },
        py::arg("pred").noconvert(), py::arg("target").noconvert());
  m.def("mae",
        [](const py::array& p, const py::array& t) {
          return elementwise<cpu::mae, cpu::mae>(p, t, "pred", "target");
        },
        py::arg("pred").noconvert(), py::arg("target").noconvert());
}
