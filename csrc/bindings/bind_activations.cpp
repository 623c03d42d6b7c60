// Activation bindings (_C and _cuda; bindings/convert.h): convert, check bounds, forward.
// fastnn's Python layer validates with user-facing messages and hands over C-contiguous arrays
// of one dtype (out included); the checks here only make sure that no call from Python can read
// or write out of bounds.
#include <pybind11/pybind11.h>

#include <string>
#include <type_traits>
#include <utility>

#include "bindings/convert.h"
#include "core/ops/activation.h"
#ifdef FASTNN_BACKEND_CUDA
#include "cuda/activations.h"
#else
#include "cpu/activations.h"
#endif

namespace fastnn::bind {
namespace {

// Every array: the dtype of the first, C-contiguous, the size of the first; the last writable.
// Returns the views and the place they share.
std::vector<View> same_arrays(std::initializer_list<std::pair<py::handle, std::string>> args) {
  std::vector<View> v;
  size_t i = 0;
  for (const auto& [obj, name] : args) {
    v.push_back(view(obj, name, ++i == args.size()));
    const View& a = v.back();
    if (a.dtype != v.front().dtype)
      throw TypeError(name + ": expected dtype " + v.front().dtype_name + ", got " + a.dtype_name);
    check_contiguous(a, name);
    if (a.size() != v.front().size())
      throw ValueError(name + ": expected " + std::to_string(v.front().size()) +
                       " elements, got " + std::to_string(a.size()));
  }
  is_double(v.front(), args.begin()->second);
  return v;
}

template <class T, class Kernel, size_t... I>
void call_typed(const std::vector<View>& v, const Kernel& kernel, std::index_sequence<I...>) {
  kernel(v[I].ptr<const T>()..., v.back().ptr<T>());
}

// kernel(in..., out) on place p, the N arrays' data typed by their shared element type T
// (float or double, as same_arrays checked): the inputs as const T*, the output (last) as T*.
template <size_t N, class Kernel>
void run_typed(const std::vector<View>& v, const Place& p, const Kernel& kernel) {
  const auto go = [&](auto zero) {
    using T = decltype(zero);
    run(p, [&] { call_typed<T>(v, kernel, std::make_index_sequence<N - 1>{}); });
  };
  v[0].dtype == DType::Float64 ? go(double{}) : go(float{});
}

void act_forward(py::handle x, py::handle out, const std::string& name, double param) {
  const auto v = same_arrays({{x, "x"}, {out, "out"}});
  const Act act = act_from_name(name);
  const Place p = place_of(v);
  const int64_t n = v[0].size();
  if (n == 0) return;  // (no zero-block launch on the GPU)
  run_typed<2>(v, p, [&](const auto* x, auto* y) {
    using T = std::remove_pointer_t<decltype(y)>;
#ifdef FASTNN_BACKEND_CUDA
    cuda::act_forward<T>(act, T(param), x, y, n, p.stream);
#else
    cpu::act_forward<T>(act, T(param), x, y, n);
#endif
  });
}

void act_backward(py::handle dy, py::handle val, py::handle out, const std::string& name,
                  double param, bool from_output) {
  const auto v = same_arrays({{dy, "dy"}, {val, from_output ? "y" : "x"}, {out, "out"}});
  const Act act = act_from_name(name);
  if (from_output && !fastnn::act_grad_from_output_ok(act, param))
    throw ValueError("activation: the gradient of '" + name +
                     "' with this parameter is not a function of its output");
  const Place p = place_of(v);
  const int64_t n = v[0].size();
  if (n == 0) return;  // (no zero-block launch on the GPU)
  run_typed<3>(v, p, [&](const auto* g, const auto* in, auto* dx) {
    using T = std::remove_pointer_t<decltype(dx)>;
#ifdef FASTNN_BACKEND_CUDA
    if (from_output)
      cuda::act_backward_from_output<T>(act, T(param), g, in, dx, n, p.stream);
    else
      cuda::act_backward<T>(act, T(param), g, in, dx, n, p.stream);
#else
    if (from_output)
      cpu::act_backward_from_output<T>(act, T(param), g, in, dx, n);
    else
      cpu::act_backward<T>(act, T(param), g, in, dx, n);
#endif
  });
}

// Rows and columns of a (rows, cols) or (cols,) array.
std::pair<int64_t, int64_t> rows_cols(const View& a) {
  if (a.ndim() < 1) throw ValueError("x: expected at least a 1-D array");
  const int64_t cols = a.shape.back();
  return {cols == 0 ? 0 : a.size() / cols, cols};
}

void softmax_forward(py::handle x, py::handle out, bool log) {
  const auto v = same_arrays({{x, "x"}, {out, "out"}});
  const auto [rows, cols] = rows_cols(v[0]);
  if (rows * cols == 0) return;
  const Place p = place_of(v);
  run_typed<2>(v, p, [&](const auto* xp, auto* yp) {
#ifdef FASTNN_BACKEND_CUDA
    using T = std::remove_pointer_t<decltype(yp)>;
    cuda::softmax_rows<T>(xp, yp, rows, cols, log, p.stream);
#else
    log ? cpu::log_softmax_rows(xp, yp, rows, cols) : cpu::softmax_rows(xp, yp, rows, cols);
#endif
  });
}

void softmax_backward(py::handle dy, py::handle y, py::handle out, bool log) {
  const auto v = same_arrays({{dy, "dy"}, {y, "y"}, {out, "out"}});
  const auto [rows, cols] = rows_cols(v[1]);
  if (rows * cols == 0) return;
  const Place p = place_of(v);
  run_typed<3>(v, p, [&](const auto* g, const auto* yp, auto* dx) {
#ifdef FASTNN_BACKEND_CUDA
    using T = std::remove_pointer_t<decltype(dx)>;
    cuda::softmax_rows_backward<T>(g, yp, dx, rows, cols, log, p.stream);
#else
    if (log)
      cpu::log_softmax_rows_backward(g, yp, dx, rows, cols);
    else
      cpu::softmax_rows_backward(g, yp, dx, rows, cols);
#endif
  });
}

}  // namespace

void bind_activations(py::module_& m) {
  m.def("act_forward", &act_forward, py::arg("x"), py::arg("out"), py::arg("activation"),
        py::arg("param"), "out = act(x), element-wise; out may be x");
  m.def("act_backward", &act_backward, py::arg("dy"), py::arg("v"), py::arg("out"),
        py::arg("activation"), py::arg("param"), py::arg("from_output") = false,
        "out = dy * act'(x), v = x (or v = y = act(x) when from_output)");
  m.def("softmax_forward", &softmax_forward, py::arg("x"), py::arg("out"), py::arg("log"),
        "(log-)softmax over the last axis; out may be x");
  m.def("softmax_backward", &softmax_backward, py::arg("dy"), py::arg("y"), py::arg("out"),
        py::arg("log"),
        "vector-Jacobian product of (log-)softmax over the last axis, from its output y");
#ifndef FASTNN_BACKEND_CUDA
  // A question about the activation, not a kernel: no device involved.
  m.def("act_grad_from_output_ok",
        [](const std::string& name, double param) {
          return fastnn::act_grad_from_output_ok(act_from_name(name), param);
        },
        py::arg("activation"), py::arg("param"));
#endif
}

}  // namespace fastnn::bind
