// fastnn._C's bf16 GEMM (cpu/gemm_bf16.h), for the tests and show_config: the kernel on NumPy
// float32 arrays, and which instruction set it runs on. CPU only (the GPU's bf16 GEMM is
// fastnn._cuda.gemm(variant="bf16")).
#include <pybind11/pybind11.h>

#include <optional>
#include <string>

#include "bindings/convert.h"
#include "core/cpu_features.h"
#include "core/ops/activation.h"
#include "core/ops/dense.h"
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

// C-contiguous float32 (rows, cols), else ValueError naming it.
View f32_rows(py::handle obj, const char* name, int64_t rows, int64_t cols, bool writable = false) {
  View v = f32_matrix(obj, name, writable);
  if (v.shape[0] != rows || v.shape[1] != cols || !v.contiguous())
    throw ValueError(std::string(name) + ": expected a C-contiguous float32 array of shape (" +
                     std::to_string(rows) + ", " + std::to_string(cols) + ")");
  return v;
}

// The engine's bf16 dense backward (cpu::dense_backward_bf16) on contiguous float32 arrays:
// dw (+)= x^T dz, db (+)= colsum(dz), dx = dz w^T, dz = dy * act'(gate).
void dense_backward_bf16(py::handle dy, py::handle x, py::handle w, py::handle gate,
                         const std::string& activation, double act_param, bool from_output,
                         py::handle dw, py::handle db, py::handle dx, bool accumulate) {
  const View X = f32_matrix(x, "x");
  const View W = f32_matrix(w, "w");
  DenseBackwardArgs<float> d;
  d.M = X.shape[0], d.K = X.shape[1], d.N = W.shape[1];
  f32_rows(x, "x", d.M, d.K);
  f32_rows(w, "w", d.K, d.N);
  const View DY = f32_rows(dy, "dy", d.M, d.N), DW = f32_rows(dw, "dw", d.K, d.N, true);
  d.X = X.ptr<const float>(), d.ldx = d.K;
  d.W = W.ptr<const float>(), d.ldw = d.N;
  d.dY = DY.ptr<const float>(), d.ldy = d.N;
  d.dW = DW.ptr<float>(), d.lddw = d.N;
  d.accumulate = accumulate;
  const Act act = act_from_name(activation);
  if (act != Act::None) {
    d.gate.data = f32_rows(gate, "gate", d.M, d.N).ptr<const float>();
    d.gate.act = act;
    d.gate.param = float(act_param);
    d.gate.from_output = from_output;
  }
  if (!db.is_none()) {
    const View DB = view(db, "db", true);
    check_dtype(DB, DType::Float32, "db");
    if (DB.ndim() != 1 || DB.shape[0] != d.N || !DB.contiguous())
      throw ValueError("db: expected a contiguous array of shape (N,)");
    d.db = DB.ptr<float>();
  }
  if (!dx.is_none()) {
    d.dX = f32_rows(dx, "dx", d.M, d.K, true).ptr<float>();
    d.lddx = d.K;
  }
  py::gil_scoped_release release;
  cpu::dense_backward_bf16(d);
}

}  // namespace

void bind_bf16(py::module_& m) {
  m.def("gemm_bf16", &gemm_bf16, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a"),
        py::arg("trans_b"), py::arg("alpha"), py::arg("beta"), py::arg("bias"),
        py::arg("activation"), py::arg("act_param"), py::arg("z") = py::none(),
        py::arg("prepacked") = false,
        "out = act(alpha * bf16(op(a)) @ bf16(op(b)) + beta * out + bias), FP32 accumulation");
  m.def("dense_backward_bf16", &dense_backward_bf16, py::arg("dy"), py::arg("x"), py::arg("w"),
        py::arg("gate"), py::arg("activation"), py::arg("act_param"), py::arg("from_output"),
        py::arg("dw"), py::arg("db"), py::arg("dx"), py::arg("accumulate"),
        "the bf16 engine's dense backward: dw (+)= x^T dz, db (+)= colsum(dz), dx = dz w^T");
  m.def("bf16_kernel", [] { return std::string(cpu::bf16_kernel_name()); });
  m.def("bf16_native_supported", &cpu_supports_avx512_bf16);
  m.def("set_bf16_fallback", &set_bf16_fallback, py::arg("forced"),
        "force (True) or release (False) the bf16 GEMM's fallback kernel");
}

}  // namespace fastnn::bind
