// Sampled softmax bindings: argument conversion and GIL release only. fastnn/_sampled.py
// validates with user-facing messages and hands over C-contiguous arrays; the checks here only
// make sure that no call from Python can read or write out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>

#include "core/error.h"
#include "cpu/sampled_softmax.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

void require(const py::array& a, const py::dtype& dt, const char* name, py::ssize_t ndim) {
  if (!a.dtype().equal(dt))
    throw TypeError(std::string(name) + ": expected dtype " + std::string(py::str(dt)) +
                    ", got " + std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw ValueError(std::string(name) + ": expected a C-contiguous array");
  if (a.ndim() != ndim)
    throw ValueError(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array");
}

cpu::Sampler sampler_from_name(const std::string& name) {
  if (name == "log_uniform") return cpu::Sampler::LogUniform;
  if (name == "uniform") return cpu::Sampler::Uniform;
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

py::tuple sample_candidates(int64_t num_sampled, int64_t num_classes, uint64_t seed,
                            const std::string& sampler, bool unique,
                            int64_t max_rejection_draws) {
  const cpu::Sampler kind = sampler_from_name(sampler);
  cpu::CandidateSample s;
  try {
    py::gil_scoped_release release;
    s = cpu::sample_candidates(num_sampled, num_classes, seed, kind, unique, check_signals,
                               max_rejection_draws);
  } catch (const Interrupted&) {
    throw py::error_already_set();
  }
  py::array_t<int64_t> ids(py::ssize_t(s.ids.size()));
  py::array_t<double> expected(py::ssize_t(s.expected.size()));
  std::memcpy(ids.mutable_data(), s.ids.data(), s.ids.size() * sizeof(int64_t));
  std::memcpy(expected.mutable_data(), s.expected.data(), s.expected.size() * sizeof(double));
  return py::make_tuple(ids, expected, s.tries);
}

template <class T>
py::tuple run_sampled(const py::array& h, const py::array& W, const py::object& b,
                      const py::array& labels, int64_t num_sampled, uint64_t seed,
                      const std::string& sampler, bool unique, bool subtract_log_q,
                      bool remove_accidental_hits, bool correct_true_logit) {
  const py::dtype dt = py::dtype::of<T>();
  require(h, dt, "h", 2);
  require(W, dt, "W", 2);
  require(labels, py::dtype::of<int64_t>(), "labels", 1);
  cpu::SampledSoftmaxArgs<T> a;
  a.N = h.shape(0), a.D = h.shape(1), a.C = W.shape(1);
  if (W.shape(0) != a.D) throw ValueError("W: expected h.shape[1] rows");
  if (labels.shape(0) != a.N) throw ValueError("labels: expected one label per row of h");
  py::array barr;
  if (!b.is_none()) {
    barr = py::reinterpret_borrow<py::array>(b);
    require(barr, dt, "b", 1);
    if (barr.shape(0) != a.C) throw ValueError("b: expected one entry per column of W");
    a.b = static_cast<const T*>(barr.data());
  }
  a.h = static_cast<const T*>(h.data());
  a.W = static_cast<const T*>(W.data());
  a.labels = static_cast<const int64_t*>(labels.data());
  a.num_sampled = num_sampled;
  a.seed = seed;
  a.sampler = sampler_from_name(sampler);
  a.unique = unique;
  a.subtract_log_q = subtract_log_q;
  a.remove_accidental_hits = remove_accidental_hits;
  a.correct_true_logit = correct_true_logit;

  cpu::SampledPlan plan;
  try {
    py::gil_scoped_release release;
    plan = cpu::sampled_softmax_plan(a, check_signals);
  } catch (const Interrupted&) {
    throw py::error_already_set();
  }
  const py::ssize_t k = py::ssize_t(plan.cols.size());
  py::array_t<int64_t> cols(k);
  std::memcpy(cols.mutable_data(), plan.cols.data(), plan.cols.size() * sizeof(int64_t));
  py::array_t<T> dh({py::ssize_t(a.N), py::ssize_t(a.D)});
  py::array_t<T> dW_cols({py::ssize_t(a.D), k});
  py::object db_out = py::none();
  T* db_ptr = nullptr;
  if (a.b) {
    py::array_t<T> db_cols(k);
    db_ptr = db_cols.mutable_data();
    db_out = db_cols;
  }
  T* dh_ptr = dh.mutable_data();
  T* dW_ptr = dW_cols.mutable_data();
  double loss;
  {
    py::gil_scoped_release release;
    loss = cpu::sampled_softmax_cross_entropy(a, plan, dh_ptr, dW_ptr, db_ptr);
  }
  return py::make_tuple(loss, dh, cols, dW_cols, db_out);
}

py::tuple sampled_softmax_cross_entropy(const py::array& h, const py::array& W,
                                        const py::object& b, const py::array& labels,
                                        int64_t num_sampled, uint64_t seed,
                                        const std::string& sampler, bool unique,
                                        bool subtract_log_q, bool remove_accidental_hits,
                                        bool correct_true_logit) {
  if (!b.is_none() && !py::isinstance<py::array>(b))
    throw TypeError("b: expected a NumPy array or None");
  if (h.dtype().equal(py::dtype::of<float>()))
    return run_sampled<float>(h, W, b, labels, num_sampled, seed, sampler, unique,
                              subtract_log_q, remove_accidental_hits, correct_true_logit);
  if (h.dtype().equal(py::dtype::of<double>()))
    return run_sampled<double>(h, W, b, labels, num_sampled, seed, sampler, unique,
                               subtract_log_q, remove_accidental_hits, correct_true_logit);
  throw TypeError("h: expected float32 or float64, got " + std::string(py::str(h.dtype())));
}

template <class T>
void run_scatter(const py::array& cols, const py::array& dW_cols, const py::object& db_cols,
                 py::array& dW, const py::object& db) {
  const py::dtype dt = py::dtype::of<T>();
  require(cols, py::dtype::of<int64_t>(), "cols", 1);
  require(dW_cols, dt, "dW_cols", 2);
  require(dW, dt, "dW", 2);
  if (!dW.writeable()) throw ValueError("dW: array is read-only");
  const int64_t k = cols.shape(0), D = dW.shape(0), C = dW.shape(1);
  if (dW_cols.shape(0) != D || dW_cols.shape(1) != k)
    throw ValueError("dW_cols: expected shape (dW.shape[0], len(cols))");
  const int64_t* c = static_cast<const int64_t*>(cols.data());
  for (int64_t j = 0; j < k; ++j)
    if (c[j] < 0 || c[j] >= C || (j > 0 && c[j] <= c[j - 1]))
      throw ValueError("cols: expected strictly increasing column indices in [0, dW.shape[1])");
  const T* dbc = nullptr;
  T* dbp = nullptr;
  py::array dbc_arr, db_arr;
  if (!db.is_none() && !db_cols.is_none()) {
    dbc_arr = py::reinterpret_borrow<py::array>(db_cols);
    db_arr = py::reinterpret_borrow<py::array>(db);
    require(dbc_arr, dt, "db_cols", 1);
    require(db_arr, dt, "db", 1);
    if (!db_arr.writeable()) throw ValueError("db: array is read-only");
    if (dbc_arr.shape(0) != k || db_arr.shape(0) != C)
      throw ValueError("db: expected db_cols of shape (len(cols),) and db of shape (dW.shape[1],)");
    dbc = static_cast<const T*>(dbc_arr.data());
    dbp = static_cast<T*>(db_arr.mutable_data());
  }
  const T* dWc = static_cast<const T*>(dW_cols.data());
  T* dWp = static_cast<T*>(dW.mutable_data());
  py::gil_scoped_release release;
  cpu::scatter_add_columns(c, k, D, C, dWc, dbc, dWp, dbp);
}

void scatter_add_columns(const py::array& cols, const py::array& dW_cols,
                         const py::object& db_cols, py::array& dW, const py::object& db) {
  if ((!db.is_none() && !py::isinstance<py::array>(db)) ||
      (!db_cols.is_none() && !py::isinstance<py::array>(db_cols)))
    throw TypeError("db, db_cols: expected NumPy arrays or None");
  if (dW.dtype().equal(py::dtype::of<float>()))
    return run_scatter<float>(cols, dW_cols, db_cols, dW, db);
  if (dW.dtype().equal(py::dtype::of<double>()))
    return run_scatter<double>(cols, dW_cols, db_cols, dW, db);
  throw TypeError("dW: expected float32 or float64, got " + std::string(py::str(dW.dtype())));
}

}  // namespace

void bind_sampled(py::module_& m) {
  m.def("sample_candidates", &sample_candidates, py::arg("num_sampled"), py::arg("num_classes"),
        py::arg("seed"), py::arg("sampler"), py::arg("unique"),
        py::arg("max_rejection_draws") = -1,
        "(ids int64 (S,), expected counts float64 (S,), number of draws); "
        "max_rejection_draws >= 0 overrides the rejection budget (for tests)");
  m.def("sampled_softmax_cross_entropy", &sampled_softmax_cross_entropy, py::arg("h").noconvert(),
        py::arg("W").noconvert(), py::arg("b"), py::arg("labels").noconvert(),
        py::arg("num_sampled"), py::arg("seed"), py::arg("sampler"), py::arg("unique"),
        py::arg("subtract_log_q"), py::arg("remove_accidental_hits"),
        py::arg("correct_true_logit"),
        "(mean loss, dh, cols, dW_cols, db_cols or None)");
  m.def("scatter_add_columns", &scatter_add_columns, py::arg("cols").noconvert(),
        py::arg("dW_cols").noconvert(), py::arg("db_cols"), py::arg("dW").noconvert(),
        py::arg("db"), "dW[:, cols] += dW_cols; db[cols] += db_cols, in place");
}
