// fastnn._cuda entry points of the sampled softmax (cuda/sampled_softmax.h). Two phases, as the
// kernel contract has them: sampled_softmax_plan takes the labels as a HOST NumPy array (the
// Python layer downloads them: N int64) and returns an opaque plan that knows the number of
// touched columns and the workspace size, so that Python can allocate the outputs and the
// workspace from its caching allocator; sampled_softmax_cross_entropy then runs the kernels on
// device addresses (Python ints) and returns the loss (it waits for the stream). Argument
// conversion and GIL release only; fastnn/_gpu_ops.py validates with the user-facing messages.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "core/error.h"
#include "cuda/sampled_softmax.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

struct Plan {
  cuda::SampledGpuPlan plan;
  bool f64 = false;
};

bool is_f64(const std::string& dtype) {
  if (dtype == "float32") return false;
  if (dtype == "float64") return true;
  throw TypeError("dtype: expected 'float32' or 'float64', got '" + dtype + "'");
}

cpu::Sampler sampler_from_name(const std::string& name) {
  if (name == "log_uniform") return cpu::Sampler::LogUniform;
  if (name == "uniform") return cpu::Sampler::Uniform;
  throw ValueError("sampler: expected 'log_uniform' or 'uniform', got '" + name + "'");
}

template <class T>
cpu::SampledSoftmaxArgs<T> args_of(int64_t N, int64_t D, int64_t C, bool has_bias,
                                   bool remove_accidental_hits) {
  static const T kNoData = T(0);  // stands for "there is a bias" where no pointer is read
  cpu::SampledSoftmaxArgs<T> a;
  a.N = N, a.D = D, a.C = C;
  a.b = has_bias ? &kNoData : nullptr;
  a.remove_accidental_hits = remove_accidental_hits;
  return a;
}

template <class T>
cuda::SampledGpuPlan make_plan(const int64_t* labels, int64_t N, int64_t D, int64_t C,
                               int64_t num_sampled, uint64_t seed, cpu::Sampler sampler,
                               bool unique, bool subtract_log_q, bool remove_accidental_hits,
                               bool correct_true_logit, bool has_bias) {
  cpu::SampledSoftmaxArgs<T> a = args_of<T>(N, D, C, has_bias, remove_accidental_hits);
  a.labels = labels;
  a.num_sampled = num_sampled;
  a.seed = seed;
  a.sampler = sampler;
  a.unique = unique;
  a.subtract_log_q = subtract_log_q;
  a.correct_true_logit = correct_true_logit;
  return cuda::sampled_softmax_plan(a);
}

Plan plan(const py::array& labels, int64_t D, int64_t C, int64_t num_sampled, uint64_t seed,
          const std::string& sampler, bool unique, bool subtract_log_q,
          bool remove_accidental_hits, bool correct_true_logit, bool has_bias,
          const std::string& dtype) {
  if (!labels.dtype().equal(py::dtype::of<int64_t>()) || labels.ndim() != 1 ||
      !(labels.flags() & py::array::c_style))
    throw TypeError("labels: expected a 1-D C-contiguous int64 NumPy array (on the host)");
  const cpu::Sampler kind = sampler_from_name(sampler);
  Plan p;
  p.f64 = is_f64(dtype);
  const int64_t* y = static_cast<const int64_t*>(labels.data());
  const int64_t N = labels.shape(0);
  py::gil_scoped_release release;
  p.plan = p.f64 ? make_plan<double>(y, N, D, C, num_sampled, seed, kind, unique, subtract_log_q,
                                     remove_accidental_hits, correct_true_logit, has_bias)
                 : make_plan<float>(y, N, D, C, num_sampled, seed, kind, unique, subtract_log_q,
                                    remove_accidental_hits, correct_true_logit, has_bias);
  return p;
}

template <class T>
T* ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }

template <class T>
double run(const Plan& p, uintptr_t h, uintptr_t W, uintptr_t b, uintptr_t dh, uintptr_t dW_cols,
           uintptr_t db_cols, uintptr_t cols, uintptr_t ws, size_t ws_bytes, uintptr_t stream) {
  const cuda::SampledGpuPlan& q = p.plan;
  if (q.has_bias != (b != 0)) throw ValueError("b: the plan was made " +
                                               std::string(q.has_bias ? "with" : "without") +
                                               " a bias");
  cpu::SampledSoftmaxArgs<T> a = args_of<T>(q.N, q.D, q.C, false, q.remove_accidental_hits);
  a.h = ptr<const T>(h);
  a.W = ptr<const T>(W);
  a.b = ptr<const T>(b);
  void* s = reinterpret_cast<void*>(stream);
  cuda::sampled_softmax_cross_entropy<T>(a, q, ptr<T>(dh), ptr<T>(dW_cols), ptr<T>(db_cols),
                                         ptr<int64_t>(cols), ptr<void>(ws), ws_bytes, s);
  return cuda::sampled_softmax_loss(q, ptr<const void>(ws), s);
}

double forward_backward(const Plan& p, uintptr_t h, uintptr_t W, uintptr_t b, uintptr_t dh,
                        uintptr_t dW_cols, uintptr_t db_cols, uintptr_t cols, uintptr_t ws,
                        size_t ws_bytes, uintptr_t stream) {
  py::gil_scoped_release release;
  return p.f64 ? run<double>(p, h, W, b, dh, dW_cols, db_cols, cols, ws, ws_bytes, stream)
               : run<float>(p, h, W, b, dh, dW_cols, db_cols, cols, ws, ws_bytes, stream);
}

void scatter_add(const std::string& dtype, uintptr_t cols, int64_t k, int64_t D, int64_t C,
                 uintptr_t dW_cols, uintptr_t db_cols, uintptr_t dW, uintptr_t db,
                 uintptr_t stream) {
  const bool f64 = is_f64(dtype);
  if (k < 0 || D < 0 || C < 0) throw ValueError("sampled_scatter_add: negative size");
  void* s = reinterpret_cast<void*>(stream);
  py::gil_scoped_release release;
  if (f64)
    cuda::scatter_add_columns<double>(ptr<const int64_t>(cols), k, D, C, ptr<const double>(dW_cols),
                                      ptr<const double>(db_cols), ptr<double>(dW), ptr<double>(db),
                                      s);
  else
    cuda::scatter_add_columns<float>(ptr<const int64_t>(cols), k, D, C, ptr<const float>(dW_cols),
                                     ptr<const float>(db_cols), ptr<float>(dW), ptr<float>(db), s);
}

template <class V>
py::array_t<V> to_numpy(const std::vector<V>& v) {
  py::array_t<V> out(py::ssize_t(v.size()));
  if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(V));
  return out;
}

}  // namespace

void bind_cuda_sampled(py::module_& m) {
  py::class_<Plan>(m, "SampledSoftmaxPlan",
                   "The host half of a sampled-softmax call: the sample, the touched columns and "
                   "the tables the kernels read (made by sampled_softmax_plan)")
      .def_property_readonly("k", [](const Plan& p) { return p.plan.k; })
      .def_property_readonly("num_sampled", [](const Plan& p) { return p.plan.S; })
      .def_property_readonly("workspace_bytes",
                             [](const Plan& p) { return p.plan.workspace_bytes; })
      .def_property_readonly("cols", [](const Plan& p) { return to_numpy(p.plan.plan.cols); })
      .def_property_readonly("ids", [](const Plan& p) { return to_numpy(p.plan.plan.sample.ids); })
      .def_property_readonly("expected",
                             [](const Plan& p) { return to_numpy(p.plan.plan.sample.expected); })
      .def_property_readonly("tries", [](const Plan& p) { return p.plan.plan.sample.tries; })
      .def_property_readonly("dtype", [](const Plan& p) { return p.f64 ? "float64" : "float32"; });
  m.def("sampled_softmax_plan", &plan, py::arg("labels").noconvert(), py::arg("D"), py::arg("C"),
        py::arg("num_sampled"), py::arg("seed"), py::arg("sampler"), py::arg("unique"),
        py::arg("subtract_log_q"), py::arg("remove_accidental_hits"),
        py::arg("correct_true_logit"), py::arg("has_bias"), py::arg("dtype"),
        "draw the sample (the CPU sampler: same seed, same candidates) and build the tables; "
        "labels is a host int64 array; ValueError for a label out of range");
  m.def("sampled_softmax_cross_entropy", &forward_backward, py::arg("plan"), py::arg("h"),
        py::arg("W"), py::arg("b"), py::arg("dh"), py::arg("dW_cols"), py::arg("db_cols"),
        py::arg("cols"), py::arg("workspace"), py::arg("workspace_bytes"), py::arg("stream") = 0,
        "loss and gradients on device addresses: h (N, D), W (D, C), b (C,) or 0 -> dh (N, D), "
        "dW_cols (D, k), db_cols (k,) (0 without b), cols (k,) int64 (or 0); returns the mean "
        "loss (waits for the stream)");
  m.def("sampled_scatter_add", &scatter_add, py::arg("dtype"), py::arg("cols"), py::arg("k"),
        py::arg("D"), py::arg("C"), py::arg("dW_cols"), py::arg("db_cols"), py::arg("dW"),
        py::arg("db"), py::arg("stream") = 0,
        "dW[:, cols] += dW_cols (D rows; D = 0 skips it), db[cols] += db_cols (0 = none), on "
        "the device, enqueued on `stream`");
}
