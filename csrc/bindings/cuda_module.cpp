// fastnn._cuda: device queries, the device layer (cuda_tensor.cpp), the op families (the same
// bind_<family>.cpp files as fastnn._C, built with FASTNN_BACKEND_CUDA: bindings/convert.h), the
// raw device-address entry points (cuda_device_calls.cpp) and the GPU engine. Imported lazily by
// fastnn/cuda.py; nothing here may throw or abort merely because there is no GPU or driver.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>

#include "bindings/errors.h"
#include "bindings/families.h"
#include "cuda/device.h"

namespace py = pybind11;
using namespace fastnn;

namespace fastnn {
void register_tensor_bindings(py::module_& m);  // bindings/cuda_tensor.cpp
}  // namespace fastnn
void bind_cuda_device_calls(py::module_& m);  // cuda_device_calls.cpp
void bind_engine(py::module_& m);  // bind_engine.cpp: the training engine (the GPU one here)

namespace {

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

#ifndef FASTNN_CUDA_ARCH_IMAGES
#define FASTNN_CUDA_ARCH_IMAGES ""  // set by CMakeLists.txt (cmake/cuda_architectures.cmake)
#endif

// The device-code images this module holds, e.g. ["sm_80", "sm_90", "compute_90"].
py::list compiled_architectures() {
  py::list images;
  const std::string all = FASTNN_CUDA_ARCH_IMAGES;
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find(',', start);
    if (end == std::string::npos) end = all.size();
    if (end > start) images.append(all.substr(start, end - start));
    start = end + 1;
  }
  return images;
}

// (major, minor) compute capability of `device`; ValueError for a device that does not exist.
py::tuple device_capability(int device) {
  cuda::check_device(device);
  int major = 0, minor = 0;
  cuda::check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
              "cudaDeviceGetAttribute(ComputeCapabilityMajor)");
  cuda::check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device),
              "cudaDeviceGetAttribute(ComputeCapabilityMinor)");
  return py::make_tuple(major, minor);
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
  info["cuda_architectures"] = compiled_architectures();
  return info;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fastnn CUDA kernels (internal; use fastnn.cuda)";
  fastnn::register_error_translators();
  fastnn::register_tensor_bindings(m);

  m.def("device_count", &device_count,
        "Number of CUDA devices; 0 when there is no GPU or no usable driver (never raises)");
  m.def("describe", &describe,
        "{'cuda_runtime': str, 'cuda_driver': str or None, 'gpus': [str]} (never raises for a "
        "missing GPU or driver)");
  m.def("compiled_architectures", &compiled_architectures,
        "The device-code images compiled in: sm_XY (SASS), compute_XY (PTX)");
  m.def("device_capability", &device_capability, py::arg("device"),
        "(major, minor) compute capability of a CUDA device");
  fastnn::bind::bind_op_families(m);
  bind_cuda_device_calls(m);
  bind_engine(m);
}
