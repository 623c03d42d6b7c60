// Dense-layer bindings (_C and _cuda; bindings/convert.h): the GEMM with its fused epilogue and
// the fused dense backward. Convert, check bounds, forward. The CUDA kernels are float32 only.
#include <pybind11/pybind11.h>

#include <string>
#include <type_traits>

#include "bindings/convert.h"
#include "core/ops/activation.h"
#include "core/ops/dense.h"
#include "core/ops/gemm.h"
#ifdef FASTNN_BACKEND_CUDA
#include "cuda/dense.h"
#include "cuda/gemm.h"
#else
#include "cpu/dense.h"
#include "cpu/gemm.h"
#endif

namespace fastnn::bind {
namespace {

std::string dims(int64_t a, int64_t b) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

// A 2-D view of the given dtype; writable when asked.
View matrix(py::handle obj, const char* name, DType dtype, bool writable = false) {
  View v = view(obj, name, writable);
  check_ndim(v, 2, name);
  check_dtype(v, dtype, name);
  return v;
}

// v has the given shape and contiguous columns (empty ones may carry any strides).
void check_rows(const View& v, const char* name, int64_t rows, int64_t cols) {
  if (v.shape[0] != rows || v.shape[1] != cols)
    throw ValueError(std::string(name) + ": expected shape " + dims(rows, cols) + ", got " +
                     dims(v.shape[0], v.shape[1]));
  if (v.strides[1] != 1 && cols > 1 && rows > 0)
    throw ValueError(std::string(name) + ": columns must be contiguous");
}

View rows_matrix(py::handle obj, const char* name, DType dtype, int64_t rows, int64_t cols,
                    bool writable = false) {
  View v = matrix(obj, name, dtype, writable);
  check_rows(v, name, rows, cols);
  return v;
}

// The GPU has float32 kernels only.
void check_backend_dtype(DType dt, const char* what) {
#ifdef FASTNN_BACKEND_CUDA
  if (dt != DType::Float32)
    throw TypeError(std::string(what) + " on the GPU: float32 only (the CUDA GEMM has no " +
                    dtype_name(dt) + " kernel)");
#else
  (void)dt;
  (void)what;
#endif
}

template <class T>
void run_gemm(const View& A, const View& B, const View& C, bool trans_a, bool trans_b,
              double alpha, double beta, const std::optional<View>& bias, Act act,
              double act_param, bool reference, const std::optional<View>& Z,
              const Place& p) {
  GemmArgs<T> g;
  g.M = trans_a ? A.shape[1] : A.shape[0];
  g.K = trans_a ? A.shape[0] : A.shape[1];
  g.N = trans_b ? B.shape[0] : B.shape[1];
  const int64_t kb = trans_b ? B.shape[1] : B.shape[0];
  if (kb != g.K || C.shape[0] != g.M || C.shape[1] != g.N)
    throw ValueError("matmul: shapes do not match: op(a) is " + dims(g.M, g.K) + ", op(b) is " +
                     dims(kb, g.N) + ", out is " + dims(C.shape[0], C.shape[1]));
  g.A = A.ptr<const T>();
  g.rsa = trans_a ? A.strides[1] : A.strides[0];
  g.csa = trans_a ? A.strides[0] : A.strides[1];
  g.B = B.ptr<const T>();
  g.rsb = trans_b ? B.strides[1] : B.strides[0];
  g.csb = trans_b ? B.strides[0] : B.strides[1];
  g.C = C.ptr<T>();
  g.rsc = C.strides[0];
  g.csc = C.strides[1];
  g.alpha = T(alpha);
  g.beta = T(beta);
  g.act = act;
  g.act_param = T(act_param);
  if (bias) {
    if (bias->ndim() != 1 || bias->shape[0] != g.N)
      throw ValueError("b: expected shape (" + std::to_string(g.N) + ",)");
    g.bias = bias->ptr<const T>();
    g.bias_stride = bias->strides[0];
  }
  if (Z) {
    if (Z->shape != C.shape || Z->strides != C.strides)
      throw ValueError("z: expected the shape and strides of out");
    g.Z = Z->ptr<T>();
  }
  run(p, [&] {
#ifdef FASTNN_BACKEND_CUDA
    // The GPU's reference is its general strided kernel (v1), without the fast paths.
    if constexpr (std::is_same_v<T, float>)
      cuda::gemm_variant(g, p.stream, reference ? cuda::GemmVariant::V1 : cuda::GemmVariant::Auto);
#else
    reference ? cpu::gemm_reference(g) : cpu::gemm(g);
#endif
  });
}

void gemm(py::handle a, py::handle b, py::handle out, bool trans_a, bool trans_b, double alpha,
          double beta, py::handle bias, const std::string& activation, double act_param,
          bool reference, py::handle z) {
  const View C = view(out, "out", true);
  check_ndim(C, 2, "out");
  const DType dt = C.dtype;
  const View A = matrix(a, "a", dt), B = matrix(b, "b", dt);
  const auto bias_v = view_or_none(bias, "bias");
  const auto z_v = view_or_none(z, "z", true);
  if ((bias_v && bias_v->dtype != dt) || (z_v && z_v->dtype != dt))
    throw TypeError("matmul: a, b, bias, z and out must share one dtype");
  if (z_v) check_ndim(*z_v, 2, "z");
  is_double(C, "out");
  check_backend_dtype(dt, "matmul");
  const Act act = act_from_name(activation);
  const Place p = place_of({&A, &B, &C, bias_v ? &*bias_v : nullptr, z_v ? &*z_v : nullptr});
  if (dt == DType::Float32)
    run_gemm<float>(A, B, C, trans_a, trans_b, alpha, beta, bias_v, act, act_param, reference,
                    z_v, p);
  else
    run_gemm<double>(A, B, C, trans_a, trans_b, alpha, beta, bias_v, act, act_param, reference,
                     z_v, p);
}

template <class T>
void run_dense_backward(py::handle dy, const View& X, py::handle w, py::handle gate,
                        const std::string& activation, double act_param, bool from_output,
                        const View& DW, py::handle db, py::handle dx, bool accumulate) {
  const DType dt = dtype_of<T>();
  DenseBackwardArgs<T> d;
  d.M = X.shape[0];
  d.K = X.shape[1];
  const View W = matrix(w, "w", dt);
  d.N = W.shape[1];
  check_rows(W, "w", d.K, d.N);
  const View DY = rows_matrix(dy, "dy", dt, d.M, d.N);
  if (X.strides[1] != 1 && d.K > 1 && d.M > 0) throw ValueError("x: columns must be contiguous");
  check_rows(DW, "dw", d.K, d.N);
  d.X = X.ptr<const T>();
  d.ldx = X.strides[0];
  d.W = W.ptr<const T>();
  d.ldw = W.strides[0];
  d.dY = DY.ptr<const T>();
  d.ldy = DY.strides[0];
  d.dW = DW.ptr<T>();
  d.lddw = DW.strides[0];
  d.accumulate = accumulate;
  const Act act = act_from_name(activation);
  std::optional<View> G, DB, DX;
  if (act != Act::None) {
    if (gate.is_none()) throw ValueError("dense backward: an activation needs z or y");
    G = rows_matrix(gate, from_output ? "y" : "z", dt, d.M, d.N);
    if (G->strides[0] != DY.strides[0] && d.M > 1)
      throw ValueError("dense backward: z/y must have dy's row stride");
    d.gate.data = G->ptr<const T>();
    d.gate.act = act;
    d.gate.param = T(act_param);
    d.gate.from_output = from_output;
  }
  if (!db.is_none()) {
    DB = view(db, "db", true);
    if (DB->dtype != dt || DB->ndim() != 1 || DB->shape[0] != d.N || !DB->contiguous())
      throw ValueError("db: expected a writable contiguous array of shape (" +
                       std::to_string(d.N) + ",)");
    d.db = DB->ptr<T>();
  }
  if (!dx.is_none()) {
    DX = rows_matrix(dx, "dx", dt, d.M, d.K, true);
    d.dX = DX->ptr<T>();
    d.lddx = DX->strides[0];
  }
  const Place p = place_of({&X, &W, &DY, &DW, G ? &*G : nullptr, DB ? &*DB : nullptr,
                            DX ? &*DX : nullptr});
#ifdef FASTNN_BACKEND_CUDA
  if constexpr (std::is_same_v<T, float>) {
    run_with_workspace(p, cuda::dense_backward_workspace_bytes(d.M, d.K, d.N),
                       [&](void* ws, int64_t bytes) {
                         cuda::dense_backward(d, ws, bytes, p.stream);
                       });
  }
#else
  run(p, [&] { cpu::dense_backward(d); });
#endif
}

void dense_backward(py::handle dy, py::handle x, py::handle w, py::handle gate,
                    const std::string& activation, double act_param, bool from_output,
                    py::handle dw, py::handle db, py::handle dx, bool accumulate) {
  const View DW = view(dw, "dw", true);
  check_ndim(DW, 2, "dw");
  const DType dt = DW.dtype;
  const View X = view(x, "x");
  check_ndim(X, 2, "x");
  for (const auto& [obj, name] : {std::pair<py::handle, const char*>{dy, "dy"}, {x, "x"},
                                  {w, "w"}, {gate, "gate"}, {db, "db"}, {dx, "dx"}})
    if (!obj.is_none() && view(obj, name).dtype != dt)
      throw TypeError("dense backward: all arrays must share one dtype");
  is_double(DW, "dw");
  check_backend_dtype(dt, "dense backward");
  if (dt == DType::Float32)
    run_dense_backward<float>(dy, X, w, gate, activation, act_param, from_output, DW, db, dx,
                              accumulate);
  else
    run_dense_backward<double>(dy, X, w, gate, activation, act_param, from_output, DW, db, dx,
                               accumulate);
}

}  // namespace

void bind_dense(py::module_& m) {
  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a"),
        py::arg("trans_b"), py::arg("alpha"), py::arg("beta"), py::arg("bias"),
        py::arg("activation"), py::arg("act_param"), py::arg("reference") = false,
        py::arg("z") = py::none(),
        "out = act(alpha * op(a) @ op(b) + beta * out + bias), in place; z = the pre-activation");
  m.def("dense_backward", &dense_backward, py::arg("dy"), py::arg("x"), py::arg("w"),
        py::arg("gate"), py::arg("activation"), py::arg("act_param"), py::arg("from_output"),
        py::arg("dw"), py::arg("db"), py::arg("dx"), py::arg("accumulate"),
        "fused dense-layer backward: dw (+)= x^T dz, db (+)= colsum(dz), dx = dz w^T, "
        "dz = dy * act'(gate)");
}

}  // namespace fastnn::bind
