// Initializer bindings (_C only: the GPU has no initializer kernels; fastnn fills weights on the
// host and copies them). Convert, check bounds, forward.
#include <pybind11/pybind11.h>

#include <string>

#include "bindings/convert.h"
#ifndef FASTNN_BACKEND_CUDA
#include "cpu/init.h"
#endif

namespace fastnn::bind {
#ifndef FASTNN_BACKEND_CUDA
namespace {

void init_weights(const std::string& kind, py::handle out_obj, int64_t fan_in, int64_t fan_out,
                  uint64_t seed, double gain) {
  const fastnn::Init k = fastnn::init_from_name(kind);
  const View out = view(out_obj, "out", true);
  is_double(out, "out");
  check_contiguous(out, "out");
  if (fastnn::init_needs_fans(k) && out.size() != fan_in * fan_out)
    throw ValueError("out: expected fan_in * fan_out elements");
  const Place p = place_of({&out});
  const auto go = [&](auto zero) {
    using T = decltype(zero);
    run(p, [&] { cpu::init_weights(k, out.ptr<T>(), out.size(), fan_in, fan_out, seed, gain); });
  };
  out.dtype == DType::Float64 ? go(double{}) : go(float{});
}

}  // namespace
#endif

void bind_init(py::module_& m) {
#ifndef FASTNN_BACKEND_CUDA
  m.def("init_weights", &init_weights, py::arg("kind"), py::arg("out"), py::arg("fan_in"),
        py::arg("fan_out"), py::arg("seed"), py::arg("gain"),
        "fill out in place; gain < 0 = the kind's default");
#else
  (void)m;
#endif
}

}  // namespace fastnn::bind
