// fastnn._cuda entry points for the fused MLP (cuda/fused_mlp.h): the applicability test, a
// host-array form for tests (NumPy in, NumPy out, device buffers poisoned with NaN so that an
// element the kernel fails to write shows), and device-pointer forms for the bench. A stack is
// described by widths [in_0, out_0, ..., out_{n-1}], one activation name (or None) and one
// parameter per layer. Conversion and checks only; the math is in cuda/fused_mlp.cu.
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ops/activation.h"
#include "cuda/fused_mlp.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

using CArray = py::array_t<float, py::array::c_style>;

void check_cuda(cudaError_t err, const std::string& what) {
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw CudaError("fastnn: " + what + " failed: " + cudaGetErrorName(err) + ": " +
                    cudaGetErrorString(err));
  }
}

Act parse_act(const py::object& a) {
  if (a.is_none()) return Act::None;
  if (!py::isinstance<py::str>(a)) throw TypeError("activations: expected None or a string");
  return act_from_name(a.cast<std::string>());
}

// The layer list from widths / activations / parameters (weights and biases filled by callers).
std::vector<cuda::FusedMlpLayer> make_layers(const std::vector<int64_t>& widths,
                                             const py::list& acts,
                                             const std::vector<double>& params) {
  if (widths.size() < 2) throw ValueError("widths: expected [in, out_0, ...], at least 2 entries");
  const size_t n = widths.size() - 1;
  if (py::len(acts) != n || params.size() != n)
    throw ValueError("activations and act_params: expected one per layer (" + std::to_string(n) +
                     ")");
  std::vector<cuda::FusedMlpLayer> layers(n);
  for (size_t l = 0; l < n; ++l) {
    layers[l].in = widths[l];
    layers[l].out = widths[l + 1];
    layers[l].act = parse_act(acts[l]);
    layers[l].act_param = float(params[l]);
  }
  return layers;
}

bool applies(const std::vector<int64_t>& widths, const py::list& acts,
             const std::vector<double>& params, const std::string& precision) {
  const auto layers = make_layers(widths, acts, params);
  return cuda::fused_mlp_applies(layers.data(), int64_t(layers.size()),
                                 cuda::precision_from_name(precision));
}

CArray f32_array(const py::object& obj, const char* name, int ndim) {
  if (!py::isinstance<py::array>(obj))
    throw TypeError(std::string(name) + ": expected a NumPy array");
  const auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().equal(py::dtype::of<float>()))
    throw TypeError(std::string(name) + ": expected float32, got " +
                    std::string(py::str(arr.dtype())));
  if (arr.ndim() != ndim)
    throw ValueError(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array");
  return CArray::ensure(arr);
}

// Device memory freed on every exit path.
struct DeviceBuffers {
  std::vector<float*> ptrs;
  ~DeviceBuffers() {
    for (float* p : ptrs) cudaFree(p);
  }
  // count floats; poisoned with 0xFF bytes (a NaN) when `poison`.
  float* alloc(size_t count, const char* name, bool poison) {
    float* p = nullptr;
    check_cuda(cudaMalloc(&p, (count ? count : 1) * sizeof(float)),
               std::string("cudaMalloc for ") + name);
    ptrs.push_back(p);
    if (poison) check_cuda(cudaMemset(p, 0xFF, count * sizeof(float)), "cudaMemset");
    return p;
  }
  float* upload(const CArray& a, const char* name) {
    float* p = alloc(size_t(a.size()), name, false);
    if (a.size())
      check_cuda(cudaMemcpy(p, a.data(), size_t(a.size()) * sizeof(float), cudaMemcpyHostToDevice),
                 std::string("copying ") + name + " to the GPU");
    return p;
  }
};

void download(float* dst, const float* src, size_t count, const char* name) {
  if (count)
    check_cuda(cudaMemcpy(dst, src, count * sizeof(float), cudaMemcpyDeviceToHost),
               std::string("copying ") + name + " back from the GPU");
}

// Forward, and backward when dY is given: (outputs, dZ or None, dX or None).
py::tuple fused_mlp_host(const py::object& X_obj, const py::list& weights, const py::list& biases,
                         const py::list& acts, const std::vector<double>& params,
                         const std::string& precision_name, const py::object& dY_obj,
                         bool want_dx) {
  const cuda::Precision precision = cuda::precision_from_name(precision_name);
  const CArray X = f32_array(X_obj, "X", 2);
  const size_t n = py::len(weights);
  if (n == 0 || py::len(biases) != n)
    throw ValueError("weights and biases: expected one per layer (biases entries may be None)");
  // A default-constructed array_t is an empty array, not a null handle: presence is kept apart.
  std::vector<CArray> W(n), b(n);
  std::vector<char> has_b(n, 0);
  std::vector<int64_t> widths{X.shape(1)};
  for (size_t l = 0; l < n; ++l) {
    W[l] = f32_array(weights[l], "weights[l]", 2);
    if (W[l].shape(0) != widths.back())
      throw ValueError("weights[" + std::to_string(l) + "]: expected " +
                       std::to_string(widths.back()) + " rows, got " +
                       std::to_string(W[l].shape(0)));
    widths.push_back(W[l].shape(1));
    if (!biases[l].is_none()) {
      b[l] = f32_array(biases[l], "biases[l]", 1);
      has_b[l] = 1;
      if (b[l].shape(0) != W[l].shape(1))
        throw ValueError("biases[" + std::to_string(l) + "]: expected shape (" +
                         std::to_string(W[l].shape(1)) + ",)");
    }
  }
  std::vector<cuda::FusedMlpLayer> layers = make_layers(widths, acts, params);
  // Refused before any device call, so that the reason is a ValueError even without a GPU.
  if (!cuda::fused_mlp_applies(layers.data(), int64_t(n), precision))
    throw ValueError("fused_mlp_host: the fused MLP does not take this stack (1 to " +
                     std::to_string(cuda::kFusedMlpMaxLayers) + " layers, widths 1 to " +
                     std::to_string(cuda::kFusedMlpMaxWidth) +
                     ", activations whose gradient follows from the output)");
  const int64_t M = X.shape(0);
  CArray dY;
  const bool backward = !dY_obj.is_none();
  if (backward) {
    dY = f32_array(dY_obj, "dY", 2);
    if (dY.shape(0) != M || dY.shape(1) != widths.back())
      throw ValueError("dY: expected shape (" + std::to_string(M) + ", " +
                       std::to_string(widths.back()) + ")");
  }

  std::vector<CArray> outs, dzs;
  for (size_t l = 0; l < n; ++l) {
    outs.emplace_back(std::vector<py::ssize_t>{M, widths[l + 1]});
    if (backward) dzs.emplace_back(std::vector<py::ssize_t>{M, widths[l + 1]});
  }
  const bool with_dx = backward && want_dx;
  CArray dX;
  if (with_dx) dX = CArray(std::vector<py::ssize_t>{M, widths[0]});

  // Host addresses taken while the GIL is held; the arrays outlive the block below.
  std::vector<float*> h_out(n), h_dz(n);
  for (size_t l = 0; l < n; ++l) {
    h_out[l] = outs[l].mutable_data();
    if (backward) h_dz[l] = dzs[l].mutable_data();
  }
  float* h_dx = with_dx ? dX.mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    DeviceBuffers mem;
    const float* dXin = mem.upload(X, "X");
    for (size_t l = 0; l < n; ++l) {
      layers[l].W = mem.upload(W[l], "weights");
      if (has_b[l]) layers[l].b = mem.upload(b[l], "biases");
    }
    std::vector<float*> d_out(n), d_dz(n);
    for (size_t l = 0; l < n; ++l) d_out[l] = mem.alloc(size_t(M * widths[l + 1]), "outputs", true);
    cuda::fused_mlp_forward(layers.data(), int64_t(n), dXin, M, d_out.data(), precision);
    check_cuda(cudaDeviceSynchronize(), "CUDA kernel fused_mlp_forward_kernel");
    float* d_dx = nullptr;
    if (backward) {
      const float* d_dy = mem.upload(dY, "dY");
      for (size_t l = 0; l < n; ++l) d_dz[l] = mem.alloc(size_t(M * widths[l + 1]), "dZ", true);
      if (with_dx) d_dx = mem.alloc(size_t(M * widths[0]), "dX", true);
      cuda::fused_mlp_backward(layers.data(), int64_t(n), dXin, d_out.data(), d_dy, M,
                               d_dz.data(), d_dx, precision);
      check_cuda(cudaDeviceSynchronize(), "CUDA kernel fused_mlp_backward_kernel");
    }
    for (size_t l = 0; l < n; ++l) {
      const size_t count = size_t(M * widths[l + 1]);
      download(h_out[l], d_out[l], count, "outputs");
      if (backward) download(h_dz[l], d_dz[l], count, "dZ");
    }
    if (d_dx) download(h_dx, d_dx, size_t(M * widths[0]), "dX");
  }
  py::list out_list, dz_list;
  for (auto& a : outs) out_list.append(a);
  for (auto& a : dzs) dz_list.append(a);
  return py::make_tuple(out_list, backward ? py::object(dz_list) : py::object(py::none()),
                        with_dx ? py::object(dX) : py::object(py::none()));
}

template <class T>
T* ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }

std::vector<cuda::FusedMlpLayer> device_layers(const std::vector<int64_t>& widths,
                                               const py::list& acts,
                                               const std::vector<double>& params,
                                               const std::vector<uintptr_t>& weights,
                                               const std::vector<uintptr_t>& biases) {
  auto layers = make_layers(widths, acts, params);
  if (weights.size() != layers.size() || (!biases.empty() && biases.size() != layers.size()))
    throw ValueError("weights and biases: expected one address per layer");
  for (size_t l = 0; l < layers.size(); ++l) {
    layers[l].W = ptr<const float>(weights[l]);
    layers[l].b = biases.empty() ? nullptr : ptr<const float>(biases[l]);
  }
  return layers;
}

void forward_device(uintptr_t X, int64_t M, const std::vector<int64_t>& widths,
                    const std::vector<uintptr_t>& weights, const std::vector<uintptr_t>& biases,
                    const py::list& acts, const std::vector<double>& params,
                    const std::vector<uintptr_t>& outputs, const std::string& precision,
                    uintptr_t stream) {
  const auto layers = device_layers(widths, acts, params, weights, biases);
  if (outputs.size() != layers.size()) throw ValueError("outputs: expected one address per layer");
  std::vector<float*> outs(outputs.size());
  for (size_t l = 0; l < outs.size(); ++l) outs[l] = ptr<float>(outputs[l]);
  const cuda::Precision p = cuda::precision_from_name(precision);
  py::gil_scoped_release release;
  cuda::fused_mlp_forward(layers.data(), int64_t(layers.size()), ptr<const float>(X), M,
                          outs.data(), p, reinterpret_cast<void*>(stream));
}

void backward_device(int64_t M, const std::vector<int64_t>& widths,
                     const std::vector<uintptr_t>& weights, const py::list& acts,
                     const std::vector<double>& params, const std::vector<uintptr_t>& outputs,
                     uintptr_t dY, const std::vector<uintptr_t>& dZ, uintptr_t dX,
                     const std::string& precision, uintptr_t stream) {
  const auto layers = device_layers(widths, acts, params, weights, {});
  if (outputs.size() != layers.size() || dZ.size() != layers.size())
    throw ValueError("outputs and dZ: expected one address per layer");
  std::vector<const float*> outs(outputs.size());
  std::vector<float*> dzs(dZ.size());
  for (size_t l = 0; l < outs.size(); ++l) {
    outs[l] = ptr<const float>(outputs[l]);
    dzs[l] = ptr<float>(dZ[l]);
  }
  const cuda::Precision p = cuda::precision_from_name(precision);
  py::gil_scoped_release release;
  cuda::fused_mlp_backward(layers.data(), int64_t(layers.size()), nullptr, outs.data(),
                           ptr<const float>(dY), M, dzs.data(), ptr<float>(dX), p,
                           reinterpret_cast<void*>(stream));
}

}  // namespace

void bind_cuda_fused_mlp(py::module_& m) {
  m.def("fused_mlp_applies", &applies, py::arg("widths"), py::arg("activations"),
        py::arg("act_params"), py::arg("precision"),
        "Whether the fused MLP kernel takes this stack: widths [in, out_0, ...], one activation "
        "name (or None) and parameter per layer; never touches the GPU");
  m.def("fused_mlp_host", &fused_mlp_host, py::arg("X"), py::arg("weights"), py::arg("biases"),
        py::arg("activations"), py::arg("act_params"), py::arg("precision"),
        py::arg("dY") = py::none(), py::arg("want_dx") = true,
        "The fused MLP on float32 NumPy arrays, copied to and from the GPU (for tests): returns "
        "(outputs, dZ or None, dX or None); outputs and gradients start as NaN on the device");
  m.def("fused_mlp_forward_device", &forward_device, py::arg("X"), py::arg("M"),
        py::arg("widths"), py::arg("weights"), py::arg("biases"), py::arg("activations"),
        py::arg("act_params"), py::arg("outputs"), py::arg("precision") = "fp32",
        py::arg("stream") = 0,
        "The fused MLP forward on device addresses (0 = no bias / no stored output), enqueued "
        "on `stream`");
  m.def("fused_mlp_backward_device", &backward_device, py::arg("M"), py::arg("widths"),
        py::arg("weights"), py::arg("activations"), py::arg("act_params"), py::arg("outputs"),
        py::arg("dY"), py::arg("dZ"), py::arg("dX") = 0, py::arg("precision") = "fp32",
        py::arg("stream") = 0,
        "The fused MLP backward on device addresses (dX = 0: not computed), enqueued on "
        "`stream`");
}
