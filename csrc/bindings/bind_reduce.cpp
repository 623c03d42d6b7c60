// Reduction bindings (_C and _cuda; bindings/convert.h): column sums and means, row argmax and
// the accuracy counts. Convert, check bounds, forward; results are new arrays of this module's
// kind, counts are Python ints (on the GPU they wait for the stream).
#include <pybind11/pybind11.h>

#include <string>

#include "bindings/convert.h"
#ifdef FASTNN_BACKEND_CUDA
#include "cuda/reduce.h"
#else
#include "cpu/reduce.h"
#endif

namespace fastnn::bind {
namespace {

// Calls f(T{}) with T the float type of v.
template <class F>
auto with_float(const View& v, const F& f) {
  return v.dtype == DType::Float64 ? f(double{}) : f(float{});
}

py::object column_reduce(py::handle x_obj, bool mean) {
  const View x = float_view(x_obj, "x", 2);
  const int64_t N = x.shape[0], F = x.shape[1];
  const Place p = place_of({&x});
  Output out = new_output({F}, x.dtype, p);
  with_float(x, [&](auto zero) {
    using T = decltype(zero);
    const T* xp = x.ptr<const T>();
    T* op = out.view.ptr<T>();
#ifdef FASTNN_BACKEND_CUDA
    if (F == 0) return;
    run_with_workspace(p, cuda::column_sums_workspace_bytes(N, F), [&](void* ws, int64_t bytes) {
      cuda::sum_rows<T>(xp, N, F, op, mean, ws, bytes, p.stream);
    });
#else
    run(p, [&] { mean ? cpu::mean_rows(xp, N, F, op) : cpu::sum_rows(xp, N, F, op); });
#endif
  });
  return out.obj;
}

py::object argmax(py::handle x_obj) {
  const View x = float_view(x_obj, "x", 2);
  const int64_t N = x.shape[0], F = x.shape[1];
  const Place p = place_of({&x});
  Output idx = new_output({N}, DType::Int64, p);
  with_float(x, [&](auto zero) {
    using T = decltype(zero);
    const T* xp = x.ptr<const T>();
    int64_t* ip = idx.view.ptr<int64_t>();
#ifdef FASTNN_BACKEND_CUDA
    if (N) run(p, [&] { cuda::argmax_rows<T>(xp, N, F, ip, p.stream); });
#else
    run(p, [&] { cpu::argmax_rows(xp, N, F, ip); });
#endif
  });
  return idx.obj;
}

int64_t topk(py::handle scores_obj, py::handle labels_obj, int64_t k) {
  const View s = float_view(scores_obj, "scores", 2), labels = view(labels_obj, "labels");
  require(labels, DType::Int64, "labels");
  const int64_t N = s.shape[0], C = s.shape[1];
  if (labels.ndim() != 1 || labels.shape[0] != N)
    throw ValueError("labels: expected one label per row of scores");
  const Place p = place_of({&s, &labels});
  return with_float(s, [&](auto zero) -> int64_t {
    using T = decltype(zero);
    const T* sp = s.ptr<const T>();
    const int64_t* lp = labels.ptr<const int64_t>();
#ifdef FASTNN_BACKEND_CUDA
    if (k != 1) throw ValueError("k: the GPU counts top-1 only, got k = " + std::to_string(k));
    if (N == 0) return 0;
    // counts[0]: rows whose argmax is the label; counts[1]: labels outside [0, C).
    Output counts = new_output({2}, DType::Int64, p);
    int64_t host[2];
    run(p, [&] {
      cuda::count_correct<T>(sp, lp, N, C, counts.view.ptr<int64_t>(), p.stream);
      download(host, counts.view.data, sizeof(host), p);
    });
    if (host[1])
      throw ValueError("labels: expected class indices in [0, " + std::to_string(C) + "), got " +
                       std::to_string(host[1]) + " label(s) outside that range");
    return host[0];
#else
    // k == 1 is the argmax count, whose early exit on NaN makes it the cheaper scan.
    return run(p, [&] {
      return k == 1 ? cpu::count_correct(sp, lp, N, C) : cpu::top_k_correct(sp, lp, N, C, k);
    });
#endif
  });
}

#ifndef FASTNN_BACKEND_CUDA
int64_t binary(py::handle logits_obj, py::handle targets_obj, double threshold) {
  const View l = float_view(logits_obj, "logits"), t = view(targets_obj, "targets");
  require(t, l.dtype, "targets");
  if (l.size() != t.size()) throw ValueError("targets: expected the size of logits");
  const Place p = place_of({&l, &t});
  return with_float(l, [&](auto zero) {
    using T = decltype(zero);
    return run(p, [&] {
      return cpu::binary_correct(l.ptr<const T>(), t.ptr<const T>(), l.size(), threshold);
    });
  });
}
#endif

}  // namespace

void bind_reduce(py::module_& m) {
  m.def("sum_rows", [](py::handle x) { return column_reduce(x, false); }, py::arg("x"));
  m.def("mean_rows", [](py::handle x) { return column_reduce(x, true); }, py::arg("x"));
  m.def("argmax_rows", &argmax, py::arg("x"));
  m.def("top_k_correct", &topk, py::arg("scores"), py::arg("labels"), py::arg("k"),
        "rows whose label is among the k highest scores (the GPU: k = 1 only)");
#ifndef FASTNN_BACKEND_CUDA
  m.def("binary_correct", &binary, py::arg("logits"), py::arg("targets"), py::arg("threshold"));
#endif
}

}  // namespace fastnn::bind
