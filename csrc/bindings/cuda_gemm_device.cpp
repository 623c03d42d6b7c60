// fastnn._cuda.gemm_device: the GPU GEMM on memory that is already on the device (a torch or
// CuPy tensor's data pointer, passed as an int), enqueued on the given stream. The bench and the
// device-layer tests use it; fastnn.ops will reach the same kernel through fastnn.Tensor.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "cpu/activation.h"
#include "cuda/gemm.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

// Row-major operands with the given row strides (elements); op() transposes when asked.
void gemm_device(uintptr_t a, uintptr_t b, uintptr_t c, int64_t M, int64_t N, int64_t K,
                 int64_t lda, int64_t ldb, int64_t ldc, bool trans_a, bool trans_b,
                 double alpha, double beta, uintptr_t bias, const std::string& activation,
                 double act_param, uintptr_t stream,
                 const std::string& variant) {
  const cuda::GemmVariant var = cuda::gemm_variant_from_name(variant);
  if (M < 0 || N < 0 || K < 0) throw ValueError("gemm_device: negative size");
  if (!a || !b || !c) throw ValueError("gemm_device: null device pointer");
  GemmArgs<float> g;
  g.M = M;
  g.N = N;
  g.K = K;
  g.A = reinterpret_cast<const float*>(a);
  g.rsa = trans_a ? 1 : lda;
  g.csa = trans_a ? lda : 1;
  g.B = reinterpret_cast<const float*>(b);
  g.rsb = trans_b ? 1 : ldb;
  g.csb = trans_b ? ldb : 1;
  g.C = reinterpret_cast<float*>(c);
  g.rsc = ldc;
  g.csc = 1;
  g.alpha = float(alpha);
  g.beta = float(beta);
  g.bias = reinterpret_cast<const float*>(bias);
  g.act = act_from_name(activation);
  g.act_param = float(act_param);
  py::gil_scoped_release release;
  cuda::gemm_variant(g, reinterpret_cast<void*>(stream), var);
}

}  // namespace

void bind_cuda_gemm_device(py::module_& m) {
  m.def("gemm_device", &gemm_device, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("M"),
        py::arg("N"), py::arg("K"), py::arg("lda"), py::arg("ldb"), py::arg("ldc"),
        py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("bias") = 0, py::arg("activation") = "none",
        py::arg("act_param") = 0.0, py::arg("stream") = 0, py::arg("variant") = "auto",
        "C = act(alpha op(A) op(B) + beta C + bias) on device pointers, enqueued on `stream`; "
        "variant: 'auto', 'v1' (general kernel), 'v2' (fast FP32 path) or 'tf32' (tensor cores)");
  m.def(
      "gemm_device_tf32",
      [](uintptr_t a, uintptr_t b, uintptr_t c, int64_t M, int64_t N, int64_t K, int64_t lda,
         int64_t ldb, int64_t ldc, bool trans_a, bool trans_b, double alpha, double beta,
         uintptr_t bias, const std::string& activation, double act_param, uintptr_t stream) {
        gemm_device(a, b, c, M, N, K, lda, ldb, ldc, trans_a, trans_b, alpha, beta, bias,
                    activation, act_param, stream, "tf32");
      },
      py::arg("a"), py::arg("b"), py::arg("c"), py::arg("M"), py::arg("N"), py::arg("K"),
      py::arg("lda"), py::arg("ldb"), py::arg("ldc"), py::arg("trans_a") = false,
      py::arg("trans_b") = false, py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
      py::arg("bias") = 0, py::arg("activation") = "none", py::arg("act_param") = 0.0,
      py::arg("stream") = 0,
      "gemm_device on TF32 tensor cores (mma.sync, FP32 accumulation; ~1e-3 relative error); "
      "needs 16-byte aligned pointers and leading dimensions that are multiples of 4");
}
