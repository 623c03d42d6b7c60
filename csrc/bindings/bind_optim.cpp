// Optimizer bindings: argument conversion and GIL release only. fastnn/_optim_ops.py validates
// with user-facing messages (naming the list and index) and hands over lists of C-contiguous
// arrays; the checks here only make sure that no call from Python can read or write out of
// bounds or through a read-only array.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/optim.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

std::string at(const char* list, size_t i) {
  return std::string(list) + "[" + std::to_string(i) + "]";
}

// The data pointer of list[i], checked to be a C-contiguous array of dtype T with n elements
// (n < 0: any size) and writable when asked.
template <class T>
T* array_ptr(const py::list& list, size_t i, const char* name, int64_t n, bool writable) {
  if (!py::isinstance<py::array>(list[i]))
    throw TypeError(at(name, i) + ": expected a NumPy array");
  py::array a = py::reinterpret_borrow<py::array>(list[i]);
  if (!a.dtype().equal(py::dtype::of<T>()))
    throw TypeError(at(name, i) + ": expected dtype " + std::string(py::str(py::dtype::of<T>())) +
                    ", got " + std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw ValueError(at(name, i) + ": expected a C-contiguous array");
  if (n >= 0 && a.size() != n)
    throw ValueError(at(name, i) + ": expected " + std::to_string(n) + " elements, got " +
                     std::to_string(a.size()));
  if (writable && !a.writeable()) throw ValueError(at(name, i) + ": array is read-only");
  return static_cast<T*>(const_cast<void*>(a.data()));
}

// One OptimTensor per params[i]; states[k] is a list like params, or None when unused.
template <class T>
std::vector<cpu::OptimTensor<T>> gather(const py::list& params, const py::list& grads,
                                        const std::vector<py::object>& states,
                                        const std::vector<double>& l1,
                                        const std::vector<double>& l2) {
  const size_t count = params.size();
  if (grads.size() != count || l1.size() != count || l2.size() != count)
    throw ValueError("params, grads, l1 and l2 must have the same length");
  static const char* kStateNames[3] = {"states[0]", "states[1]", "states[2]"};
  std::vector<py::list> state_lists;
  for (const py::object& s : states) {
    if (s.is_none()) {
      state_lists.emplace_back();
      continue;
    }
    py::list l = py::reinterpret_borrow<py::list>(s);
    if (l.size() != count) throw ValueError("every state list must have one array per param");
    state_lists.push_back(l);
  }
  std::vector<cpu::OptimTensor<T>> t(count);
  for (size_t i = 0; i < count; ++i) {
    t[i].param = array_ptr<T>(params, i, "params", -1, true);
    t[i].n = py::reinterpret_borrow<py::array>(params[i]).size();
    t[i].grad = array_ptr<T>(grads, i, "grads", t[i].n, false);
    for (size_t k = 0; k < states.size(); ++k)
      if (!states[k].is_none())
        t[i].state[k] = array_ptr<T>(state_lists[k], i, kStateNames[k], t[i].n, true);
    t[i].l1 = l1[i];
    t[i].l2 = l2[i];
  }
  return t;
}

// Runs kernel(tensors, count, options) in the dtype of params[0], without the GIL.
template <class Options, class Kernel>
void dispatch(const py::list& params, const py::list& grads,
              const std::vector<py::object>& states, const std::vector<double>& l1,
              const std::vector<double>& l2, const Options& o, const Kernel& kernel) {
  if (params.size() == 0) return;
  py::array first = py::reinterpret_borrow<py::array>(params[0]);
  if (first.dtype().equal(py::dtype::of<float>())) {
    auto t = gather<float>(params, grads, states, l1, l2);
    py::gil_scoped_release release;
    kernel(t.data(), int64_t(t.size()), o);
  } else if (first.dtype().equal(py::dtype::of<double>())) {
    auto t = gather<double>(params, grads, states, l1, l2);
    py::gil_scoped_release release;
    kernel(t.data(), int64_t(t.size()), o);
  } else {
    throw TypeError("params[0]: expected float32 or float64, got " +
                    std::string(py::str(first.dtype())));
  }
}

// A kernel overloaded on float/double as one callable.
#define FASTNN_OVERLOADS(fn) \
  [](const auto* t, int64_t count, const auto& o) { cpu::fn(t, count, o); }

template <class T>
double norm_of(const py::list& tensors) {
  std::vector<const T*> data;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < tensors.size(); ++i) {
    data.push_back(array_ptr<T>(tensors, i, "tensors", -1, false));
    sizes.push_back(py::reinterpret_borrow<py::array>(tensors[i]).size());
  }
  py::gil_scoped_release release;
  return cpu::global_norm(data.data(), sizes.data(), int64_t(data.size()));
}

template <class T>
void scale_of(const py::list& tensors, double factor) {
  std::vector<T*> data;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < tensors.size(); ++i) {
    data.push_back(array_ptr<T>(tensors, i, "tensors", -1, true));
    sizes.push_back(py::reinterpret_borrow<py::array>(tensors[i]).size());
  }
  py::gil_scoped_release release;
  cpu::scale_tensors(data.data(), sizes.data(), int64_t(data.size()), factor);
}

bool is_float32(const py::list& tensors) {
  return tensors.size() > 0 &&
         py::reinterpret_borrow<py::array>(tensors[0]).dtype().equal(py::dtype::of<float>());
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("sgd_step",
        [](const py::list& params, const py::list& grads, const py::object& bufs,
           const std::vector<double>& l1, const std::vector<double>& l2, double lr,
           double momentum, double dampening, bool nesterov, double weight_decay, bool first_step,
           double grad_scale) {
          cpu::SgdOptions o;
          o.lr = lr;
          o.momentum = momentum;
          o.dampening = dampening;
          o.nesterov = nesterov;
          o.weight_decay = weight_decay;
          o.first_step = first_step;
          o.grad_scale = grad_scale;
          if (momentum != 0 && bufs.is_none())
            throw ValueError("momentum_buffers: needed when momentum != 0");
          dispatch(params, grads, {momentum != 0 ? bufs : py::none()}, l1, l2, o,
                   FASTNN_OVERLOADS(sgd_step));
        },
        py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("l1"),
        py::arg("l2"), py::arg("lr"), py::arg("momentum"), py::arg("dampening"),
        py::arg("nesterov"), py::arg("weight_decay"), py::arg("first_step"),
        py::arg("grad_scale"));

  m.def("adam_step",
        [](const py::list& params, const py::list& grads, const py::list& exp_avgs,
           const py::list& exp_avg_sqs, const py::object& max_exp_avg_sqs,
           const std::vector<double>& l1, const std::vector<double>& l2, int64_t step, double lr,
           double beta1, double beta2, double eps, double weight_decay, bool decoupled,
           double grad_scale) {
          cpu::AdamOptions o;
          o.lr = lr;
          o.beta1 = beta1;
          o.beta2 = beta2;
          o.eps = eps;
          o.weight_decay = weight_decay;
          o.decoupled = decoupled;
          o.amsgrad = !max_exp_avg_sqs.is_none();
          o.step = step;
          o.grad_scale = grad_scale;
          if (step < 1) throw ValueError("step: expected a step count >= 1");
          dispatch(params, grads, {exp_avgs, exp_avg_sqs, max_exp_avg_sqs}, l1, l2, o,
                   FASTNN_OVERLOADS(adam_step));
        },
        py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
        py::arg("max_exp_avg_sqs"), py::arg("l1"), py::arg("l2"), py::arg("step"),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("decoupled"), py::arg("grad_scale"));

  m.def("adagrad_step",
        [](const py::list& params, const py::list& grads, const py::list& state_sums,
           const std::vector<double>& l1, const std::vector<double>& l2, int64_t step, double lr,
           double lr_decay, double weight_decay, double eps, double grad_scale) {
          cpu::AdagradOptions o;
          o.lr = lr;
          o.lr_decay = lr_decay;
          o.weight_decay = weight_decay;
          o.eps = eps;
          o.step = step;
          o.grad_scale = grad_scale;
          if (step < 1) throw ValueError("step: expected a step count >= 1");
          dispatch(params, grads, {state_sums}, l1, l2, o, FASTNN_OVERLOADS(adagrad_step));
        },
        py::arg("params"), py::arg("grads"), py::arg("state_sums"), py::arg("l1"),
        py::arg("l2"), py::arg("step"), py::arg("lr"), py::arg("lr_decay"),
        py::arg("weight_decay"), py::arg("eps"), py::arg("grad_scale"));

  m.def("rmsprop_step",
        [](const py::list& params, const py::list& grads, const py::list& square_avgs,
           const py::object& momentum_buffers, const py::object& grad_avgs,
           const std::vector<double>& l1, const std::vector<double>& l2, double lr, double alpha,
           double eps, double weight_decay, double momentum, double grad_scale) {
          cpu::RmspropOptions o;
          o.lr = lr;
          o.alpha = alpha;
          o.eps = eps;
          o.weight_decay = weight_decay;
          o.momentum = momentum;
          o.centered = !grad_avgs.is_none();
          o.grad_scale = grad_scale;
          if (momentum > 0 && momentum_buffers.is_none())
            throw ValueError("momentum_buffers: needed when momentum > 0");
          const py::object bufs = momentum > 0 ? momentum_buffers : py::none();
          dispatch(params, grads, {square_avgs, bufs, grad_avgs}, l1, l2, o,
                   FASTNN_OVERLOADS(rmsprop_step));
        },
        py::arg("params"), py::arg("grads"), py::arg("square_avgs"),
        py::arg("momentum_buffers"), py::arg("grad_avgs"), py::arg("l1"), py::arg("l2"),
        py::arg("lr"), py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("momentum"), py::arg("grad_scale"));

  m.def("global_norm",
        [](const py::list& tensors) {
          if (tensors.size() == 0) return 0.0;
          return is_float32(tensors) ? norm_of<float>(tensors) : norm_of<double>(tensors);
        },
        py::arg("tensors"), "sqrt of the sum of squares of every element, in double");
  m.def("scale_tensors",
        [](const py::list& tensors, double factor) {
          if (tensors.size() == 0) return;
          if (is_float32(tensors))
            scale_of<float>(tensors, factor);
          else
            scale_of<double>(tensors, factor);
        },
        py::arg("tensors"), py::arg("factor"), "x *= factor in place, for every tensor");
}
