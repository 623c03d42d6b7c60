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

#include "core/error.h"
#include "engine/network.h"

namespace py = pybind11;
using namespace fastnn;
using namespace fastnn::engine;

namespace {

template <class T>
double get_num(const py::dict& d, const char* key, double fallback) {
  return d.contains(key) ? py::cast<double>(d[key]) : fallback;
}

LayerSpec layer_spec(const py::dict& d) {
  LayerSpec s;
  const std::string kind = py::cast<std::string>(d["kind"]);
  if (kind == "dense") s.kind = LayerKind::Dense;
  else if (kind == "activation") s.kind = LayerKind::Activation;
  else if (kind == "dropout") s.kind = LayerKind::Dropout;
  else if (kind == "batch_norm") s.kind = LayerKind::BatchNorm;
  else throw ValueError("layer kind: expected dense, activation, dropout or batch_norm, got '" +
                        kind + "'");
  if (d.contains("units")) s.units = py::cast<int64_t>(d["units"]);
  if (d.contains("activation")) s.act = act_from_name(py::cast<std::string>(d["activation"]));
  s.act_param = get_num<double>(d, "act_param", 0.0);
  if (d.contains("use_bias")) s.use_bias = py::cast<bool>(d["use_bias"]);
  s.l1 = get_num<double>(d, "l1", 0.0);
  s.l2 = get_num<double>(d, "l2", 0.0);
  s.rate = get_num<double>(d, "rate", 0.0);
  s.momentum = get_num<double>(d, "momentum", 0.1);
  s.eps = get_num<double>(d, "eps", 1e-5);
  return s;
}

OptimSpec optim_spec(const py::dict& d) {
  OptimSpec o;
  o.kind = optim_from_name(py::cast<std::string>(d["kind"]));
  o.lr = get_num<double>(d, "lr", o.lr);
  o.momentum = get_num<double>(d, "momentum", o.momentum);
  o.dampening = get_num<double>(d, "dampening", o.dampening);
  o.weight_decay = get_num<double>(d, "weight_decay", o.weight_decay);
  if (d.contains("nesterov")) o.nesterov = py::cast<bool>(d["nesterov"]);
  o.beta1 = get_num<double>(d, "beta1", o.beta1);
  o.beta2 = get_num<double>(d, "beta2", o.beta2);
  o.eps = get_num<double>(d, "eps", o.eps);
  if (d.contains("amsgrad")) o.amsgrad = py::cast<bool>(d["amsgrad"]);
  o.lr_decay = get_num<double>(d, "lr_decay", o.lr_decay);
  o.initial_accumulator_value =
      get_num<double>(d, "initial_accumulator_value", o.initial_accumulator_value);
  o.alpha = get_num<double>(d, "alpha", o.alpha);
  if (d.contains("centered")) o.centered = py::cast<bool>(d["centered"]);
  return o;
}

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

py::dict stats_dict(const BatchStats& s, bool nonfinite) {
  py::dict d;
  d["loss_sum"] = s.loss_sum;
  d["correct"] = s.correct;
  d["counted"] = s.counted;
  d["rows"] = s.rows;
  d["batches"] = s.batches;
  d["updates"] = s.updates;
  d["grad_norm"] = s.grad_norm;
  d["nonfinite"] = nonfinite;
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
py::array view(py::object owner, std::vector<T>& v, std::vector<py::ssize_t> shape) {
  return py::array_t<T>(shape, v.data(), owner);
}

template <class T>
void bind_network(py::module_& m, const char* name) {
  using Net = Network<T>;
  py::class_<Net>(m, name)
      .def(py::init([](int64_t input_dim, const py::list& layers, const std::string& loss,
                       const py::dict& optim, uint64_t seed, const py::dict& sampled) {
             std::vector<LayerSpec> specs;
             for (const auto& l : layers) specs.push_back(layer_spec(py::cast<py::dict>(l)));
             SampledSpec ss;
             if (sampled.contains("num_sampled"))
               ss.num_sampled = py::cast<int64_t>(sampled["num_sampled"]);
             if (sampled.contains("sampler"))
               ss.log_uniform = py::cast<std::string>(sampled["sampler"]) != "uniform";
             if (sampled.contains("unique")) ss.unique = py::cast<bool>(sampled["unique"]);
             if (sampled.contains("subtract_log_q"))
               ss.subtract_log_q = py::cast<bool>(sampled["subtract_log_q"]);
             if (sampled.contains("remove_accidental_hits"))
               ss.remove_accidental_hits = py::cast<bool>(sampled["remove_accidental_hits"]);
             if (sampled.contains("correct_true_logit"))
               ss.correct_true_logit = py::cast<bool>(sampled["correct_true_logit"]);
             return new Net(input_dim, specs, loss_from_name(loss), optim_spec(optim), seed, ss);
           }),
           py::arg("input_dim"), py::arg("layers"), py::arg("loss"), py::arg("optimizer"),
           py::arg("seed"), py::arg("sampled") = py::dict())
      .def_property_readonly("input_dim", &Net::input_dim)
      .def_property_readonly("output_dim", &Net::output_dim)
      .def_property("step", &Net::step, &Net::set_step)
      .def_property(
          "lr", [](Net& n) { return n.optim().lr; },
          [](Net& n, double lr) { n.optim().lr = lr; })
      .def("param_names",
           [](Net& n) {
             py::list out;
             for (auto& p : n.params()) out.append(p.name);
             return out;
           })
      .def("params",
           [](py::object self) {
             Net& n = py::cast<Net&>(self);
             py::list out;
             for (auto& p : n.params())
               out.append(p.rows == 1 ? view<T>(self, p.value, {p.cols})
                                      : view<T>(self, p.value, {p.rows, p.cols}));
             return out;
           },
           "views of the parameters (writable; they live as long as the network)")
      .def("grads",
           [](py::object self) {
             Net& n = py::cast<Net&>(self);
             py::list out;
             for (auto& p : n.params())
               out.append(p.rows == 1 ? view<T>(self, p.grad, {p.cols})
                                      : view<T>(self, p.grad, {p.rows, p.cols}));
             return out;
           })
      .def("optimizer_state",
           [](py::object self) {
             Net& n = py::cast<Net&>(self);
             py::list out;
             for (auto& p : n.params())
               for (auto& s : p.state)
                 if (!s.empty())
                   out.append(p.rows == 1 ? view<T>(self, s, {p.cols})
                                          : view<T>(self, s, {p.rows, p.cols}));
             return out;
           })
      .def("buffers",
           [](py::object self) {
             Net& n = py::cast<Net&>(self);
             py::list out;
             for (auto* b : n.buffers()) out.append(view<T>(self, *b, {py::ssize_t(b->size())}));
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
      .def("take_diagnostics", [](Net& n) {
        py::list out;
        for (const auto& d : n.take_diagnostics()) {
          py::dict e;
          e["grad_norm_sum"] = d.grad_norm_sum;
          e["update_ratio_sum"] = d.update_ratio_sum;
          e["dead_fraction_sum"] = d.dead_fraction_sum;
          e["updates"] = d.updates;
          e["batches"] = d.batches;
          out.append(e);
        }
        return out;
      });
}

}  // namespace

void bind_engine(py::module_& m) {
  bind_network<float>(m, "Network32");
  bind_network<double>(m, "Network64");
}
