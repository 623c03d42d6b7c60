// fastnn._C.gemm_packed: the GEMM on a packed B (cpu/gemm_packed.h), for the kernel tests. The
// engine packs its Dense kernels itself; this packs b on every call and runs one product, so the
// tests can hold the packed path (every SIMD path, every kernel shape) against the oracle.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "core/error.h"
#include "core/ops/activation.h"
#include "cpu/gemm_packed.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

using F32 = py::array_t<float, py::array::c_style>;

// A C-contiguous float32 NumPy array of ndim dimensions (TypeError / ValueError otherwise).
F32 float_arg(const py::handle& a, const char* name, int ndim) {
  if (!py::isinstance<F32>(a) || !(py::cast<py::array>(a).flags() & py::array::c_style))
    throw py::type_error(std::string(name) + ": expected a C-contiguous float32 NumPy array");
  F32 arr = py::reinterpret_borrow<F32>(a);
  if (arr.ndim() != ndim)
    throw ValueError(std::string(name) + ": expected " + std::to_string(ndim) + " dimensions");
  return arr;
}

void gemm_packed_call(const py::handle& a, const py::handle& b, const py::handle& out,
                      const py::handle& bias, const std::string& activation, double act_param,
                      double alpha, double beta) {
  const F32 A = float_arg(a, "a", 2), B = float_arg(b, "b", 2), C = float_arg(out, "out", 2);
  const int64_t M = A.shape(0), K = A.shape(1), N = B.shape(1);
  if (B.shape(0) != K || C.shape(0) != M || C.shape(1) != N)
    throw ValueError("gemm_packed: a (M, K), b (K, N) and out (M, N) do not fit");
  const float* bias_p = nullptr;
  F32 bias_a;
  if (!bias.is_none()) {
    bias_a = float_arg(bias, "bias", 1);
    if (bias_a.shape(0) != N) throw ValueError("bias: expected N values");
    bias_p = bias_a.data();
  }
  GemmArgs<float> g = gemm_product<float>(M, N, K, A.data(), K, 1, nullptr, 0, 0,
                                          const_cast<float*>(C.data()), N);
  g.alpha = float(alpha);
  g.beta = float(beta);
  g.bias = bias_p;
  g.act = act_from_name(activation);
  g.act_param = float(act_param);
  py::gil_scoped_release release;
  const cpu::PackedB packed(B.data(), K, N, N);
  cpu::gemm_packed(g, packed);
}

}  // namespace

void bind_gemm_packed(py::module_& m) {
  m.def("gemm_packed", &gemm_packed_call, py::arg("a"), py::arg("b"), py::arg("out"),
        py::arg("bias") = py::none(), py::arg("activation") = "none", py::arg("act_param") = 0.0,
        py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
        "out = act(alpha a @ b + beta out + bias) with b packed in panels (tests)");
}
