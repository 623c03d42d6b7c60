// fastnn._C's bf16 GEMM (cpu/gemm_bf16.h), for the tests and show_config: the kernel on NumPy
// float32 arrays, and which instruction set it runs on. CPU only (the GPU's bf16 GEMM is
// fastnn._cuda.gemm(variant="bf16")).
#include <pybind11/pybind11.h>

#include <optional>
#include <string>

#include "bindings/convert.h"
#include "core/cpu_features.h"
#include "core/ops/activation.h"
#include "cpu/gemm_bf16.h"

namespace fastnn::bind {
namespace {

View f32_matrix(py::handle obj, const char* name, bool writable = false) {
  View v = view(obj, name, writable);
  check_ndim(v, 2, name);
  check_dtype(v, DType::Float32, name);
  return v;
}

// out = act(alpha op(a) op(b) + beta out + bias) with a and b rounded to bf16; z: the
// pre-activation; prepacked: op(b) goes through pack_b_bf16 first (the engine's weight cache).
void gemm_bf16(py::handle a, py::handle b, py::handle out, bool trans_a, bool trans_b,
               double alpha, double beta, py::handle bias, const std::string& activation,
               double act_param, py::handle z, bool prepacked) {
  const View A = f32_matrix(a, "a"), B = f32_matrix(b, "b"), C = f32_matrix(out, "out", true);
  GemmArgs<float> g;
  g.M = trans_a ? A.shape[1] : A.shape[0];
  g.K = trans_a ? A.shape[0] : A.shape[1];
  g.N = trans_b ? B.shape[0] : B.shape[1];
  const int64_t kb = trans_b ? B.shape[1] : B.shape[0];
  if (kb != g.K || C.shape[0] != g.M || C.shape[1] != g.N)
    throw ValueError("gemm_bf16: shapes do not match");
  g.A = A.ptr<const float>();
  g.rsa = trans_a ? A.strides[1] : A.strides[0];
  g.csa = trans_a ? A.strides[0] : A.strides[1];
  g.B = B.ptr<const float>();
  g.rsb = trans_b ? B.strides[1] : B.strides[0];
  g.csb = trans_b ? B.strides[0] : B.strides[1];
  g.C = C.ptr<float>();
  g.rsc = C.strides[0];
  g.csc = C.strides[1];
  g.alpha = float(alpha);
  g.beta = float(beta);
  g.act = act_from_name(activation);
  g.act_param = float(act_param);
  if (auto bv = view_or_none(bias, "bias")) {
    check_dtype(*bv, DType::Float32, "bias");
    if (bv->ndim() != 1 || bv->shape[0] != g.N) throw ValueError("bias: expected shape (N,)");
    g.bias = bv->ptr<const float>();
    g.bias_stride = bv->strides[0];
  }
  if (auto zv = view_or_none(z, "z", true)) {
    check_dtype(*zv, DType::Float32, "z");
    if (zv->shape != C.shape || zv->strides != C.strides)
      throw ValueError("z: expected the shape and strides of out");
    g.Z = zv->ptr<float>();
  }
  py::gil_scoped_release release;
  if (prepacked) {
    cpu::Bf16PackedB p;
    cpu::pack_b_bf16(g.B, g.rsb, g.csb, g.K, g.N, p);
    cpu::gemm_bf16(g, &p);
  } else {
    cpu::gemm_bf16(g);
  }
}

}  // namespace

void bind_bf16(py::module_& m) {
  m.def("gemm_bf16", &gemm_bf16, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a"),
        py::arg("trans_b"), py::arg("alpha"), py::arg("beta"), py::arg("bias"),
        py::arg("activation"), py::arg("act_param"), py::arg("z") = py::none(),
        py::arg("prepacked") = false,
        "out = act(alpha * bf16(op(a)) @ bf16(op(b)) + beta * out + bias), FP32 accumulation");
  m.def("bf16_kernel", [] { return std::string(cpu::bf16_kernel_name()); });
  m.def("bf16_native_supported", &cpu_supports_avx512_bf16);
  m.def("set_bf16_fallback", &set_bf16_fallback, py::arg("forced"),
        "force (True) or release (False) the bf16 GEMM's fallback kernel");
}

}  // namespace fastnn::bind
