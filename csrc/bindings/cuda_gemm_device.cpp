// The GPU GEMM's Python entry points (argument checks and forwarding only):
// - fastnn._cuda.gemm_device: on memory that is already on the device (a torch or CuPy tensor's
//   data pointer, passed as an int), enqueued on the given stream. The bench and the device-layer
//   tests use it; fastnn.ops reaches the same kernels through fastnn.Tensor.
// - fastnn._cuda.gemm_host: on NumPy arrays, staged through one block of fastnn's caching
//   allocator and run on fastnn's stream (tests).
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/ops/activation.h"
#include "cuda/device.h"
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

using CArray = py::array_t<float, py::array::c_style>;

// A C-contiguous float32 view or copy of `obj`; rejects other dtypes instead of converting, so
// the GPU path computes on exactly the numbers the caller passed.
CArray contiguous_f32(const py::object& obj, const char* name, int ndim) {
  if (!py::isinstance<py::array>(obj))
    throw TypeError(std::string(name) + ": expected a NumPy array");
  const auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().equal(py::dtype::of<float>()))
    throw TypeError(std::string(name) + ": expected float32, got " +
                    std::string(py::str(arr.dtype())));
  if (arr.ndim() != ndim)
    throw ValueError(std::string(name) + ": expected a " + std::to_string(ndim) +
                     "-D array, got " + std::to_string(arr.ndim()) + "-D");
  return CArray::ensure(arr);
}

Act parse_act(const py::object& activation) {
  if (activation.is_none()) return Act::None;
  if (!py::isinstance<py::str>(activation))
    throw TypeError("activation: expected None or a string");
  return act_from_name(activation.cast<std::string>());
}

// One block of the caching allocator, returned to the cache on every exit path. Reusing it at
// once is safe: every use is on fastnn's stream of `device` (cuda/device.h, stream rule).
class CachedBlock {
 public:
  CachedBlock(size_t nbytes, int device)
      : ptr_(cuda::device_alloc(nbytes, device)), device_(device) {}
  ~CachedBlock() { cuda::device_free(ptr_, device_); }
  CachedBlock(const CachedBlock&) = delete;
  CachedBlock& operator=(const CachedBlock&) = delete;
  float* floats() const { return static_cast<float*>(ptr_); }

 private:
  void* ptr_;
  int device_;
};

// Operands packed in one block at 256-byte boundaries (64 floats): aligned like separate
// cudaMallocs, so the 16-byte alignment the v2 / tensor-core kernels need always holds.
size_t padded(size_t floats) { return (floats + 63) / 64 * 64; }

void gemm_host(const py::object& a_obj, const py::object& b_obj, const py::object& out_obj,
               bool trans_a, bool trans_b, double alpha, double beta, const py::object& bias_obj,
               const py::object& activation, double act_param, const std::string& variant) {
  const cuda::GemmVariant var = cuda::gemm_variant_from_name(variant);
  CArray a = contiguous_f32(a_obj, "a", 2), b = contiguous_f32(b_obj, "b", 2);
  // A list would be converted to a temporary array and the result silently lost.
  if (!py::isinstance<py::array>(out_obj)) throw TypeError("out: expected a NumPy array");
  const auto out = py::reinterpret_borrow<py::array>(out_obj);
  if (!out.writeable()) throw ValueError("out: array is read-only");
  CArray c = contiguous_f32(out, "out", 2);

  const int64_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
  const int64_t kb = trans_b ? b.shape(1) : b.shape(0), N = trans_b ? b.shape(0) : b.shape(1);
  if (kb != K || c.shape(0) != M || c.shape(1) != N)
    throw ValueError("gemm_host: shapes do not match: op(a) is (" + std::to_string(M) + ", " +
                     std::to_string(K) + "), op(b) is (" + std::to_string(kb) + ", " +
                     std::to_string(N) + "), out is (" + std::to_string(c.shape(0)) + ", " +
                     std::to_string(c.shape(1)) + ")");
  CArray bias;
  const bool has_bias = !bias_obj.is_none();
  if (has_bias) {
    bias = contiguous_f32(bias_obj, "bias", 1);
    if (bias.shape(0) != N) throw ValueError("bias: expected shape (" + std::to_string(N) + ",)");
  }

  GemmArgs<float> g;
  g.M = M;
  g.N = N;
  g.K = K;
  g.alpha = static_cast<float>(alpha);
  g.beta = static_cast<float>(beta);
  g.act = parse_act(activation);
  g.act_param = static_cast<float>(act_param);
  // Contiguous copies: a stored (rows, cols) has strides (cols, 1); a transpose swaps them.
  g.rsa = trans_a ? 1 : a.shape(1);
  g.csa = trans_a ? a.shape(1) : 1;
  g.rsb = trans_b ? 1 : b.shape(1);
  g.csb = trans_b ? b.shape(1) : 1;
  g.rsc = N;
  g.csc = 1;
  g.bias_stride = 1;

  // The result goes to a fresh contiguous array, then into `out` with whatever strides it has.
  CArray result({M, N});
  const float* ha = a.data();
  const float* hb = b.data();
  const float* hc = c.data();
  const float* hbias = has_bias ? bias.data() : nullptr;
  float* hr = result.mutable_data();
  const size_t na = size_t(a.size()), nb = size_t(b.size()), nc = size_t(M * N);
  const size_t nbias = hbias ? size_t(N) : 0;
  if (nc == 0) return;
  {
    // The arrays above keep their buffers alive; the GPU work needs no Python objects.
    py::gil_scoped_release release;
    int device = 0;
    cuda::check(cudaGetDevice(&device), "cudaGetDevice");
    cuda::DeviceGuard guard(device);
    const size_t off_b = padded(na), off_c = off_b + padded(nb), off_bias = off_c + padded(nc);
    CachedBlock block((off_bias + nbias) * sizeof(float), device);
    float* d = block.floats();
    cuda::memcpy_h2d(d, ha, na * sizeof(float), device);
    cuda::memcpy_h2d(d + off_b, hb, nb * sizeof(float), device);
    // With beta == 0 the kernel never reads C, so there is nothing to upload.
    if (g.beta != 0.f) cuda::memcpy_h2d(d + off_c, hc, nc * sizeof(float), device);
    cuda::memcpy_h2d(d + off_bias, hbias, nbias * sizeof(float), device);
    g.A = d;
    g.B = d + off_b;
    g.C = d + off_c;
    g.bias = hbias ? d + off_bias : nullptr;
    cudaStream_t stream = cuda::stream(device);
    cuda::gemm_variant(g, stream, var);
    // Faults inside the kernel surface at the first synchronising call: this one names it.
    cuda::check(cudaStreamSynchronize(stream),
                "CUDA kernel gemm (variant '" + variant + "') on cuda:" + std::to_string(device));
    cuda::memcpy_d2h(hr, d + off_c, nc * sizeof(float), device);
  }
  out.attr("__setitem__")(py::ellipsis(), result);
}

}  // namespace

void bind_cuda_gemm_device(py::module_& m) {
  m.def("gemm_device", &gemm_device, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("M"),
        py::arg("N"), py::arg("K"), py::arg("lda"), py::arg("ldb"), py::arg("ldc"),
        py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("bias") = 0, py::arg("activation") = "none",
        py::arg("act_param") = 0.0, py::arg("stream") = 0, py::arg("variant") = "auto",
        "C = act(alpha op(A) op(B) + beta C + bias) on device pointers, enqueued on `stream`; "
        "variant: 'auto', 'v1' (general kernel), 'v2' (fast FP32 path), 'tf32' or 'bf16' (tensor "
        "cores; ValueError unless the v2 layout conditions hold)");
  m.def("gemm_host", &gemm_host, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a"),
        py::arg("trans_b"), py::arg("alpha"), py::arg("beta"), py::arg("bias"),
        py::arg("activation"), py::arg("act_param"), py::arg("variant") = "auto",
        "out = act(alpha * op(a) @ op(b) + beta * out + bias) on the current GPU; float32 NumPy "
        "arrays of any strides, staged through fastnn's caching allocator and run on fastnn's "
        "stream (for tests); variant: 'auto', 'v1', 'v2', 'tf32' or 'bf16' (the last three raise "
        "ValueError when the contiguous copies do not meet their layout conditions)");
}
