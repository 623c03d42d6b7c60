// Batch norm, initializer and reduction bindings: argument conversion and GIL release only.
// fastnn/_norm.py, _init.py and _reduce.py validate with user-facing messages and hand over
// C-contiguous arrays of one dtype; the checks here only make sure that no call from Python can
// read or write out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "cpu/batchnorm.h"
#include "cpu/init.h"
#include "cpu/reduce.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

template <class T>
void require(const py::array& a, const char* name) {
  const py::dtype dt = py::dtype::of<T>();
  if (!a.dtype().equal(dt))
    throw TypeError(std::string(name) + ": expected dtype " + std::string(py::str(dt)) +
                    ", got " + std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw ValueError(std::string(name) + ": expected a C-contiguous array");
}

// (N, F) of dtype T.
template <class T>
void require_matrix(const py::array& a, const char* name) {
  require<T>(a, name);
  if (a.ndim() != 2) throw ValueError(std::string(name) + ": expected a 2-D array");
}

// A (F,) vector of dtype T, or null for None. Writable when asked.
template <class T>
T* vector_or_null(const py::object& o, const char* name, int64_t F, bool writable) {
  if (o.is_none()) return nullptr;
  if (!py::isinstance<py::array>(o)) throw TypeError(std::string(name) + ": expected an array");
  py::array a = py::reinterpret_borrow<py::array>(o);
  require<T>(a, name);
  if (a.ndim() != 1 || a.shape(0) != F)
    throw ValueError(std::string(name) + ": expected shape (" + std::to_string(F) + ",)");
  if (writable && !a.writeable()) throw ValueError(std::string(name) + ": array is read-only");
  return static_cast<T*>(const_cast<void*>(a.data()));
}

bool is_double(const py::array& a, const char* name) {
  if (a.dtype().equal(py::dtype::of<double>())) return true;
  if (a.dtype().equal(py::dtype::of<float>())) return false;
  throw TypeError(std::string(name) + ": expected float32 or float64, got " +
                  std::string(py::str(a.dtype())));
}

// ------------------------------------------------------------------ batch norm
template <class T>
py::tuple bn_train(const py::array& x, const py::object& gamma, const py::object& beta,
                   const py::object& running_mean, const py::object& running_var,
                   double momentum, double eps) {
  require_matrix<T>(x, "x");
  cpu::BatchNormArgs<T> a;
  a.N = x.shape(0);
  a.F = x.shape(1);
  a.x = static_cast<const T*>(x.data());
  a.gamma = vector_or_null<T>(gamma, "gamma", a.F, false);
  a.beta = vector_or_null<T>(beta, "beta", a.F, false);
  a.running_mean = vector_or_null<T>(running_mean, "running_mean", a.F, true);
  a.running_var = vector_or_null<T>(running_var, "running_var", a.F, true);
  a.momentum = momentum;
  a.eps = eps;
  py::array_t<T> y({a.N, a.F}), save_mean(a.F), save_invstd(a.F);
  a.y = y.mutable_data();
  a.save_mean = save_mean.mutable_data();
  a.save_invstd = save_invstd.mutable_data();
  {
    py::gil_scoped_release release;
    cpu::batch_norm_forward_train(a);
  }
  return py::make_tuple(y, save_mean, save_invstd);
}

template <class T>
py::array bn_infer(const py::array& x, const py::object& gamma, const py::object& beta,
                   const py::object& running_mean, const py::object& running_var, double eps) {
  require_matrix<T>(x, "x");
  cpu::BatchNormArgs<T> a;
  a.N = x.shape(0);
  a.F = x.shape(1);
  a.x = static_cast<const T*>(x.data());
  a.gamma = vector_or_null<T>(gamma, "gamma", a.F, false);
  a.beta = vector_or_null<T>(beta, "beta", a.F, false);
  a.running_mean = vector_or_null<T>(running_mean, "running_mean", a.F, false);
  a.running_var = vector_or_null<T>(running_var, "running_var", a.F, false);
  a.eps = eps;
  py::array_t<T> y({a.N, a.F});
  a.y = y.mutable_data();
  {
    py::gil_scoped_release release;
    cpu::batch_norm_forward_infer(a);
  }
  return y;
}

template <class T>
py::tuple bn_backward(const py::array& dy, const py::array& x, const py::object& gamma,
                      const py::object& save_mean, const py::object& save_invstd) {
  require_matrix<T>(dy, "dy");
  require_matrix<T>(x, "x");
  const int64_t N = x.shape(0), F = x.shape(1);
  if (dy.shape(0) != N || dy.shape(1) != F) throw ValueError("dy: expected the shape of x");
  const T* g = vector_or_null<T>(gamma, "gamma", F, false);
  const T* sm = vector_or_null<T>(save_mean, "save_mean", F, false);
  const T* si = vector_or_null<T>(save_invstd, "save_invstd", F, false);
  if (!sm || !si) throw ValueError("save_mean, save_invstd: required");
  py::array_t<T> dx({N, F}), dgamma(F), dbeta(F);
  const T* dyp = static_cast<const T*>(dy.data());
  const T* xp = static_cast<const T*>(x.data());
  T *dxp = dx.mutable_data(), *dgp = dgamma.mutable_data(), *dbp = dbeta.mutable_data();
  {
    py::gil_scoped_release release;
    cpu::batch_norm_backward(dyp, xp, N, F, g, sm, si, dxp, dgp, dbp);
  }
  return py::make_tuple(dx, dgamma, dbeta);
}

// ------------------------------------------------------------------ initializers
template <class T>
void init_into(cpu::Init kind, py::array& out, int64_t fan_in, int64_t fan_out, uint64_t seed,
               double gain) {
  require<T>(out, "out");
  if (!out.writeable()) throw ValueError("out: array is read-only");
  if (cpu::init_needs_fans(kind) && out.size() != fan_in * fan_out)
    throw ValueError("out: expected fan_in * fan_out elements");
  T* w = static_cast<T*>(out.mutable_data());
  const int64_t n = out.size();
  py::gil_scoped_release release;
  cpu::init_weights(kind, w, n, fan_in, fan_out, seed, gain);
}

void init_weights(const std::string& kind, py::array& out, int64_t fan_in, int64_t fan_out,
                  uint64_t seed, double gain) {
  const cpu::Init k = cpu::init_from_name(kind);
  if (is_double(out, "out"))
    init_into<double>(k, out, fan_in, fan_out, seed, gain);
  else
    init_into<float>(k, out, fan_in, fan_out, seed, gain);
}

// ------------------------------------------------------------------ reductions
template <class T, void (*Kernel)(const T*, int64_t, int64_t, T*)>
py::array column_reduce(const py::array& x) {
  require_matrix<T>(x, "x");
  const int64_t N = x.shape(0), F = x.shape(1);
  py::array_t<T> out(F);
  const T* xp = static_cast<const T*>(x.data());
  T* op = out.mutable_data();
  {
    py::gil_scoped_release release;
    Kernel(xp, N, F, op);
  }
  return out;
}

template <class T>
py::array argmax(const py::array& x) {
  require_matrix<T>(x, "x");
  const int64_t N = x.shape(0), F = x.shape(1);
  py::array_t<int64_t> idx(N);
  const T* xp = static_cast<const T*>(x.data());
  int64_t* ip = idx.mutable_data();
  {
    py::gil_scoped_release release;
    cpu::argmax_rows(xp, N, F, ip);
  }
  return idx;
}

template <class T>
int64_t topk(const py::array& scores, const py::array& labels, int64_t k) {
  require_matrix<T>(scores, "scores");
  require<int64_t>(labels, "labels");
  const int64_t N = scores.shape(0), C = scores.shape(1);
  if (labels.ndim() != 1 || labels.shape(0) != N)
    throw ValueError("labels: expected one label per row of scores");
  const T* sp = static_cast<const T*>(scores.data());
  const int64_t* lp = static_cast<const int64_t*>(labels.data());
  py::gil_scoped_release release;
  // k == 1 is the argmax count, whose early exit on NaN makes it the cheaper scan.
  return k == 1 ? cpu::count_correct(sp, lp, N, C) : cpu::top_k_correct(sp, lp, N, C, k);
}

template <class T>
int64_t binary(const py::array& logits, const py::array& targets, double threshold) {
  require<T>(logits, "logits");
  require<T>(targets, "targets");
  if (logits.size() != targets.size()) throw ValueError("targets: expected the size of logits");
  const T* lp = static_cast<const T*>(logits.data());
  const T* tp = static_cast<const T*>(targets.data());
  const int64_t n = logits.size();
  py::gil_scoped_release release;
  return cpu::binary_correct(lp, tp, n, threshold);
}

}  // namespace

void bind_norm_init(py::module_& m) {
  m.def("batch_norm_train",
        [](const py::array& x, const py::object& g, const py::object& b, const py::object& rm,
           const py::object& rv, double momentum, double eps) {
          return is_double(x, "x") ? bn_train<double>(x, g, b, rm, rv, momentum, eps)
                                   : bn_train<float>(x, g, b, rm, rv, momentum, eps);
        },
        py::arg("x").noconvert(), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("momentum"), py::arg("eps"),
        "(y, save_mean, save_invstd); running stats (or None) updated in place");
  m.def("batch_norm_infer",
        [](const py::array& x, const py::object& g, const py::object& b, const py::object& rm,
           const py::object& rv, double eps) {
          return is_double(x, "x") ? bn_infer<double>(x, g, b, rm, rv, eps)
                                   : bn_infer<float>(x, g, b, rm, rv, eps);
        },
        py::arg("x").noconvert(), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("eps"));
  m.def("batch_norm_backward",
        [](const py::array& dy, const py::array& x, const py::object& g, const py::object& sm,
           const py::object& si) {
          return is_double(x, "x") ? bn_backward<double>(dy, x, g, sm, si)
                                   : bn_backward<float>(dy, x, g, sm, si);
        },
        py::arg("dy").noconvert(), py::arg("x").noconvert(), py::arg("gamma"),
        py::arg("save_mean"), py::arg("save_invstd"), "(dx, dgamma, dbeta)");

  m.def("init_weights", &init_weights, py::arg("kind"), py::arg("out").noconvert(),
        py::arg("fan_in"), py::arg("fan_out"), py::arg("seed"), py::arg("gain"),
        "fill out in place; gain < 0 = the kind's default");

  m.def("sum_rows",
        [](const py::array& x) {
          return is_double(x, "x") ? column_reduce<double, cpu::sum_rows<double>>(x)
                                   : column_reduce<float, cpu::sum_rows<float>>(x);
        },
        py::arg("x").noconvert());
  m.def("mean_rows",
        [](const py::array& x) {
          return is_double(x, "x") ? column_reduce<double, cpu::mean_rows<double>>(x)
                                   : column_reduce<float, cpu::mean_rows<float>>(x);
        },
        py::arg("x").noconvert());
  m.def("argmax_rows",
        [](const py::array& x) { return is_double(x, "x") ? argmax<double>(x) : argmax<float>(x); },
        py::arg("x").noconvert());
  m.def("top_k_correct",
        [](const py::array& s, const py::array& l, int64_t k) {
          return is_double(s, "scores") ? topk<double>(s, l, k) : topk<float>(s, l, k);
        },
        py::arg("scores").noconvert(), py::arg("labels").noconvert(), py::arg("k"));
  m.def("binary_correct",
        [](const py::array& l, const py::array& t, double threshold) {
          return is_double(l, "logits") ? binary<double>(l, t, threshold)
                                        : binary<float>(l, t, threshold);
        },
        py::arg("logits").noconvert(), py::arg("targets").noconvert(), py::arg("threshold"));
}
