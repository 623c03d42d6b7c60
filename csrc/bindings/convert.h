// The one converter of the op bindings: a Python argument -> fastnn::View (core/view.h: data, dtype,
// shape, element strides, device), plus where a call runs and how its outputs are allocated.
//
// One source, two modules. Each op family has ONE binding file (bind_<family>.cpp) compiled into
// both fastnn._C and fastnn._cuda; CMake defines FASTNN_BACKEND_CUDA for the _cuda target only.
// The family file converts its arguments with the functions below, which are the only ones that
// differ by backend:
//   _C    (no tag): arguments are NumPy arrays, outputs are new NumPy arrays, calls run on the
//                   CPU (cpu::...) with the GIL released;
//   _cuda (tag):    arguments are CUDA tensors (fastnn.Tensor, or any array with
//                   __cuda_array_interface__ and .device; a foreign producer's stream is fenced
//                   onto fastnn's), outputs are new fastnn.Tensors from
//                   the caching allocator, calls run on fastnn's stream of the tensors' device
//                   (cuda::...), workspaces come from the caching allocator, and a loss waits for
//                   the stream before it returns its float.
// So both modules expose the same function names with the same argument lists
// (tests/test_binding_signatures.py checks it). The family file writes the kernel call itself
// under `#ifdef FASTNN_BACKEND_CUDA` where the two backends' declarations differ (the stream
// argument, the workspace); an op with only one backend today is registered in that module only.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/view.h"

namespace fastnn {
namespace bind {

namespace py = pybind11;

#ifdef FASTNN_BACKEND_CUDA
constexpr DeviceType kDevice = DeviceType::Cuda;
#else
constexpr DeviceType kDevice = DeviceType::Cpu;
#endif

// This module's array argument (a NumPy array for _C, a CUDA tensor for _cuda), else TypeError
// naming `name`. `writable`: also ValueError when the array is read-only.
View view(py::handle obj, const std::string& name, bool writable = false);
// None -> nullopt.
std::optional<View> view_or_none(py::handle obj, const std::string& name,
                                    bool writable = false);
// A list (or tuple) of array arguments, each named name[i].
std::vector<View> view_list(py::handle obj, const std::string& name, bool writable = false);

// Checks with the messages the Python layer would give (TypeError / ValueError).
void check_dtype(const View& v, DType dtype, const std::string& name);
void check_contiguous(const View& v, const std::string& name);
void check_ndim(const View& v, int ndim, const std::string& name);
// dtype, contiguity and (ndim >= 0) dimension count at once.
void require(const View& v, DType dtype, const std::string& name, int ndim = -1);
// True for float64, false for float32, TypeError otherwise.
bool is_double(const View& v, const std::string& name);
// A C-contiguous float32 or float64 argument (ndim >= 0: of that many dimensions).
View float_view(py::handle obj, const std::string& name, int ndim = -1);

// Where a call runs: the CPU, or one CUDA device and fastnn's stream there.
struct Place {
  int device = 0;
  void* stream = nullptr;
};
// The device every given view is on (absent ones skipped); ValueError when they differ.
Place place_of(std::initializer_list<const View*> views);
Place place_of(const std::vector<View>& views);

// A new C-contiguous output array of this module's kind on `place`, and its view.
struct Output {
  py::object obj;
  View view;
};
Output new_output(const std::vector<int64_t>& shape, DType dtype, const Place& place);

// Runs f() without the GIL, with place's device current (CUDA).
template <class F>
auto run(const Place& place, F&& f) -> decltype(f());

// Scratch device memory from the caching allocator, returned to it on every exit path; reusing
// it at once is safe because all fastnn work on a device runs on its one stream.
#ifdef FASTNN_BACKEND_CUDA
class Workspace {
 public:
  Workspace(size_t nbytes, int device);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_;
  size_t bytes_;
  int device_;
};
// Copies device memory to the host (on fastnn's stream, waiting for it).
void download(void* dst, const void* src, size_t nbytes, const Place& place);
// run(place, f(workspace, bytes)) with `bytes` of workspace, none allocated when bytes == 0.
template <class F>
void run_with_workspace(const Place& place, int64_t bytes, F&& f);
#endif

}  // namespace bind
}  // namespace fastnn

#ifdef FASTNN_BACKEND_CUDA
#include "cuda/device.h"
#endif

namespace fastnn {
namespace bind {

template <class F>
auto run(const Place& place, F&& f) -> decltype(f()) {
  py::gil_scoped_release release;
#ifdef FASTNN_BACKEND_CUDA
  cuda::DeviceGuard guard(place.device);
#else
  (void)place;
#endif
  return f();
}

#ifdef FASTNN_BACKEND_CUDA
template <class F>
void run_with_workspace(const Place& place, int64_t bytes, F&& f) {
  Workspace ws(size_t(bytes), place.device);
  run(place, [&] { f(ws.data(), bytes); });
}
#endif

}  // namespace bind
}  // namespace fastnn
