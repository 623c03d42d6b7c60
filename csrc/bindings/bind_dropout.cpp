// Dropout bindings (_C and _cuda; bindings/convert.h): contiguous arrays in (fastnn's Python
// layer makes them so), converted and forwarded. The mask is uint8 (1 = kept), the same Philox
// draws on both backends.
#include <pybind11/pybind11.h>

#include "bindings/convert.h"
#ifdef FASTNN_BACKEND_CUDA
#include "cuda/dropout.h"
#else
#include "cpu/dropout.h"
#endif

namespace fastnn::bind {
namespace {

// y and mask already checked against x.
void run_forward(const View& x, const View& y, const View& mask, double rate,
                 uint64_t seed, const Place& p) {
  const int64_t n = x.size();
  if (n == 0) return;  // (no zero-block launch on the GPU)
  const auto go = [&](auto zero) {
    using T = decltype(zero);
    run(p, [&] {
#ifdef FASTNN_BACKEND_CUDA
      cuda::dropout_forward<T>(x.ptr<const T>(), y.ptr<T>(), mask.ptr<uint8_t>(), n, rate, seed,
                               p.stream);
#else
      cpu::dropout_forward(x.ptr<const T>(), y.ptr<T>(), mask.ptr<uint8_t>(), n, rate, seed);
#endif
    });
  };
  x.dtype == DType::Float64 ? go(double{}) : go(float{});
}

py::tuple forward(py::handle x_obj, double rate, uint64_t seed) {
  const View x = float_view(x_obj, "x");
  const Place p = place_of({&x});
  Output y = new_output(x.shape, x.dtype, p), mask = new_output(x.shape, DType::UInt8, p);
  run_forward(x, y.view, mask.view, rate, seed, p);
  return py::make_tuple(y.obj, mask.obj);
}

// Into caller-provided out and mask (the training engine's way: no allocation per call).
void forward_into(py::handle x_obj, py::handle out, py::handle mask_obj, double rate,
                  uint64_t seed) {
  const View x = float_view(x_obj, "x");
  const View y = view(out, "out", true), mask = view(mask_obj, "mask", true);
  require(y, x.dtype, "out");
  require(mask, DType::UInt8, "mask");
  if (y.size() != x.size() || mask.size() != x.size())
    throw ValueError("out / mask: expected as many elements as x");
  run_forward(x, y, mask, rate, seed, place_of({&x, &y, &mask}));
}

py::object backward(py::handle dy_obj, py::handle mask_obj, double rate) {
  const View dy = float_view(dy_obj, "dy"), mask = view(mask_obj, "mask");
  require(mask, DType::UInt8, "mask");
  if (dy.size() != mask.size()) throw ValueError("mask: size does not match dy");
  const Place p = place_of({&dy, &mask});
  Output dx = new_output(dy.shape, dy.dtype, p);
  const int64_t n = dy.size();
  if (n == 0) return dx.obj;
  const auto go = [&](auto zero) {
    using T = decltype(zero);
    run(p, [&] {
#ifdef FASTNN_BACKEND_CUDA
      cuda::dropout_backward<T>(dy.ptr<const T>(), mask.ptr<const uint8_t>(), dx.view.ptr<T>(), n,
                                rate, p.stream);
#else
      cpu::dropout_backward(dy.ptr<const T>(), mask.ptr<const uint8_t>(), dx.view.ptr<T>(), n,
                            rate);
#endif
    });
  };
  dy.dtype == DType::Float64 ? go(double{}) : go(float{});
  return dx.obj;
}

}  // namespace

void bind_dropout(py::module_& m) {
  m.def("dropout_forward", &forward, py::arg("x"), py::arg("rate"), py::arg("seed"),
        "(y, mask): inverted dropout of x, mask uint8 (1 = kept)");
  m.def("dropout_forward_into", &forward_into, py::arg("x"), py::arg("out"), py::arg("mask"),
        py::arg("rate"), py::arg("seed"));
  m.def("dropout_backward", &backward, py::arg("dy"), py::arg("mask"), py::arg("rate"),
        "dx = dy * mask / (1 - rate)");
}

}  // namespace fastnn::bind
