// fastnn._cuda.CudaNetwork: the GPU training engine (engine/network_cuda.h) for
// fastnn/_model_device.py. Data arrive as device addresses (ints, 0 = absent) of contiguous
// arrays that the Python layer owns and keeps alive for the call (fastnn.Tensor storages);
// parameters, gradients, optimizer state and buffers are read and written as host NumPy copies.
// The work runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "bindings/engine_specs.h"
#include "core/error.h"
#include "engine/network_cuda.h"

namespace py = pybind11;
using namespace fastnn;
using namespace fastnn::engine;

namespace {

Data<float> data_arg(uintptr_t X, uintptr_t labels, uintptr_t targets, int64_t n,
                     uintptr_t sample_weight) {
  FASTNN_CHECK(n >= 0, "n: expected n >= 0");
  Data<float> d;
  d.X = reinterpret_cast<const float*>(X);
  d.n = n;
  d.labels = reinterpret_cast<const int64_t*>(labels);
  d.targets = reinterpret_cast<const float*>(targets);
  d.sample_weight = reinterpret_cast<const float*>(sample_weight);
  return d;
}

// (pointer, shape) of every array of a kind, in the CPU binding's order and shapes.
struct Slot {
  float* ptr;
  ParamShape shape;
};

std::vector<Slot> slots(CudaNetwork& n, const std::string& kind) {
  std::vector<Slot> out;
  const auto& info = n.param_info();
  if (kind == "params" || kind == "grads") {
    for (size_t i = 0; i < info.size(); ++i)
      out.push_back({kind == "params" ? n.param(i) : n.grad(i), info[i].shape});
  } else if (kind == "state") {
    for (size_t i = 0; i < info.size(); ++i)
      for (int k = 0; k < info[i].states; ++k)
        out.push_back({n.state(i, k), info[i].shape});
  } else if (kind == "buffers") {
    for (auto& b : n.buffers()) out.push_back({b.first, ParamShape::vec(b.second)});
  } else {
    throw ValueError("kind: expected params, grads, state or buffers, got '" + kind + "'");
  }
  return out;
}

}  // namespace

void bind_cuda_engine(py::module_& m) {
  using Net = CudaNetwork;
  py::class_<Net> c(m, "CudaNetwork");
  def_engine_properties<Net>(c);
  c.def(py::init([](int64_t input_dim, const py::list& layers, const std::string& loss,
                       const py::dict& optim, uint64_t seed, int device,
                       const std::string& precision, bool fused_mlp, bool graphs) {
             const std::vector<LayerSpec> specs = layer_specs(layers);
             CudaOptions o;
             o.device = device;
             o.precision = cuda::precision_from_name(precision);
             o.fused_mlp = fused_mlp;
             o.graphs = graphs;
             return new Net(input_dim, specs, loss_from_name(loss), optim_spec(optim), seed, o);
           }),
           py::arg("input_dim"), py::arg("layers"), py::arg("loss"), py::arg("optimizer"),
           py::arg("seed"), py::arg("device") = 0, py::arg("precision") = "fp32",
           py::arg("fused_mlp") = true, py::arg("graphs") = true)
      .def_property_readonly("device", &Net::device)
      .def_property_readonly("graph_replays", &Net::graph_replays)
      .def_property_readonly("fused_runs", &Net::fused_runs)
      .def("param_names", [](Net& n) { return names_list(n.param_info()); })
      .def("read",
           [](Net& n, const std::string& kind) {
             py::list out;
             for (const Slot& s : slots(n, kind)) {
               py::array_t<float> a(s.shape.dims());
               float* dst = a.mutable_data();
               {
                 py::gil_scoped_release release;
                 n.download(s.ptr, dst, s.shape.size());
               }
               out.append(a);
             }
             return out;
           },
           py::arg("kind"), "host copies of 'params', 'grads', 'state' or 'buffers'")
      .def("write",
           [](Net& n, const std::string& kind, const py::list& arrays) {
             const std::vector<Slot> ss = slots(n, kind);
             if (py::len(arrays) != ss.size())
               throw ValueError(kind + ": expected " + std::to_string(ss.size()) + " arrays");
             for (size_t i = 0; i < ss.size(); ++i) {
               auto a = py::cast<py::array_t<float, py::array::c_style | py::array::forcecast>>(
                   arrays[i]);
               if (a.size() != ss[i].shape.size())
                 throw ValueError(kind + "[" + std::to_string(i) + "]: expected " +
                                  std::to_string(ss[i].shape.size()) + " elements");
               const float* src = a.data();
               py::gil_scoped_release release;
               n.upload(ss[i].ptr, src, ss[i].shape.size());
             }
           },
           py::arg("kind"), py::arg("arrays"))
      .def("upload",
           [](Net& n, uintptr_t dst, const py::array& src) {
             if (!(src.flags() & py::array::c_style))
               throw ValueError("upload: expected a C-contiguous array");
             const void* p = src.data();
             const size_t bytes = size_t(src.nbytes());
             py::gil_scoped_release release;
             n.upload_staged(reinterpret_cast<void*>(dst), p, bytes);
           },
           py::arg("dst"), py::arg("src"),
           "copies a C-contiguous NumPy array to device address dst (pinned staging)")
      .def("begin_epoch", &Net::begin_epoch, py::arg("n"), py::arg("epoch"), py::arg("shuffle"),
           py::call_guard<py::gil_scoped_release>())
      .def("check_labels",
           [](Net& n, uintptr_t labels, int64_t count) {
             py::gil_scoped_release release;
             n.check_labels(reinterpret_cast<const int64_t*>(labels), count);
           },
           py::arg("labels"), py::arg("n"))
      .def("train_batches",
           [](Net& n, uintptr_t X, uintptr_t labels, uintptr_t targets, int64_t count,
              int64_t batch_size, int64_t first, int64_t last, int64_t accumulate_steps,
              double clipnorm, uintptr_t sample_weight) {
             const Data<float> d = data_arg(X, labels, targets, count, sample_weight);
             BatchStats s;
             {
               py::gil_scoped_release release;
               s = n.train_batches(d, batch_size, first, last, accumulate_steps, clipnorm);
             }
             return stats_dict(s, n.nonfinite());
           },
           py::arg("X"), py::arg("labels"), py::arg("targets"), py::arg("n"),
           py::arg("batch_size"), py::arg("first"), py::arg("last"), py::arg("accumulate_steps"),
           py::arg("clipnorm"), py::arg("sample_weight") = 0)
      .def("evaluate",
           [](Net& n, uintptr_t X, uintptr_t labels, uintptr_t targets, int64_t count,
              int64_t batch_size, uintptr_t sample_weight) {
             const Data<float> d = data_arg(X, labels, targets, count, sample_weight);
             BatchStats s;
             {
               py::gil_scoped_release release;
               s = n.evaluate(d, batch_size);
             }
             return stats_dict(s, false);
           },
           py::arg("X"), py::arg("labels"), py::arg("targets"), py::arg("n"),
           py::arg("batch_size"), py::arg("sample_weight") = 0)
      .def("predict",
           [](Net& n, uintptr_t X, int64_t count, int64_t batch_size, uintptr_t out) {
             FASTNN_CHECK(count >= 0, "n: expected n >= 0");
             py::gil_scoped_release release;
             n.predict(reinterpret_cast<const float*>(X), count, batch_size,
                       reinterpret_cast<float*>(out));
           },
           py::arg("X"), py::arg("n"), py::arg("batch_size"), py::arg("out"))
      .def("take_diagnostics", [](Net& n) { return diagnostics_list(n.take_diagnostics()); });
}
