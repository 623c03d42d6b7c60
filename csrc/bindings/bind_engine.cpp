// The training engine's one binding, compiled into fastnn._C and fastnn._cuda alike: classes
// Network32 and Network64 over engine::Engine (engine/engine.h), built by the module's backend
// (create_engine: the CPU engine in _C, the GPU engine in _cuda), with the same constructor and
// methods in both. The arrays a call takes are converted here, at the edge: NumPy arrays for an
// engine on the host, contiguous fastnn.Tensors on the engine's CUDA device for a GPU one; the
// arrays an engine holds come back as NumPy copies (read) and go in from NumPy (write).
//
// Arguments arrive converted by fastnn/model.py; the checks here keep any call from reading or
// writing out of bounds. Every call runs with the GIL released and the engine takes its lock
// itself (engine.h); read, write, step and lr take it here, waited for with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "bindings/engine_calls.h"
#include "bindings/engine_specs.h"
#include "bindings/py_grad_hook.h"
#include "core/error.h"
#include "engine/engine.h"

namespace py = pybind11;
using namespace fastnn;
using namespace fastnn::engine;

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + (shape[i] < 0 ? std::string("n") : std::to_string(shape[i]));
  return s + (shape.size() == 1 ? ",)" : ")");
}

// The address of an array argument of element type U and shape `shape` (-1: the length n every
// array of the call shares, set by the first one). Host engines (device -1) take NumPy arrays
// (converted to U where NumPy casts safely; `keep` holds the copy for the call), GPU engines a
// contiguous fastnn.Tensor of U on their device. None gives nullptr.
template <class U>
U* array_arg(const py::object& a, int device, const char* name, std::vector<int64_t> shape,
             int64_t& n, py::list& keep) {
  if (a.is_none()) return nullptr;
  std::vector<int64_t> got;
  U* data = nullptr;
  if (device < 0) {
    if (!py::isinstance<py::array>(a))
      throw py::type_error(std::string(name) + ": the CPU engine takes NumPy arrays, got " +
                           std::string(py::str(py::type::of(a).attr("__name__"))));
    using Arr = py::array_t<U, py::array::c_style>;
    // An array already of U and C-contiguous (predict's usual argument) is read in place: no
    // conversion call, nothing to keep (batch-1 predict is a few microseconds in all).
    py::array arr;
    if (Arr::check_(a)) {
      arr = py::reinterpret_borrow<py::array>(a);
    } else {
      arr = Arr::ensure(a);
      if (!arr) {
        PyErr_Clear();
        throw py::type_error(std::string(name) + ": expected an array of " +
                             std::string(py::str(py::dtype::of<U>())) + ", got " +
                             std::string(py::str(a.attr("dtype"))));
      }
      keep.append(arr);
    }
    got.assign(arr.shape(), arr.shape() + arr.ndim());
    data = static_cast<U*>(const_cast<void*>(arr.data()));
  } else {
    const std::string where = "cuda:" + std::to_string(device);
    const bool tensor = py::hasattr(a, "is_cuda") && py::hasattr(a, "data_ptr");
    if (!tensor || !py::cast<bool>(a.attr("is_cuda")) ||
        py::cast<std::string>(a.attr("device")) != where)
      throw py::type_error(std::string(name) + ": the GPU engine takes fastnn.Tensors on " +
                           where + ", got " + std::string(py::str(py::repr(a))).substr(0, 80));
    if (!py::object(a.attr("dtype")).equal(py::dtype::of<U>()))
      throw py::type_error(std::string(name) + ": expected a tensor of " +
                           std::string(py::str(py::dtype::of<U>())) + ", got " +
                           std::string(py::str(a.attr("dtype"))));
    if (!py::cast<bool>(a.attr("is_contiguous")()))
      throw ValueError(std::string(name) + ": expected a contiguous tensor");
    got = py::cast<std::vector<int64_t>>(a.attr("shape"));
    data = reinterpret_cast<U*>(py::cast<uintptr_t>(a.attr("data_ptr")()));
  }
  if (n < 0 && !shape.empty() && shape[0] < 0 && !got.empty()) n = got[0];
  for (auto& d : shape)
    if (d < 0) d = n;
  if (got != shape)
    throw ValueError(std::string(name) + ": expected shape " + shape_text(shape) + ", got " +
                     shape_text(got));
  return data;
}

template <class T>
Data<T> data_arg(const Engine<T>& e, const py::object& X, const py::object& labels,
                 const py::object& targets, const py::object& sample_weight, py::list& keep) {
  const int dev = e.device();
  int64_t n = -1;
  Data<T> d;
  d.X = array_arg<T>(X, dev, "X", {-1, e.input_dim()}, n, keep);
  FASTNN_CHECK(d.X != nullptr || n == 0, "X: required");
  d.n = n;
  d.labels = array_arg<int64_t>(labels, dev, "y", {-1}, n, keep);
  d.targets = array_arg<T>(targets, dev, "y", {-1, e.output_dim()}, n, keep);
  d.sample_weight = array_arg<T>(sample_weight, dev, "sample_weight", {-1}, n, keep);
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

Slot slot_from_name(const std::string& kind) {
  if (kind == "params") return Slot::Params;
  if (kind == "grads") return Slot::Grads;
  if (kind == "state") return Slot::State;
  if (kind == "buffers") return Slot::Buffers;
  throw ValueError("kind: expected params, grads, state or buffers, got '" + kind + "'");
}

// A train_batches / evaluate call's sums as a dict (with the non-finite flag).
py::dict stats_dict(const BatchStats& s, bool nonfinite) {
  using namespace py::literals;
  return py::dict("loss_sum"_a = s.loss_sum, "correct"_a = s.correct, "counted"_a = s.counted,
                  "rows"_a = s.rows, "batches"_a = s.batches, "updates"_a = s.updates,
                  "grad_norm"_a = s.grad_norm, "nonfinite"_a = nonfinite);
}

// take_diagnostics' list: one dict a layer.
py::list diagnostics_list(const std::vector<LayerDiagnostics>& diag) {
  using namespace py::literals;
  py::list out;
  for (const LayerDiagnostics& d : diag)
    out.append(py::dict("grad_norm_sum"_a = d.grad_norm_sum,
                        "update_ratio_sum"_a = d.update_ratio_sum,
                        "dead_fraction_sum"_a = d.dead_fraction_sum, "updates"_a = d.updates,
                        "batches"_a = d.batches));
  return out;
}

template <class T>
void bind_network(py::module_& m, const char* name) {
  using E = Engine<T>;
  // Module-local: _C and _cuda each register Engine<T> under the same names, and pybind11's
  // registry of types is otherwise shared by every module (the second import would fail).
  py::class_<E> c(m, name, py::module_local());
  c.def(py::init([](int64_t input_dim, const py::list& layers, const std::string& loss,
                       const py::dict& optim, uint64_t seed, const py::dict& sampled,
                       const py::dict& options) {
             EngineConfig config;
             config.input_dim = input_dim;
             config.layers = layer_specs(layers);
             config.loss = loss_from_name(loss);
             config.optim = optim_spec(optim);
             config.seed = seed;
             config.sampled = sampled_spec(sampled);
             config.options = engine_options(options);
             return create_engine<T>(config);
           }),
           py::arg("input_dim"), py::arg("layers"), py::arg("loss"), py::arg("optimizer"),
           py::arg("seed"), py::arg("sampled") = py::dict(), py::arg("options") = py::dict())
      .def_property_readonly("input_dim", &E::input_dim)
      .def_property_readonly("output_dim", &E::output_dim)
      .def_property_readonly("device", &E::device, "-1 for the CPU, else the CUDA device index")
      .def_property_readonly("graph_replays", &E::graph_replays)
      .def_property_readonly("fused_runs", &E::fused_runs)
      // step and lr are training state: read and written under the exclusive lock.
      .def_property(
          "step",
          [](E& e) {
            py::gil_scoped_release release;
            std::unique_lock<RwLock> held(e.lock());
            return e.step();
          },
          [](E& e, int64_t s) {
            py::gil_scoped_release release;
            std::unique_lock<RwLock> held(e.lock());
            e.set_step(s);
          })
      .def_property(
          "lr",
          [](E& e) {
            py::gil_scoped_release release;
            std::unique_lock<RwLock> held(e.lock());
            return e.optim().lr;
          },
          [](E& e, double lr) {
            py::gil_scoped_release release;
            std::unique_lock<RwLock> held(e.lock());
            e.optim().lr = lr;
          })
      .def("param_names", [](E& e) { return e.layout().names; })
      .def("read",
           [](E& e, const py::args& kinds) {
             std::vector<std::pair<Slot, std::vector<py::array_t<T>>>> out;
             for (const auto& k : kinds) {
               const Slot s = slot_from_name(py::cast<std::string>(k));
               std::vector<py::array_t<T>> arrays;
               for (const ParamShape& sh : e.layout().shapes(s)) arrays.emplace_back(sh.dims());
               out.emplace_back(s, std::move(arrays));
             }
             std::vector<std::pair<Slot, std::vector<T*>>> dst;
             for (auto& o : out) {
               std::vector<T*> ptrs;
               for (auto& a : o.second) ptrs.push_back(a.mutable_data());
               dst.emplace_back(o.first, std::move(ptrs));
             }
             {
               py::gil_scoped_release release;
               std::shared_lock<RwLock> held(e.lock());
               for (auto& d : dst)
                 for (size_t i = 0; i < d.second.size(); ++i) e.read(d.first, i, d.second[i]);
             }
             py::list result;
             for (auto& o : out) result.append(py::cast(o.second));
             return result;
           },
           "copies of the arrays of each kind named ('params', 'grads', 'state', 'buffers'), "
           "taken at one moment: a list of lists of NumPy arrays")
      .def("write",
           [](E& e, const py::kwargs& kinds) {
             std::vector<std::pair<Slot, std::vector<py::array_t<T, py::array::c_style |
                                                                      py::array::forcecast>>>>
                 in;
             for (const auto& item : kinds) {
               const std::string kind = py::cast<std::string>(item.first);
               const Slot s = slot_from_name(kind);
               const std::vector<ParamShape> shapes = e.layout().shapes(s);
               const py::list arrays = py::cast<py::list>(item.second);
               if (py::len(arrays) != shapes.size())
                 throw ValueError(kind + ": expected " + std::to_string(shapes.size()) +
                                  " arrays, got " + std::to_string(py::len(arrays)));
               std::vector<py::array_t<T, py::array::c_style | py::array::forcecast>> converted;
               for (size_t i = 0; i < shapes.size(); ++i) {
                 auto a = py::cast<py::array_t<T, py::array::c_style | py::array::forcecast>>(
                     arrays[i]);
                 std::vector<int64_t> got;
                 for (py::ssize_t k = 0; k < a.ndim(); ++k) got.push_back(a.shape(k));
                 if (got != shapes[i].dims())
                   throw ValueError(kind + "[" + std::to_string(i) + "]: expected shape " +
                                    shape_text(shapes[i].dims()) + ", got " + shape_text(got));
                 converted.push_back(a);
               }
               in.emplace_back(s, std::move(converted));
             }
             py::gil_scoped_release release;
             std::unique_lock<RwLock> held(e.lock());
             for (auto& k : in)
               for (size_t i = 0; i < k.second.size(); ++i) e.write(k.first, i, k.second[i].data());
           },
           "replaces the arrays of each kind given (params=[...], buffers=[...], ...) as one "
           "change: other calls see all of it or none")
      .def("begin_epoch", &E::begin_epoch, py::arg("n"), py::arg("epoch"), py::arg("shuffle"),
           py::call_guard<py::gil_scoped_release>())
      .def("check_labels",
           [](E& e, const py::object& labels) {
             py::list keep;
             int64_t n = -1;
             const int64_t* l = array_arg<int64_t>(labels, e.device(), "y", {-1}, n, keep);
             if (l == nullptr) return;
             py::gil_scoped_release release;
             e.check_labels(l, n);
           },
           py::arg("labels"), "ValueError naming the first class label out of range")
      .def("train_batches",
           [](E& e, const py::object& X, const py::object& labels, const py::object& targets,
              int64_t batch_size, int64_t first, int64_t last, int64_t accumulate_steps,
              double clipnorm, const py::object& sample_weight) {
             py::list keep;
             const Data<T> d = data_arg(e, X, labels, targets, sample_weight, keep);
             BatchStats s;
             {
               py::gil_scoped_release release;
               s = e.train_batches(d, batch_size, first, last, accumulate_steps, clipnorm);
             }
             return stats_dict(s, e.nonfinite());
           },
           py::arg("X"), py::arg("labels"), py::arg("targets"), py::arg("batch_size"),
           py::arg("first"), py::arg("last"), py::arg("accumulate_steps"), py::arg("clipnorm"),
           py::arg("sample_weight") = py::none())
      .def("evaluate",
           [](E& e, const py::object& X, const py::object& labels, const py::object& targets,
              int64_t batch_size, const py::object& sample_weight) {
             py::list keep;
             const Data<T> d = data_arg(e, X, labels, targets, sample_weight, keep);
             const BatchStats s = run_interruptible(
                 [&](const StopCheck& stop) { return e.evaluate(d, batch_size, stop); });
             return stats_dict(s, false);
           },
           py::arg("X"), py::arg("labels"), py::arg("targets"), py::arg("batch_size"),
           py::arg("sample_weight") = py::none())
      .def("predict",
           [](E& e, const py::object& X, const py::object& out, int64_t batch_size) {
             py::list keep;
             int64_t n = -1;
             const T* xp = array_arg<T>(X, e.device(), "X", {-1, e.input_dim()}, n, keep);
             T* op = array_arg<T>(out, e.device(), "out", {-1, e.output_dim()}, n, keep);
             FASTNN_CHECK(op != nullptr || n == 0, "out: required");
             // Host input is scanned here, on its way through (no extra NumPy pass), and so is
             // the output; the GPU engine's arrays are the caller's to check.
             const bool host = e.device() < 0;
             int state = 0;  // 0: all finite, 1: non-finite input, 2: non-finite output
             run_interruptible([&](const StopCheck& stop) {
               if (host && !all_finite(xp, n * e.input_dim())) {
                 state = 1;
                 return;
               }
               e.predict(xp, n, batch_size, op, stop);
               if (host && !all_finite(op, n * e.output_dim())) state = 2;
             });
             if (state == 1) throw ValueError("X: contains NaN or infinity");
             return host ? py::object(py::bool_(state == 0)) : py::object(py::none());
           },
           py::arg("X"), py::arg("out"), py::arg("batch_size"),
           "writes the outputs after the loss's link into out (n, outputs); host engines return "
           "whether every output is finite, GPU engines None")
      .def("set_grad_hook",
           [](E& e, const py::object& fn, int64_t micro_offset) {
             std::shared_ptr<GradHook<T>> hook;
             if (!fn.is_none()) hook = std::make_shared<PyGradHook<T>>(fn, micro_offset);
             bool done;
             {
               py::gil_scoped_release release;
               std::unique_lock<RwLock> held(e.lock());
               done = e.set_grad_hook(hook);
             }
             if (!done) {
               PyErr_SetString(PyExc_NotImplementedError,
                               "distributed training: this engine (the GPU's) has no gradient "
                               "hook; train with device='cpu'");
               throw py::error_already_set();
             }
           },
           py::arg("fn"), py::arg("micro_offset") = 0,
           "fn(grads, micro) is called before every update with the gradients as NumPy views "
           "(each the sum of micro batch means), to rewrite in place; None removes it. "
           "micro_offset shifts the batch numbers that key the dropout masks")
      .def("take_diagnostics", [](E& e) {
        std::vector<LayerDiagnostics> d;
        {
          py::gil_scoped_release release;
          d = e.take_diagnostics();
        }
        return diagnostics_list(d);
      });
}

}  // namespace

void bind_engine(py::module_& m) {
  bind_network<float>(m, "Network32");
  bind_network<double>(m, "Network64");
}
