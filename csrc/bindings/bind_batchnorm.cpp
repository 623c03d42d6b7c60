// Batch norm bindings (_C and _cuda; bindings/convert.h): convert, check bounds, forward.
// fastnn's Python layer validates with user-facing messages and hands over C-contiguous arrays
// of one dtype; the checks here only make sure that no call from Python can read or write out of
// bounds. Outputs are new arrays of this module's kind; running statistics update in place.
#include <pybind11/pybind11.h>

#include <string>

#include "bindings/convert.h"
#include "core/ops/batchnorm.h"
#ifdef FASTNN_BACKEND_CUDA
#include "cuda/batchnorm.h"
#else
#include "cpu/batchnorm.h"
#endif

namespace fastnn::bind {
namespace {

// A (F,) vector of dtype T, or absent for None. Writable when asked.
std::optional<View> features(py::handle obj, const char* name, DType dt, int64_t F,
                                bool writable) {
  auto v = view_or_none(obj, name, writable);
  if (v) {
    require(*v, dt, name);
    if (v->ndim() != 1 || v->shape[0] != F)
      throw ValueError(std::string(name) + ": expected shape (" + std::to_string(F) + ",)");
  }
  return v;
}

template <class T>
T* data_or_null(const std::optional<View>& v) {
  return v ? v->ptr<T>() : nullptr;
}

const View* ptr_or_null(const std::optional<View>& v) { return v ? &*v : nullptr; }

// The arguments both forwards share; `running_writable` for training.
template <class T>
struct Forward {
  fastnn::BatchNormArgs<T> a;
  std::optional<View> g, b, rm, rv;
  Place place;
  Output y;

  Forward(const View& x, py::handle gamma, py::handle beta, py::handle running_mean,
          py::handle running_var, bool running_writable) {
    const DType dt = dtype_of<T>();
    require(x, dt, "x", 2);
    a.N = x.shape[0];
    a.F = x.shape[1];
    a.x = x.ptr<const T>();
    g = features(gamma, "gamma", dt, a.F, false);
    b = features(beta, "beta", dt, a.F, false);
    rm = features(running_mean, "running_mean", dt, a.F, running_writable);
    rv = features(running_var, "running_var", dt, a.F, running_writable);
    a.gamma = data_or_null<const T>(g);
    a.beta = data_or_null<const T>(b);
    a.running_mean = data_or_null<T>(rm);
    a.running_var = data_or_null<T>(rv);
    place = place_of({&x, ptr_or_null(g), ptr_or_null(b), ptr_or_null(rm), ptr_or_null(rv)});
    y = new_output(x.shape, dt, place);
    a.y = y.view.ptr<T>();
  }

  // The training or inference forward kernel on this module's backend (on the GPU with its
  // workspace; there, training runs whenever there are features, inference only with data).
  void run_kernel(bool training) {
#ifdef FASTNN_BACKEND_CUDA
    if (training ? a.F == 0 : a.N * a.F == 0) return;
    run_with_workspace(place, cuda::batch_norm_workspace_bytes(a.N, a.F),
                       [&](void* ws, int64_t bytes) {
                         if (training)
                           cuda::batch_norm_forward_train<T>(a, ws, bytes, place.stream);
                         else
                           cuda::batch_norm_forward_infer<T>(a, ws, bytes, place.stream);
                       });
#else
    run(place, [&] {
      if (training)
        cpu::batch_norm_forward_train(a);
      else
        cpu::batch_norm_forward_infer(a);
    });
#endif
  }
};

template <class T>
py::tuple train(const View& x, py::handle gamma, py::handle beta, py::handle running_mean,
                py::handle running_var, double momentum, double eps) {
  Forward<T> f(x, gamma, beta, running_mean, running_var, true);
  f.a.momentum = momentum;
  f.a.eps = eps;
  Output save_mean = new_output({f.a.F}, dtype_of<T>(), f.place);
  Output save_invstd = new_output({f.a.F}, dtype_of<T>(), f.place);
  f.a.save_mean = save_mean.view.ptr<T>();
  f.a.save_invstd = save_invstd.view.ptr<T>();
  f.run_kernel(true);
  return py::make_tuple(f.y.obj, save_mean.obj, save_invstd.obj);
}

template <class T>
py::object infer(const View& x, py::handle gamma, py::handle beta, py::handle running_mean,
                 py::handle running_var, double eps) {
  Forward<T> f(x, gamma, beta, running_mean, running_var, false);
  f.a.eps = eps;
#ifdef FASTNN_BACKEND_CUDA
  if (!f.rm || !f.rv) throw ValueError("running_mean, running_var: required");
#endif
  f.run_kernel(false);
  return f.y.obj;
}

template <class T>
py::tuple backward(const View& x, py::handle dy_obj, py::handle gamma, py::handle save_mean,
                   py::handle save_invstd) {
  const DType dt = dtype_of<T>();
  const View dy = view(dy_obj, "dy");
  require(dy, dt, "dy", 2);
  require(x, dt, "x", 2);
  const int64_t N = x.shape[0], F = x.shape[1];
  if (dy.shape != x.shape) throw ValueError("dy: expected the shape of x");
  const auto g = features(gamma, "gamma", dt, F, false);
  const auto sm = features(save_mean, "save_mean", dt, F, false);
  const auto si = features(save_invstd, "save_invstd", dt, F, false);
  if (!sm || !si) throw ValueError("save_mean, save_invstd: required");
  const Place p = place_of({&x, &dy, ptr_or_null(g), &*sm, &*si});
  Output dx = new_output({N, F}, dt, p), dgamma = new_output({F}, dt, p),
         dbeta = new_output({F}, dt, p);
  const T* gp = data_or_null<const T>(g);
  const T* smp = sm->ptr<const T>();
  const T* sip = si->ptr<const T>();
  T *dxp = dx.view.ptr<T>(), *dgp = dgamma.view.ptr<T>(), *dbp = dbeta.view.ptr<T>();
#ifdef FASTNN_BACKEND_CUDA
  if (F)
    run_with_workspace(p, cuda::batch_norm_workspace_bytes(N, F), [&](void* ws, int64_t bytes) {
      cuda::batch_norm_backward<T>(dy.ptr<const T>(), x.ptr<const T>(), N, F, gp, smp, sip, dxp,
                                   dgp, dbp, ws, bytes, p.stream);
    });
#else
  run(p, [&] {
    cpu::batch_norm_backward(dy.ptr<const T>(), x.ptr<const T>(), N, F, gp, smp, sip, dxp, dgp,
                             dbp);
  });
#endif
  return py::make_tuple(dx.obj, dgamma.obj, dbeta.obj);
}

}  // namespace

void bind_batchnorm(py::module_& m) {
  m.def("batch_norm_train",
        [](py::handle x, py::handle g, py::handle b, py::handle rm, py::handle rv,
           double momentum, double eps) {
          const View X = view(x, "x");
          return is_double(X, "x") ? train<double>(X, g, b, rm, rv, momentum, eps)
                                   : train<float>(X, g, b, rm, rv, momentum, eps);
        },
        py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("momentum"), py::arg("eps"),
        "(y, save_mean, save_invstd); running stats (or None) updated in place");
  m.def("batch_norm_infer",
        [](py::handle x, py::handle g, py::handle b, py::handle rm, py::handle rv, double eps) {
          const View X = view(x, "x");
          return is_double(X, "x") ? infer<double>(X, g, b, rm, rv, eps)
                                   : infer<float>(X, g, b, rm, rv, eps);
        },
        py::arg("x"), py::arg("gamma"), py::arg("beta"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("eps"));
  m.def("batch_norm_backward",
        [](py::handle dy, py::handle x, py::handle g, py::handle sm, py::handle si) {
          const View X = view(x, "x");
          return is_double(X, "x") ? backward<double>(X, dy, g, sm, si)
                                   : backward<float>(X, dy, g, sm, si);
        },
        py::arg("dy"), py::arg("x"), py::arg("gamma"), py::arg("save_mean"),
        py::arg("save_invstd"), "(dx, dgamma, dbeta)");
}

}  // namespace fastnn::bind
