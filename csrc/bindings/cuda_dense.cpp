// fastnn._cuda.dense_backward: the dense-layer backward (cuda/dense.h) on device memory given as
// integer addresses (fastnn or torch tensors' data pointers; 0 = absent), row strides in
// elements, enqueued on `stream` without synchronising. Converts and forwards; the caller
// (fastnn._gpu_ops.linear_grad, or a test) owns the shape checks, since an address carries no
// size.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/ops/activation.h"
#include "cuda/dense.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

template <class T>
T* ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }

void dense_backward(uintptr_t dy, uintptr_t x, uintptr_t w, uintptr_t gate,
                    const std::string& activation, double act_param, bool from_output,
                    uintptr_t dw, uintptr_t db, uintptr_t dx, int64_t M, int64_t K, int64_t N,
                    int64_t ldy, int64_t ldx, int64_t ldw, int64_t lddw, int64_t lddx,
                    bool accumulate, uintptr_t workspace, int64_t workspace_bytes,
                    uintptr_t stream, const std::string& precision, const std::string& path) {
  const cuda::Precision prec = cuda::precision_from_name(precision);
  const cuda::DenseBackwardPath p = cuda::dense_backward_path_from_name(path);
  const Act act = act_from_name(activation);
  if (act != Act::None && gate == 0 && M * N > 0)
    throw ValueError("dense_backward: activation '" + activation + "' needs the gate (z or y)");
  DenseBackwardArgs<float> a;
  a.M = M;
  a.K = K;
  a.N = N;
  a.dY = ptr<const float>(dy);
  a.ldy = ldy;
  a.X = ptr<const float>(x);
  a.ldx = ldx;
  a.W = ptr<const float>(w);
  a.ldw = ldw;
  if (act != Act::None) {
    a.gate.data = ptr<const float>(gate);
    a.gate.act = act;
    a.gate.param = float(act_param);
    a.gate.from_output = from_output;
  }
  a.dW = ptr<float>(dw);
  a.lddw = lddw;
  a.db = ptr<float>(db);
  a.dX = ptr<float>(dx);
  a.lddx = lddx;
  a.accumulate = accumulate;
  py::gil_scoped_release release;
  cuda::dense_backward_path(a, ptr<void>(workspace), workspace_bytes, ptr<void>(stream), prec, p);
}

}  // namespace

void bind_cuda_dense(py::module_& m) {
  m.def(
      "dense_backward_workspace_bytes",
      [](int64_t M, int64_t N, const py::object& K) {
        return K.is_none() ? cuda::dense_backward_workspace_bytes(M, N)
                           : cuda::dense_backward_workspace_bytes(M, K.cast<int64_t>(), N);
      },
      py::arg("M"), py::arg("N"), py::arg("K") = py::none(),
      "bytes of device workspace dense_backward needs for a batch of M and N outputs; with K "
      "(in_features) also enough for the fused path to split long sums over several blocks");
  m.def("dense_backward", &dense_backward, py::arg("dy"), py::arg("x"), py::arg("w"),
        py::arg("gate"), py::arg("activation"), py::arg("act_param"), py::arg("from_output"),
        py::arg("dw"), py::arg("db"), py::arg("dx"), py::arg("M"), py::arg("K"), py::arg("N"),
        py::arg("ldy"), py::arg("ldx"), py::arg("ldw"), py::arg("lddw"), py::arg("lddx"),
        py::arg("accumulate"), py::arg("workspace"), py::arg("workspace_bytes"),
        py::arg("stream") = 0, py::arg("precision") = "fp32", py::arg("path") = "auto",
        "Backward of y = act(x @ w + b) on float32 device arrays: dz = dy * act'(gate) (gate = z, "
        "or y with from_output), dw (+)= x.T @ dz, db (+)= dz.sum(0) (db = 0: skipped), "
        "dx = dz @ w.T (dx = 0: skipped). x (M, K), w (K, N), dy and gate (M, N) share the row "
        "stride ldy. precision: 'fp32', 'tf32' or 'bf16'; path: 'auto', 'fused' (FP32 only), "
        "'composed', or (tests) 'fused64' / 'fused128' with the tile size forced");
}
