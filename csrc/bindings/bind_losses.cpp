// Loss bindings (_C and _cuda; bindings/convert.h): convert, check bounds, forward. fastnn's
// Python layer validates with user-facing messages and hands over C-contiguous arrays; the checks
// here only make sure that no call from Python can read or write out of bounds. Each loss returns
// (mean loss as a float, gradient array); on the GPU the float waits for the stream.
#include <pybind11/pybind11.h>

#include <string>

#include "bindings/convert.h"
#include "core/ops/losses.h"
#ifdef FASTNN_BACKEND_CUDA
#include "cuda/losses.h"
#else
#include "cpu/losses.h"
#endif

namespace fastnn::bind {
namespace {

template <class T>
py::tuple run_xent(const View& logits, py::handle labels, py::handle weight,
                   double label_smoothing) {
  const DType dt = dtype_of<T>();
  require(logits, dt, "logits", 2);
  fastnn::SoftmaxXentArgs<T> a;
  a.N = logits.shape[0];
  a.C = logits.shape[1];
  a.logits = logits.ptr<const T>();
  const View L = view(labels, "labels");
  if (L.ndim() == 1) {
    require(L, DType::Int64, "labels");
    if (L.shape[0] != a.N) throw ValueError("labels: expected one label per row of logits");
    a.labels = L.ptr<const int64_t>();
  } else {
    require(L, dt, "labels");
    if (L.shape != logits.shape)
      throw ValueError("labels: probability labels must have the shape of logits");
    a.probs = L.ptr<const T>();
  }
  const auto W = view_or_none(weight, "class_weight");
  if (W) {
    require(*W, dt, "class_weight");
    if (W->ndim() != 1 || W->shape[0] != a.C)
      throw ValueError("class_weight: expected one weight per class");
    a.weight = W->ptr<const T>();
  }
  a.label_smoothing = label_smoothing;
  const Place p = place_of({&logits, &L, W ? &*W : nullptr});
  Output grad = new_output(logits.shape, dt, p);
  a.grad = grad.view.ptr<T>();
#ifdef FASTNN_BACKEND_CUDA
  Workspace ws(cuda::loss_workspace_bytes(), p.device);
  const double loss = run(p, [&] {
    cuda::softmax_cross_entropy(a, ws.data(), p.stream);
    return cuda::loss_result(ws.data(), p.stream, "softmax_cross_entropy");
  });
#else
  const double loss = run(p, [&] { return cpu::softmax_cross_entropy(a); });
#endif
  return py::make_tuple(loss, grad.obj);
}

py::tuple softmax_cross_entropy(py::handle logits, py::handle labels, py::handle weight,
                                double label_smoothing) {
  const View L = view(logits, "logits");
  return is_double(L, "logits") ? run_xent<double>(L, labels, weight, label_smoothing)
                                : run_xent<float>(L, labels, weight, label_smoothing);
}

// The three element-wise losses share one shape: (a, b) of one dtype and shape -> (loss, grad).
// Each backend names them alike and overloads them on float / double.
#ifdef FASTNN_BACKEND_CUDA
#define FASTNN_ELEMENTWISE_LOSS(fn)                                                   \
  [](const auto* a, const auto* b, int64_t n, auto* g, const Place& p) {              \
    Workspace ws(cuda::loss_workspace_bytes(), p.device);                             \
    cuda::fn(a, b, n, g, ws.data(), p.stream);                                        \
    return cuda::loss_result(ws.data(), p.stream, #fn);                               \
  }
#else
#define FASTNN_ELEMENTWISE_LOSS(fn) \
  [](const auto* a, const auto* b, int64_t n, auto* g, const Place&) { return cpu::fn(a, b, n, g); }
#endif

template <class Kernel>
py::tuple elementwise(const Kernel& kernel, py::handle a_obj, py::handle b_obj,
                      const char* a_name, const char* b_name) {
  const View A = view(a_obj, a_name), B = view(b_obj, b_name);
  const bool f64 = is_double(A, a_name);
  require(A, A.dtype, a_name);
  require(B, A.dtype, b_name);
  if (A.shape != B.shape)
    throw ValueError(std::string(b_name) + ": expected the shape of " + a_name);
  const Place p = place_of({&A, &B});
  Output grad = new_output(A.shape, A.dtype, p);
  const int64_t n = A.size();
  const double loss =
      f64 ? run(p, [&] { return kernel(A.ptr<const double>(), B.ptr<const double>(), n,
                                        grad.view.ptr<double>(), p); })
          : run(p, [&] { return kernel(A.ptr<const float>(), B.ptr<const float>(), n,
                                        grad.view.ptr<float>(), p); });
  return py::make_tuple(loss, grad.obj);
}

}  // namespace

void bind_losses(py::module_& m) {
  m.def("softmax_cross_entropy", &softmax_cross_entropy, py::arg("logits"), py::arg("labels"),
        py::arg("class_weight"), py::arg("label_smoothing"),
        "(mean loss, dlogits); labels are int64 indices (N,) or probabilities (N, C)");
  m.def("binary_cross_entropy_with_logits",
        [](py::handle x, py::handle t) {
          return elementwise(FASTNN_ELEMENTWISE_LOSS(binary_cross_entropy_with_logits), x, t,
                             "logits", "targets");
        },
        py::arg("logits"), py::arg("targets"));
  m.def("mse",
        [](py::handle p, py::handle t) {
          return elementwise(FASTNN_ELEMENTWISE_LOSS(mse), p, t, "pred", "target");
        },
        py::arg("pred"), py::arg("target"));
  m.def("mae",
        [](py::handle p, py::handle t) {
          return elementwise(FASTNN_ELEMENTWISE_LOSS(mae), p, t, "pred", "target");
        },
        py::arg("pred"), py::arg("target"));
}

}  // namespace fastnn::bind
