// The converter of bindings/convert.h, for the module this file is compiled into.
#include "bindings/convert.h"

namespace fastnn {
namespace bind {

namespace {

// By kind and size, read off the descriptor: no Python call (this runs for every argument).
DType classify(const py::dtype& dt) {
  if (dt.byteorder() == '>') return DType::Other;  // not the (little-endian) native order
  const char kind = dt.kind();
  const py::ssize_t size = dt.itemsize();
  if (kind == 'f' && size == 4) return DType::Float32;
  if (kind == 'f' && size == 8) return DType::Float64;
  if (kind == 'i' && size == 8) return DType::Int64;
  if (kind == 'u' && size == 1) return DType::UInt8;
  return DType::Other;
}

void set_dtype(View& v, const py::dtype& dt) {
  v.dtype = classify(dt);
  // (NumPy's own name only where it is needed, for a message: str() is a Python call.)
  v.dtype_name = v.dtype == DType::Other ? std::string(py::str(dt)) : dtype_name(v.dtype);
}

std::string type_name(py::handle obj) {
  return py::str(py::type::handle_of(obj).attr("__name__"));
}

#ifdef FASTNN_BACKEND_CUDA
// "cuda:N" (fastnn.Tensor and torch devices print so) -> N.
int cuda_index(py::handle obj, const std::string& name) {
  const std::string dev = py::str(obj.attr("device"));
  if (dev == "cuda") return 0;
  if (dev.rfind("cuda:", 0) == 0) return std::stoi(dev.substr(5));
  throw TypeError(name + ": expected a CUDA tensor, got one on " + dev);
}

View cuda_view(py::handle obj, const std::string& name) {
  if (!py::hasattr(obj, "__cuda_array_interface__") || !py::hasattr(obj, "device")) {
    std::string what = type_name(obj);
    if (py::hasattr(obj, "device")) what += " on " + std::string(py::str(obj.attr("device")));
    throw TypeError(name + ": expected a fastnn.Tensor on a CUDA device, got " + what);
  }
  const py::dict cai = obj.attr("__cuda_array_interface__");
  View v;
  v.device = DeviceType::Cuda;
  v.device_index = cuda_index(obj, name);
  const py::dtype dt = py::dtype(cai["typestr"].cast<std::string>());
  set_dtype(v, dt);
  const py::tuple data = cai["data"];
  v.data = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
  v.readonly = data[1].cast<bool>();
  for (py::handle n : py::tuple(cai["shape"])) v.shape.push_back(n.cast<int64_t>());
  const py::object strides = cai.contains("strides") ? py::object(cai["strides"]) : py::none();
  if (strides.is_none()) {
    v.strides.assign(v.shape.size(), 1);
    for (int i = v.ndim() - 2; i >= 0; --i) v.strides[i] = v.strides[i + 1] * v.shape[i + 1];
  } else {
    const int64_t item = dt.itemsize();
    for (py::handle s : py::tuple(strides)) {
      const int64_t b = s.cast<int64_t>();
      if (b % item) throw ValueError(name + ": strides must be multiples of the item size");
      v.strides.push_back(b / item);
    }
  }
  // CUDA Array Interface v3: the consumer orders its work after the producer's stream (a
  // fastnn.Tensor names fastnn's own stream, which needs nothing).
  if (cai.contains("stream") && !cai["stream"].is_none()) {
    const auto s = cai["stream"].cast<uintptr_t>();
    const cudaStream_t producer = s == 1   ? cudaStreamLegacy
                                  : s == 2 ? cudaStreamPerThread
                                           : reinterpret_cast<cudaStream_t>(s);
    if (producer != cuda::stream(v.device_index)) cuda::fence_from(producer, v.device_index);
  }
  return v;
}
#else
View numpy_view(py::handle obj, const std::string& name) {
  if (!py::isinstance<py::array>(obj))
    throw TypeError(name + ": expected a NumPy array, got " + type_name(obj));
  const auto a = py::reinterpret_borrow<py::array>(obj);
  View v;
  set_dtype(v, a.dtype());
  v.data = const_cast<void*>(a.data());
  v.readonly = !a.writeable();
  const int64_t item = a.itemsize();
  v.shape.reserve(size_t(a.ndim()));
  v.strides.reserve(size_t(a.ndim()));
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    v.shape.push_back(a.shape(i));
    if (a.strides(i) % item)
      throw ValueError(name + ": strides must be multiples of the item size");
    v.strides.push_back(a.strides(i) / item);
  }
  return v;
}
#endif

}  // namespace

View view(py::handle obj, const std::string& name, bool writable) {
#ifdef FASTNN_BACKEND_CUDA
  View v = cuda_view(obj, name);
#else
  View v = numpy_view(obj, name);
#endif
  if (writable && v.readonly) throw ValueError(name + ": array is read-only");
  return v;
}

std::optional<View> view_or_none(py::handle obj, const std::string& name, bool writable) {
  if (obj.is_none()) return std::nullopt;
  return view(obj, name, writable);
}

std::vector<View> view_list(py::handle obj, const std::string& name, bool writable) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    throw TypeError(name + ": expected a list of arrays, got " + type_name(obj));
  std::vector<View> views;
  size_t i = 0;
  for (py::handle item : obj) {
    views.push_back(view(item, name + "[" + std::to_string(i) + "]", writable));
    ++i;
  }
  return views;
}

void check_dtype(const View& v, DType dtype, const std::string& name) {
  if (v.dtype != dtype)
    throw TypeError(name + ": expected dtype " + dtype_name(dtype) + ", got " + v.dtype_name);
}

void check_contiguous(const View& v, const std::string& name) {
  if (!v.contiguous()) throw ValueError(name + ": expected a C-contiguous array");
}

void check_ndim(const View& v, int ndim, const std::string& name) {
  if (v.ndim() != ndim)
    throw ValueError(name + ": expected a " + std::to_string(ndim) + "-D array, got " +
                     std::to_string(v.ndim()) + "-D");
}

void require(const View& v, DType dtype, const std::string& name, int ndim) {
  check_dtype(v, dtype, name);
  check_contiguous(v, name);
  if (ndim >= 0) check_ndim(v, ndim, name);
}

bool is_double(const View& v, const std::string& name) {
  if (v.dtype == DType::Float64) return true;
  if (v.dtype == DType::Float32) return false;
  throw TypeError(name + ": expected float32 or float64, got " + v.dtype_name);
}

View float_view(py::handle obj, const std::string& name, int ndim) {
  View v = view(obj, name);
  is_double(v, name);
  require(v, v.dtype, name, ndim);
  return v;
}

Place place_of(std::initializer_list<const View*> views) {
  Place p;
  const View* first = nullptr;
  for (const View* v : views) {
    if (!v) continue;
    if (!first) {
      first = v;
      p.device = v->device_index;
    } else if (v->device_index != p.device) {
      throw ValueError("arrays on cuda:" + std::to_string(p.device) + " and cuda:" +
                       std::to_string(v->device_index) + " in one call; move them to one device");
    }
  }
#ifdef FASTNN_BACKEND_CUDA
  p.stream = cuda::stream(p.device);
#endif
  return p;
}

Place place_of(const std::vector<View>& views) {
  if (views.empty()) return place_of({});
  Place p = place_of({&views[0]});
  for (const View& v : views) place_of({&views[0], &v});
  return p;
}

namespace {
py::dtype numpy_dtype(DType d) {
  switch (d) {
    case DType::Float32: return py::dtype::of<float>();
    case DType::Float64: return py::dtype::of<double>();
    case DType::Int64: return py::dtype::of<int64_t>();
    case DType::UInt8: return py::dtype::of<uint8_t>();
    default: throw TypeError("no output of an unsupported dtype");
  }
}
}  // namespace

Output new_output(const std::vector<int64_t>& shape, DType dtype, const Place& place) {
  Output out;
#ifdef FASTNN_BACKEND_CUDA
  // fastnn.Tensor owns the storage (a block of the caching allocator on the place's device).
  py::tuple dims(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) dims[i] = py::int_(shape[i]);
  const py::object tensor = py::module_::import("fastnn.tensor").attr("Tensor");
  out.obj = tensor.attr("_empty_cuda")(dims, numpy_dtype(dtype), place.device);
#else
  (void)place;
  out.obj = py::array(numpy_dtype(dtype), std::vector<py::ssize_t>(shape.begin(), shape.end()));
#endif
  out.view = view(out.obj, "out", true);
  return out;
}

#ifdef FASTNN_BACKEND_CUDA
Workspace::Workspace(size_t nbytes, int device)
    : ptr_(cuda::device_alloc(nbytes, device)), bytes_(nbytes), device_(device) {}
Workspace::~Workspace() { cuda::device_free(ptr_, device_); }

void download(void* dst, const void* src, size_t nbytes, const Place& place) {
  if (nbytes) cuda::memcpy_d2h(dst, src, nbytes, place.device);
}
#endif

}  // namespace bind
}  // namespace fastnn
