// The training engine's binding: a Network object per model. Arguments arrive converted by
// fastnn/model.py (float arrays of the network's dtype, C-contiguous, int64 labels); the checks
// here keep any call from reading or writing out of bounds. Training, evaluation and prediction
// run with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <type_traits>

#include "bindings/engine_specs.h"
#include "core/error.h"
#include "engine/network.h"

namespace py = pybind11;
using namespace fastnn;
using namespace fastnn::engine;

namespace {

template <class T>
using CArray = py::array_t<T, py::array::c_style>;

template <class T>
Data<T> data_arg(const Network<T>& net, const CArray<T>& X, const py::object& labels,
                 const py::object& targets, const py::object& sample_weight, py::list& keep) {
  if (X.ndim() != 2 || X.shape(1) != net.input_dim())
    throw ValueError("X: expected shape (n, " + std::to_string(net.input_dim()) + ")");
  Data<T> d;
  d.X = X.data();
  d.n = X.shape(0);
  const int64_t C = net.output_dim();
  if (!labels.is_none()) {
    auto l = py::cast<CArray<int64_t>>(labels);
    if (l.ndim() != 1 || l.shape(0) != d.n) throw ValueError("y: expected one label per row of X");
    keep.append(l);
    d.labels = l.data();
  }
  if (!targets.is_none()) {
    auto t = py::cast<CArray<T>>(targets);
    if (t.ndim() != 2 || t.shape(0) != d.n || t.shape(1) != C)
      throw ValueError("y: expected shape (n, " + std::to_string(C) + ")");
    keep.append(t);
    d.targets = t.data();
  }
  if (!sample_weight.is_none()) {
    auto w = py::cast<CArray<T>>(sample_weight);
    if (w.ndim() != 1 || w.shape(0) != d.n)
      throw ValueError("sample_weight: expected one weight per row of X");
    keep.append(w);
    d.sample_weight = w.data();
  }
  return d;
}

// Whether no element is NaN or infinite: an all-ones exponent marks both. Integer ORs, which
// the compiler vectorizes (a floating-point sum would be kept in order, one element at a time).
template <class T>
bool all_finite(const T* x, int64_t n) {
  using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  const U exp_mask = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  U bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    U bits;
    std::memcpy(&bits, x + i, sizeof bits);
    bad |= U((bits & exp_mask) == exp_mask);
  }
  return bad == 0;
}

// A NumPy view of engine memory that keeps the network alive.
template <class T>
py::array view(py::object owner, std::vector<T>& v, const std::vector<int64_t>& dims) {
  return py::array_t<T>(dims, v.data(), owner);
}

template <class T>
void bind_network(py::module_& m, const char* name) {
  using Net = Network<T>;
  py::class_<Net> c(m, name);
  def_engine_properties<Net>(c);
  c.def(py::init([](int64_t input_dim, const py::list& layers, const std::string& loss,
                       const py::dict& optim, uint64_t seed, const py::dict& sampled) {
             const std::vector<LayerSpec> specs = layer_specs(layers);
             const SampledSpec ss = sampled_spec(sampled);
             return new Net(input_dim, specs, loss_from_name(loss), optim_spec(optim), seed, ss);
           }),
           py::arg("input_dim"), py::arg("layers"), py::arg("loss"), py::arg("optimizer"),
           py::arg("seed"), py::arg("sampled") = py::dict())
      .def("param_names", [](Net& n) { return names_list(n.params()); })
      .def("params",
           [](py::object self) {
             Net& n = py::cast<Net&>(self);
             py::list out;
             for (auto& p : n.params())
               out.append(view<T>(self, p.value, p.shape.dims()));
             return out;
           },
           "views of the parameters (writable; they live as long as the network)")
      .def("grads",
           [](py::object self) {
             Net& n = py::cast<Net&>(self);
             py::list out;
             for (auto& p : n.params())
               out.append(view<T>(self, p.grad, p.shape.dims()));
             return out;
           })
      .def("optimizer_state",
           [](py::object self) {
             Net& n = py::cast<Net&>(self);
             py::list out;
             for (auto& p : n.params())
               for (auto& s : p.state)
                 if (!s.empty())
                   out.append(view<T>(self, s, p.shape.dims()));
             return out;
           })
      .def("buffers",
           [](py::object self) {
             Net& n = py::cast<Net&>(self);
             py::list out;
             for (auto* b : n.buffers()) out.append(view<T>(self, *b, {int64_t(b->size())}));
             return out;
           })
      .def("begin_epoch", &Net::begin_epoch, py::arg("n"), py::arg("epoch"), py::arg("shuffle"))
      .def("train_batches",
           [](Net& n, const CArray<T>& X, const py::object& labels, const py::object& targets,
              int64_t batch_size, int64_t first, int64_t last,
              int64_t accumulate_steps, double clipnorm, const py::object& sample_weight) {
             py::list keep;
             Data<T> d = data_arg(n, X, labels, targets, sample_weight, keep);
             BatchStats s;
             {
               py::gil_scoped_release release;
               s = n.train_batches(d, batch_size, first, last, accumulate_steps, clipnorm);
             }
             return stats_dict(s, n.nonfinite());
           },
           py::arg("X"), py::arg("labels"), py::arg("targets"),
           py::arg("batch_size"), py::arg("first"), py::arg("last"), py::arg("accumulate_steps"),
           py::arg("clipnorm"), py::arg("sample_weight") = py::none())
      .def("evaluate",
           [](Net& n, const CArray<T>& X, const py::object& labels, const py::object& targets,
              int64_t batch_size, const py::object& sample_weight) {
             py::list keep;
             Data<T> d = data_arg(n, X, labels, targets, sample_weight, keep);
             BatchStats s;
             {
               py::gil_scoped_release release;
               s = n.evaluate(d, batch_size);
             }
             return stats_dict(s, false);
           },
           py::arg("X"), py::arg("labels"), py::arg("targets"),
           py::arg("batch_size"), py::arg("sample_weight") = py::none())
      .def("predict",
           [](Net& n, const CArray<T>& X, int64_t batch_size) {
             if (X.ndim() != 2 || X.shape(1) != n.input_dim())
               throw ValueError("X: expected shape (n, " + std::to_string(n.input_dim()) + ")");
             py::array_t<T> out({X.shape(0), py::ssize_t(n.output_dim())});
             const T* xp = X.data();
             T* op = out.mutable_data();
             const int64_t rows = X.shape(0);
             bool finite = true;
             {
               py::gil_scoped_release release;
               finite = all_finite(xp, rows * n.input_dim());
               if (finite) n.predict(xp, rows, batch_size, op);
             }
             if (!finite) throw ValueError("X: contains NaN or infinity");
             return out;
           },
           py::arg("X"), py::arg("batch_size"))
      .def("take_diagnostics", [](Net& n) { return diagnostics_list(n.take_diagnostics()); });
}

}  // namespace

void bind_engine(py::module_& m) {
  bind_network<float>(m, "Network32");
  bind_network<double>(m, "Network64");
}
