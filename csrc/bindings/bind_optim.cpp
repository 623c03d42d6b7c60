// Optimizer bindings (_C and _cuda; bindings/convert.h): convert and forward. fastnn's Python
// layer validates with user-facing messages (naming the list and index) and hands over lists of
// C-contiguous arrays; the checks here only make sure that no call from Python can read or write
// out of bounds or through a read-only array. Every tensor of one call goes to one kernel call
// (one launch per 128 tensors on the GPU).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "bindings/convert.h"
#include "core/ops/optim.h"
#ifdef FASTNN_BACKEND_CUDA
#include "cuda/optim.h"
#else
#include "cpu/optim.h"
#endif

namespace fastnn::bind {
namespace {

// Views of list[i], each C-contiguous of the dtype of params[0], with n[i] elements when given.
std::vector<View> tensor_list(py::handle list, const std::string& name, DType dt,
                                 const std::vector<int64_t>* sizes, bool writable) {
  std::vector<View> v = view_list(list, name, writable);
  if (sizes && v.size() != sizes->size())
    throw ValueError(name + ": expected one array per param (" + std::to_string(sizes->size()) +
                     "), got " + std::to_string(v.size()));
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = name + "[" + std::to_string(i) + "]";
    require(v[i], dt, at);
    if (sizes && v[i].size() != (*sizes)[i])
      throw ValueError(at + ": expected " + std::to_string((*sizes)[i]) + " elements, got " +
                       std::to_string(v[i].size()));
  }
  return v;
}

// The tensor table of one optimizer call: one OptimTensor per params[i]; states[k] is a list
// like params, or None when unused.
struct Table {
  std::vector<View> params, grads, states[3];
  Place place;
};

Table gather(py::handle params, py::handle grads, std::initializer_list<py::handle> states,
             const std::vector<double>& l1, const std::vector<double>& l2, DType& dt) {
  Table t;
  const auto first = view_list(params, "params");
  if (first.empty()) return t;
  dt = first[0].dtype;
  is_double(first[0], "params[0]");
  t.params = tensor_list(params, "params", dt, nullptr, true);
  std::vector<int64_t> sizes;
  for (const View& p : t.params) sizes.push_back(p.size());
  if (l1.size() != sizes.size() || l2.size() != sizes.size())
    throw ValueError("params, grads, l1 and l2 must have the same length");
  t.grads = tensor_list(grads, "grads", dt, &sizes, false);
  int k = 0;
  for (py::handle s : states) {
    if (!s.is_none())
      t.states[k] = tensor_list(s, "states[" + std::to_string(k) + "]", dt, &sizes, true);
    ++k;
  }
  std::vector<View> all = t.params;
  for (const auto* list : {&t.grads, &t.states[0], &t.states[1], &t.states[2]})
    all.insert(all.end(), list->begin(), list->end());
  t.place = place_of(all);
  return t;
}

template <class T>
std::vector<fastnn::OptimTensor<T>> tensors(const Table& t, const std::vector<double>& l1,
                                         const std::vector<double>& l2) {
  std::vector<fastnn::OptimTensor<T>> out(t.params.size());
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].param = t.params[i].ptr<T>();
    out[i].grad = t.grads[i].ptr<const T>();
    out[i].n = t.params[i].size();
    for (int k = 0; k < 3; ++k)
      if (!t.states[k].empty()) out[i].state[k] = t.states[k][i].ptr<T>();
    out[i].l1 = l1[i];
    out[i].l2 = l2[i];
  }
  return out;
}

// kernel(tensors, count, options, place) in the dtype of params[0], without the GIL.
template <class Options, class Kernel>
void step(py::handle params, py::handle grads, std::initializer_list<py::handle> states,
          const std::vector<double>& l1, const std::vector<double>& l2, const Options& o,
          const Kernel& kernel) {
  DType dt = DType::Float32;
  const Table t = gather(params, grads, states, l1, l2, dt);
  if (t.params.empty()) return;
  if (dt == DType::Float64) {
    const auto ts = tensors<double>(t, l1, l2);
    run(t.place, [&] { kernel(ts.data(), int64_t(ts.size()), o, t.place); });
  } else {
    const auto ts = tensors<float>(t, l1, l2);
    run(t.place, [&] { kernel(ts.data(), int64_t(ts.size()), o, t.place); });
  }
}

// An optimizer's options with its hyper-parameters (core/ops/optim.h's for_each_field) taken
// from the call's keyword arguments of the same names: each one given, no other.
template <class Options>
Options options_from(const py::kwargs& hyper) {
  Options o;
  size_t given = 0;
  for_each_field(o, [&](const char* name, auto& member) {
    using Value = std::decay_t<decltype(member)>;
    PyObject* value = PyDict_GetItemString(hyper.ptr(), name);  // borrowed; null: not given
    if (value == nullptr)
      throw TypeError(std::string("missing keyword argument '") + name + "'");
    try {
      member = py::cast<Value>(py::handle(value));
    } catch (const py::cast_error&) {
      throw TypeError(std::string(name) + ": expected a " +
                      (std::is_same_v<Value, bool> ? "bool" : "number") + ", got " +
                      Py_TYPE(value)->tp_name);
    }
    ++given;
  });
  if (given != hyper.size())
    for (const auto& item : hyper) {
      bool known = false;
      const std::string key = py::str(item.first);
      for_each_field(o, [&](const char* name, auto&) { known = known || key == name; });
      if (!known) throw TypeError("unexpected keyword argument '" + key + "'");
    }
  return o;
}

// One backend's step, overloaded on float / double, as one callable.
#ifdef FASTNN_BACKEND_CUDA
#define FASTNN_STEP(fn)                                                           \
  [](const auto* t, int64_t count, const auto& o, const Place& p) {               \
    cuda::fn(t, count, o, nullptr, p.stream);                                     \
  }
#else
#define FASTNN_STEP(fn) \
  [](const auto* t, int64_t count, const auto& o, const Place&) { cpu::fn(t, count, o); }
#endif

// (views, data pointers, sizes) of a list of same-dtype tensors.
template <class T>
struct Flat {
  std::vector<View> views;
  std::vector<T*> data;
  std::vector<int64_t> sizes;
  Place place;
  Flat(std::vector<View> v) : views(std::move(v)) {
    for (const View& a : views) {
      data.push_back(a.ptr<T>());
      sizes.push_back(a.size());
    }
    place = place_of(views);
  }
};

template <class T>
double norm_of(std::vector<View> views) {
  Flat<const T> f(std::move(views));
#ifdef FASTNN_BACKEND_CUDA
  const int64_t cap = cuda::global_norm_partials(f.sizes.data(), int64_t(f.sizes.size()));
  Workspace partials(size_t(std::max<int64_t>(cap, 1)) * sizeof(double), f.place.device);
  Workspace out(2 * sizeof(double), f.place.device);
  double host[2];
  run(f.place, [&] {
    cuda::global_norm<T>(f.data.data(), f.sizes.data(), int64_t(f.data.size()),
                         std::numeric_limits<double>::infinity(),
                         static_cast<double*>(partials.data()), cap,
                         static_cast<double*>(out.data()), f.place.stream);
    download(host, out.data(), sizeof(host), f.place);
  });
  return host[0];
#else
  return run(f.place, [&] {
    return cpu::global_norm(f.data.data(), f.sizes.data(), int64_t(f.data.size()));
  });
#endif
}

template <class T>
void scale_of(std::vector<View> views, double factor) {
  Flat<T> f(std::move(views));
  run(f.place, [&] {
#ifdef FASTNN_BACKEND_CUDA
    cuda::scale_tensors<T>(f.data.data(), f.sizes.data(), int64_t(f.data.size()), factor,
                           nullptr, f.place.stream);
#else
    cpu::scale_tensors(f.data.data(), f.sizes.data(), int64_t(f.data.size()), factor);
#endif
  });
}

// The views of `tensors`, all of the first one's float dtype (C-contiguous); writable when asked.
std::vector<View> same_float_list(py::handle tensors, bool writable) {
  const auto first = view_list(tensors, "tensors");
  if (first.empty()) return {};
  is_double(first[0], "tensors[0]");
  return tensor_list(tensors, "tensors", first[0].dtype, nullptr, writable);
}

}  // namespace

void bind_optim(py::module_& m) {
  // The hyper-parameters come as keyword arguments named as in for_each_field; the rest is
  // what each call supplies itself.
  m.def("sgd_step",
        [](py::handle params, py::handle grads, py::handle bufs, const std::vector<double>& l1,
           const std::vector<double>& l2, bool first_step, double grad_scale,
           const py::kwargs& hyper) {
          auto o = options_from<fastnn::SgdOptions>(hyper);
          o.first_step = first_step;
          o.grad_scale = grad_scale;
          if (o.momentum != 0 && bufs.is_none())
            throw ValueError("momentum_buffers: needed when momentum != 0");
          step(params, grads, {o.momentum != 0 ? bufs : py::none()}, l1, l2, o,
               FASTNN_STEP(sgd_step));
        },
        py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("l1"),
        py::arg("l2"), py::arg("first_step"), py::arg("grad_scale"));

  m.def("adam_step",
        [](py::handle params, py::handle grads, py::handle exp_avgs, py::handle exp_avg_sqs,
           py::handle max_exp_avg_sqs, const std::vector<double>& l1,
           const std::vector<double>& l2, int64_t step_count, bool decoupled, double grad_scale,
           const py::kwargs& hyper) {
          auto o = options_from<fastnn::AdamOptions>(hyper);
          o.decoupled = decoupled;
          o.amsgrad = !max_exp_avg_sqs.is_none();
          o.step = step_count;
          o.grad_scale = grad_scale;
          if (step_count < 1) throw ValueError("step: expected a step count >= 1");
          step(params, grads, {exp_avgs, exp_avg_sqs, max_exp_avg_sqs}, l1, l2, o,
               FASTNN_STEP(adam_step));
        },
        py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
        py::arg("max_exp_avg_sqs"), py::arg("l1"), py::arg("l2"), py::arg("step"),
        py::arg("decoupled"), py::arg("grad_scale"));

  m.def("adagrad_step",
        [](py::handle params, py::handle grads, py::handle state_sums,
           const std::vector<double>& l1, const std::vector<double>& l2, int64_t step_count,
           double grad_scale, const py::kwargs& hyper) {
          auto o = options_from<fastnn::AdagradOptions>(hyper);
          o.step = step_count;
          o.grad_scale = grad_scale;
          if (step_count < 1) throw ValueError("step: expected a step count >= 1");
          step(params, grads, {state_sums}, l1, l2, o, FASTNN_STEP(adagrad_step));
        },
        py::arg("params"), py::arg("grads"), py::arg("state_sums"), py::arg("l1"),
        py::arg("l2"), py::arg("step"), py::arg("grad_scale"));

  m.def("rmsprop_step",
        [](py::handle params, py::handle grads, py::handle square_avgs,
           py::handle momentum_buffers, py::handle grad_avgs, const std::vector<double>& l1,
           const std::vector<double>& l2, double grad_scale, const py::kwargs& hyper) {
          auto o = options_from<fastnn::RmspropOptions>(hyper);
          o.centered = !grad_avgs.is_none();
          o.grad_scale = grad_scale;
          if (o.momentum > 0 && momentum_buffers.is_none())
            throw ValueError("momentum_buffers: needed when momentum > 0");
          const py::handle bufs = o.momentum > 0 ? momentum_buffers : py::none();
          step(params, grads, {square_avgs, bufs, grad_avgs}, l1, l2, o,
               FASTNN_STEP(rmsprop_step));
        },
        py::arg("params"), py::arg("grads"), py::arg("square_avgs"),
        py::arg("momentum_buffers"), py::arg("grad_avgs"), py::arg("l1"), py::arg("l2"),
        py::arg("grad_scale"));

  m.def("global_norm",
        [](py::handle tensors) {
          auto v = same_float_list(tensors, false);
          if (v.empty()) return 0.0;
          return v[0].dtype == DType::Float32 ? norm_of<float>(std::move(v))
                                              : norm_of<double>(std::move(v));
        },
        py::arg("tensors"), "sqrt of the sum of squares of every element, in double");
  m.def("scale_tensors",
        [](py::handle tensors, double factor) {
          auto v = same_float_list(tensors, true);
          if (v.empty()) return;
          if (v[0].dtype == DType::Float32)
            scale_of<float>(std::move(v), factor);
          else
            scale_of<double>(std::move(v), factor);
        },
        py::arg("tensors"), py::arg("factor"), "x *= factor in place, for every tensor");
}

}  // namespace fastnn::bind
