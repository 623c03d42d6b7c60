// fastnn._cuda: device queries plus a host-memory entry point to the GPU GEMM. Imported lazily
// by fastnn/cuda.py; nothing here may throw or abort merely because there is no GPU or driver.
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstring>
#include <string>

#include "bindings/errors.h"
#include "core/error.h"
#include "cpu/activation.h"
#include "cuda/gemm.h"

namespace py = pybind11;
using namespace fastnn;

namespace fastnn {
void register_tensor_bindings(py::module_& m);  // bindings/cuda_tensor.cpp
// cuda_kernels_optim.cpp: optimizer steps, norms, batch norm, reductions.
void register_cuda_optim_kernels(py::module_& m);
}  // namespace fastnn
void bind_cuda_elem(py::module_& m);  // cuda_kernels_elem.cpp
void bind_cuda_fused_mlp(py::module_& m);  // cuda_fused_mlp.cpp

namespace {

void check_cuda(cudaError_t err, const std::string& what) {
  if (err != cudaSuccess)
    throw CudaError("fastnn: " + what + " failed: " + cudaGetErrorName(err) + ": " +
                    cudaGetErrorString(err));
}

// "13.0" from 13000; the runtime and driver encode versions as 1000 * major + 10 * minor.
std::string version_string(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    // No driver, a too-old driver, no device: all mean "none usable". Clear the error so it is
    // not reported later by an unrelated call.
    cudaGetLastError();
    return 0;
  }
  return n;
}

py::dict describe() {
  py::dict info;
  int runtime = 0;
  info["cuda_runtime"] =
      cudaRuntimeGetVersion(&runtime) == cudaSuccess ? version_string(runtime) : "unknown";
  int driver = 0;
  // A return of 0 with success means no driver is installed.
  if (cudaDriverGetVersion(&driver) == cudaSuccess && driver > 0)
    info["cuda_driver"] = version_string(driver);
  else
    info["cuda_driver"] = py::none();
  cudaGetLastError();
  py::list gpus;
  const int n = device_count();
  for (int d = 0; d < n; ++d) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, d) != cudaSuccess) {
      cudaGetLastError();
      gpus.append("device " + std::to_string(d) + " (unreadable)");
      continue;
    }
    const double gib = double(p.totalGlobalMem) / double(1ull << 30);
    gpus.append(std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) +
                ", " + std::to_string(std::lround(gib)) + " GiB)");
  }
  info["gpus"] = gpus;
  return info;
}

// Frees on every exit path, so an exception between allocation and copy-back leaks nothing.
struct DeviceBuffer {
  float* ptr = nullptr;
  DeviceBuffer(size_t count, const char* name) {
    if (count) check_cuda(cudaMalloc(&ptr, count * sizeof(float)),
                          std::string("cudaMalloc for ") + name);
  }
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

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
  {
    // The arrays above keep their buffers alive; the GPU work needs no Python objects.
    py::gil_scoped_release release;
    if (nc) {
      DeviceBuffer da(na, "a"), db(nb, "b"), dc(nc, "out"), dbias(hbias ? size_t(N) : 0, "bias");
      const auto h2d = cudaMemcpyHostToDevice;
      if (na) check_cuda(cudaMemcpy(da.ptr, ha, na * sizeof(float), h2d), "copying a to the GPU");
      if (nb) check_cuda(cudaMemcpy(db.ptr, hb, nb * sizeof(float), h2d), "copying b to the GPU");
      // With beta == 0 the kernel never reads C, so there is nothing to upload.
      if (g.beta != 0.f)
        check_cuda(cudaMemcpy(dc.ptr, hc, nc * sizeof(float), h2d), "copying out to the GPU");
      if (hbias)
        check_cuda(cudaMemcpy(dbias.ptr, hbias, size_t(N) * sizeof(float), h2d),
                   "copying bias to the GPU");
      g.A = da.ptr;
      g.B = db.ptr;
      g.C = dc.ptr;
      g.bias = dbias.ptr;
      cuda::gemm_variant(g, nullptr, var);
      // Faults inside the kernel surface here, at the first synchronising call.
      check_cuda(cudaDeviceSynchronize(), "CUDA kernel sgemm (v1 sgemm_tiled or v2 sgemm2_kernel)");
      check_cuda(cudaMemcpy(hr, dc.ptr, nc * sizeof(float), cudaMemcpyDeviceToHost),
                 "copying out back from the GPU");
    }
  }
  if (nc) out.attr("__setitem__")(py::ellipsis(), result);
}

}  // namespace

void bind_cuda_gemm_device(py::module_& m);

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fastnn CUDA kernels (internal; use fastnn.cuda)";
  fastnn::register_error_translators();
  fastnn::register_tensor_bindings(m);

  m.def("device_count", &device_count,
        "Number of CUDA devices; 0 when there is no GPU or no usable driver (never raises)");
  m.def("describe", &describe,
        "{'cuda_runtime': str, 'cuda_driver': str or None, 'gpus': [str]} (never raises for a "
        "missing GPU or driver)");
  bind_cuda_gemm_device(m);
  m.def("gemm_host", &gemm_host, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a"),
        py::arg("trans_b"), py::arg("alpha"), py::arg("beta"), py::arg("bias"),
        py::arg("activation"), py::arg("act_param"), py::arg("variant") = "auto",
        "out = act(alpha * op(a) @ op(b) + beta * out + bias) on the current GPU; float32 NumPy "
        "arrays of any strides, copied to and from the device (for tests); variant: 'auto', "
        "'v1' (general kernel) or 'v2' (fast path; ValueError when it does not apply)");
  fastnn::register_cuda_optim_kernels(m);
  bind_cuda_elem(m);
  bind_cuda_fused_mlp(m);
}
