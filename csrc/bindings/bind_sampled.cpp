// Sampled softmax bindings (_C and _cuda; bindings/convert.h): convert, check bounds, forward.
// fastnn's Python layer validates with user-facing messages and hands over C-contiguous arrays;
// the checks here only make sure that no call from Python can read or write out of bounds.
// Both backends draw the sample on the host with the same sampler (same seed, same candidates);
// the GPU copies the labels to the host for it.
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>
#include <vector>

#include "bindings/convert.h"
#include "core/ops/sampled.h"
#ifdef FASTNN_BACKEND_CUDA
#include "cuda/sampled_softmax.h"
#else
#include "cpu/sampled_softmax.h"
#endif

namespace fastnn::bind {
namespace {

fastnn::Sampler sampler_from_name(const std::string& name) {
  if (name == "log_uniform") return fastnn::Sampler::LogUniform;
  if (name == "uniform") return fastnn::Sampler::Uniform;
  throw ValueError("sampler: expected 'log_uniform' or 'uniform', got '" + name + "'");
}

// Thrown out of a sample when Ctrl-C (or another signal handler) raised: the Python error is
// already set on this thread and surfaces once the GIL is held again.
struct Interrupted {};

// The sampler's poll: takes the GIL for a moment to run pending signal handlers.
void check_signals() {
  py::gil_scoped_acquire gil;
  if (PyErr_CheckSignals() != 0) throw Interrupted{};
}

template <class V>
py::array_t<V> host_array(const std::vector<V>& v) {
  py::array_t<V> out(py::ssize_t(v.size()));
  if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(V));
  return out;
}

// The sample alone: host memory in and out, so _C only.
#ifndef FASTNN_BACKEND_CUDA
py::tuple sample_candidates(int64_t num_sampled, int64_t num_classes, uint64_t seed,
                            const std::string& sampler, bool unique,
                            int64_t max_rejection_draws) {
  const fastnn::Sampler kind = sampler_from_name(sampler);
  fastnn::CandidateSample s;
  try {
    py::gil_scoped_release release;
    s = fastnn::sampling::sample_candidates(num_sampled, num_classes, seed, kind, unique, check_signals,
                               max_rejection_draws);
  } catch (const Interrupted&) {
    throw py::error_already_set();
  }
  return py::make_tuple(host_array(s.ids), host_array(s.expected), s.tries);
}
#endif

// Every argument of one call, checked and converted.
template <class T>
struct Call {
  fastnn::SampledSoftmaxArgs<T> a;
  View h, W, labels;
  std::optional<View> b;
  Place place;
};

template <class T>
Call<T> convert(const View& h, py::handle W_obj, py::handle b_obj, py::handle labels_obj) {
  const DType dt = dtype_of<T>();
  Call<T> c;
  c.h = h;
  c.W = view(W_obj, "W");
  c.labels = view(labels_obj, "labels");
  require(c.h, dt, "h", 2);
  require(c.W, dt, "W", 2);
  require(c.labels, DType::Int64, "labels", 1);
  fastnn::SampledSoftmaxArgs<T>& a = c.a;
  a.N = c.h.shape[0], a.D = c.h.shape[1], a.C = c.W.shape[1];
  if (c.W.shape[0] != a.D) throw ValueError("W: expected h.shape[1] rows");
  if (c.labels.shape[0] != a.N) throw ValueError("labels: expected one label per row of h");
  c.b = view_or_none(b_obj, "b");
  if (c.b) {
    require(*c.b, dt, "b", 1);
    if (c.b->shape[0] != a.C) throw ValueError("b: expected one entry per column of W");
    a.b = c.b->template ptr<const T>();
  }
  a.h = c.h.template ptr<const T>();
  a.W = c.W.template ptr<const T>();
  a.labels = c.labels.template ptr<const int64_t>();
  c.place = place_of({&c.h, &c.W, &c.labels, c.b ? &*c.b : nullptr});
  return c;
}

// The gradients of a call that touches k columns: dh (N, D), dW_cols (D, k), db_cols (k,) with
// a bias (else None).
template <class T>
struct Gradients {
  Output dh, dW_cols;
  py::object db_cols = py::none();
  T* db = nullptr;
  Gradients(const Call<T>& c, int64_t k)
      : dh(new_output({c.a.N, c.a.D}, dtype_of<T>(), c.place)),
        dW_cols(new_output({c.a.D, k}, dtype_of<T>(), c.place)) {
    if (c.b) {
      Output out = new_output({k}, dtype_of<T>(), c.place);
      db = out.view.template ptr<T>();
      db_cols = out.obj;
    }
  }
};

template <class T>
py::tuple run_sampled(const View& h, py::handle W, py::handle b, py::handle labels,
                      int64_t num_sampled, uint64_t seed, const std::string& sampler,
                      bool unique, bool subtract_log_q, bool remove_accidental_hits,
                      bool correct_true_logit) {
  Call<T> c = convert<T>(h, W, b, labels);
  fastnn::SampledSoftmaxArgs<T>& a = c.a;
  a.num_sampled = num_sampled;
  a.seed = seed;
  a.sampler = sampler_from_name(sampler);
  a.unique = unique;
  a.subtract_log_q = subtract_log_q;
  a.remove_accidental_hits = remove_accidental_hits;
  a.correct_true_logit = correct_true_logit;
#ifdef FASTNN_BACKEND_CUDA
  // Phase 1 on the host: the labels come over, the plan sizes the outputs and the workspace.
  std::vector<int64_t> host_labels(size_t(a.N));
  run(c.place, [&] { download(host_labels.data(), a.labels, host_labels.size() * 8, c.place); });
  a.labels = host_labels.data();
  const cuda::SampledGpuPlan plan = run(c.place, [&] { return cuda::sampled_softmax_plan(a); });
  a.labels = nullptr;  // phase 2 reads them from the plan's tables
  const int64_t k = plan.k;
  Output cols = new_output({k}, DType::Int64, c.place);
  Gradients<T> g(c, k);
  Workspace ws(plan.workspace_bytes, c.place.device);
  const double loss = run(c.place, [&] {
    cuda::sampled_softmax_cross_entropy<T>(a, plan, g.dh.view.template ptr<T>(),
                                           g.dW_cols.view.template ptr<T>(), g.db,
                                           cols.view.ptr<int64_t>(), ws.data(), ws.bytes(),
                                           c.place.stream);
    return cuda::sampled_softmax_loss(plan, ws.data(), c.place.stream);
  });
  const py::object cols_out = cols.obj;
#else
  fastnn::SampledPlan plan;
  try {
    plan = run(c.place, [&] { return fastnn::sampling::sampled_softmax_plan(a, check_signals); });
  } catch (const Interrupted&) {
    throw py::error_already_set();
  }
  const int64_t k = int64_t(plan.cols.size());
  const py::object cols_out = host_array(plan.cols);
  Gradients<T> g(c, k);
  const double loss = run(c.place, [&] {
    return cpu::sampled_softmax_cross_entropy(a, plan, g.dh.view.template ptr<T>(),
                                              g.dW_cols.view.template ptr<T>(), g.db);
  });
#endif
  return py::make_tuple(loss, g.dh.obj, cols_out, g.dW_cols.obj, g.db_cols);
}

py::tuple sampled_softmax_cross_entropy(py::handle h, py::handle W, py::handle b,
                                        py::handle labels, int64_t num_sampled, uint64_t seed,
                                        const std::string& sampler, bool unique,
                                        bool subtract_log_q, bool remove_accidental_hits,
                                        bool correct_true_logit) {
  const View H = view(h, "h");
  if (is_double(H, "h"))
    return run_sampled<double>(H, W, b, labels, num_sampled, seed, sampler, unique,
                               subtract_log_q, remove_accidental_hits, correct_true_logit);
  return run_sampled<float>(H, W, b, labels, num_sampled, seed, sampler, unique, subtract_log_q,
                            remove_accidental_hits, correct_true_logit);
}

template <class T>
void run_scatter(const View& dW, py::handle cols_obj, py::handle dW_cols_obj,
                 py::handle db_cols_obj, py::handle db_obj) {
  const DType dt = dtype_of<T>();
  const View cols = view(cols_obj, "cols"), dWc = view(dW_cols_obj, "dW_cols");
  require(cols, DType::Int64, "cols", 1);
  require(dWc, dt, "dW_cols", 2);
  require(dW, dt, "dW", 2);
  const int64_t k = cols.shape[0], D = dW.shape[0], C = dW.shape[1];
  if (dWc.shape[0] != D || dWc.shape[1] != k)
    throw ValueError("dW_cols: expected shape (dW.shape[0], len(cols))");
  std::optional<View> dbc, db;
  if (!db_obj.is_none() && !db_cols_obj.is_none()) {
    dbc = view(db_cols_obj, "db_cols");
    db = view(db_obj, "db", true);
    require(*dbc, dt, "db_cols", 1);
    require(*db, dt, "db", 1);
    if (dbc->shape[0] != k || db->shape[0] != C)
      throw ValueError("db: expected db_cols of shape (len(cols),) and db of shape (dW.shape[1],)");
  }
  const Place p = place_of({&cols, &dWc, &dW, dbc ? &*dbc : nullptr, db ? &*db : nullptr});
  // The kernel writes where cols points: every index is checked first (on the host).
#ifdef FASTNN_BACKEND_CUDA
  std::vector<int64_t> host(static_cast<size_t>(k));
  run(p, [&] { download(host.data(), cols.data, host.size() * 8, p); });
  const int64_t* c = host.data();
#else
  const int64_t* c = cols.ptr<const int64_t>();
#endif
  for (int64_t j = 0; j < k; ++j)
    if (c[j] < 0 || c[j] >= C || (j > 0 && c[j] <= c[j - 1]))
      throw ValueError("cols: expected strictly increasing column indices in [0, dW.shape[1])");
  const T* dbcp = dbc ? dbc->ptr<const T>() : nullptr;
  T* dbp = db ? db->ptr<T>() : nullptr;
  run(p, [&] {
#ifdef FASTNN_BACKEND_CUDA
    if (k)
      cuda::scatter_add_columns<T>(cols.ptr<const int64_t>(), k, D, C, dWc.ptr<const T>(), dbcp,
                                   dW.ptr<T>(), dbp, p.stream);
#else
    cpu::scatter_add_columns(c, k, D, C, dWc.ptr<const T>(), dbcp, dW.ptr<T>(), dbp);
#endif
  });
}

void scatter_add_columns(py::handle cols, py::handle dW_cols, py::handle db_cols, py::handle dW,
                         py::handle db) {
  const View W = view(dW, "dW", true);
  if (is_double(W, "dW"))
    run_scatter<double>(W, cols, dW_cols, db_cols, db);
  else
    run_scatter<float>(W, cols, dW_cols, db_cols, db);
}

}  // namespace

void bind_sampled(py::module_& m) {
#ifndef FASTNN_BACKEND_CUDA
  m.def("sample_candidates", &sample_candidates, py::arg("num_sampled"), py::arg("num_classes"),
        py::arg("seed"), py::arg("sampler"), py::arg("unique"),
        py::arg("max_rejection_draws") = -1,
        "(ids int64 (S,), expected counts float64 (S,), number of draws); "
        "max_rejection_draws >= 0 overrides the rejection budget (for tests)");
#endif
  m.def("sampled_softmax_cross_entropy", &sampled_softmax_cross_entropy, py::arg("h"),
        py::arg("W"), py::arg("b"), py::arg("labels"), py::arg("num_sampled"), py::arg("seed"),
        py::arg("sampler"), py::arg("unique"), py::arg("subtract_log_q"),
        py::arg("remove_accidental_hits"), py::arg("correct_true_logit"),
        "(mean loss, dh, cols, dW_cols, db_cols or None)");
  m.def("scatter_add_columns", &scatter_add_columns, py::arg("cols"), py::arg("dW_cols"),
        py::arg("db_cols"), py::arg("dW"), py::arg("db"),
        "dW[:, cols] += dW_cols; db[cols] += db_cols, in place");
}

}  // namespace fastnn::bind
