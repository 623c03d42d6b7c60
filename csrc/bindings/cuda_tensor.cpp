// Bindings for the device layer (fastnn.Tensor's storage): the caching allocator, copies, the
// fastnn stream, and DLPack export/import. Argument checks and forwarding only; the logic lives
// in cuda/device.cpp and python/fastnn/tensor.py.
#include <Python.h>
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/device.h"
#include "cuda/dlpack.h"

namespace py = pybind11;

namespace fastnn {
namespace {

using dlpack::DLManagedTensor;
using dlpack::DLManagedTensorVersioned;

// A span of memory a Tensor views: either a block of fastnn's caching allocator (returned to the
// cache on destruction) or memory imported through DLPack (its producer's deleter is called on
// destruction). Holds no Python object, so it may die on any thread without the GIL.
class Storage {
 public:
  Storage(void* ptr, size_t nbytes, int device) : ptr_(ptr), nbytes_(nbytes),
      device_type_(dlpack::kDLCUDA), device_id_(device), cached_(true) {}
  // Imported: exactly one of owner / owner_v is set.
  Storage(void* ptr, size_t nbytes, int32_t device_type, int32_t device_id, DLManagedTensor* owner,
          DLManagedTensorVersioned* owner_v, bool readonly)
      : ptr_(ptr), nbytes_(nbytes), device_type_(device_type), device_id_(device_id),
        cached_(false), readonly_(readonly), owner_(owner), owner_v_(owner_v) {}
  ~Storage() {
    if (cached_) {
      cuda::device_free(ptr_, device_id_);
      return;
    }
    // The producer may recycle the memory on its own stream at once: finish our work first.
    if (device_type_ == dlpack::kDLCUDA) {
      try {
        cuda::synchronize(device_id_);
      } catch (...) {
      }
    }
    if (owner_ && owner_->deleter) owner_->deleter(owner_);
    if (owner_v_ && owner_v_->deleter) owner_v_->deleter(owner_v_);
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  uintptr_t ptr() const { return reinterpret_cast<uintptr_t>(ptr_); }
  void* data() const { return ptr_; }
  size_t nbytes() const { return nbytes_; }
  int32_t device_type() const { return device_type_; }
  int32_t device_id() const { return device_id_; }
  bool cached() const { return cached_; }
  bool readonly() const { return readonly_; }

 private:
  void* ptr_;
  size_t nbytes_;
  int32_t device_type_, device_id_;
  bool cached_;
  bool readonly_ = false;
  DLManagedTensor* owner_ = nullptr;
  DLManagedTensorVersioned* owner_v_ = nullptr;
};

using StoragePtr = std::shared_ptr<Storage>;

StoragePtr empty(int64_t nbytes, int device) {
  if (nbytes < 0) throw ValueError("nbytes: expected >= 0, got " + std::to_string(nbytes));
  void* p = cuda::device_alloc(size_t(nbytes), device);
  return std::make_shared<Storage>(p, size_t(nbytes), device);
}

void require_cuda(const Storage& s, const char* name) {
  if (s.device_type() != dlpack::kDLCUDA)
    throw ValueError(std::string(name) + ": expected CUDA memory, got DLPack device type " +
                     std::to_string(s.device_type()));
}

void check_span(const Storage& s, int64_t offset, int64_t nbytes, const char* name) {
  if (offset < 0 || nbytes < 0 || uint64_t(offset) + uint64_t(nbytes) > s.nbytes())
    throw ValueError(std::string(name) + ": byte range [" + std::to_string(offset) + ", " +
                     std::to_string(offset + nbytes) + ") lies outside the storage of " +
                     std::to_string(s.nbytes()) + " bytes");
}

py::array contiguous_array(const py::object& obj, const char* name, bool writeable) {
  if (!py::isinstance<py::array>(obj))
    throw TypeError(std::string(name) + ": expected a NumPy array");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!(a.flags() & py::array::c_style))
    throw ValueError(std::string(name) + ": expected a C-contiguous array");
  if (writeable && !a.writeable()) throw ValueError(std::string(name) + ": array is read-only");
  return a;
}

void copy_from_host(const StoragePtr& dst, int64_t dst_offset, const py::object& src_obj) {
  require_cuda(*dst, "dst");
  py::array src = contiguous_array(src_obj, "src", false);
  const int64_t n = int64_t(src.nbytes());
  check_span(*dst, dst_offset, n, "dst");
  char* d = static_cast<char*>(dst->data()) + dst_offset;
  const void* h = src.data();
  py::gil_scoped_release release;
  cuda::memcpy_h2d(d, h, size_t(n), dst->device_id());
  // Python may free or overwrite `src` as soon as we return. A pageable source is staged before
  // cudaMemcpyAsync returns, a pinned one (e.g. a view of a pinned torch tensor) is not: wait.
  cuda::synchronize(dst->device_id());
}

void copy_to_host(const StoragePtr& src, int64_t src_offset, const py::object& dst_obj) {
  require_cuda(*src, "src");
  py::array dst = contiguous_array(dst_obj, "dst", true);
  const int64_t n = int64_t(dst.nbytes());
  check_span(*src, src_offset, n, "src");
  const char* s = static_cast<const char*>(src->data()) + src_offset;
  void* h = dst.mutable_data();
  py::gil_scoped_release release;
  cuda::memcpy_d2h(h, s, size_t(n), src->device_id());
}

void copy_device(const StoragePtr& dst, int64_t dst_offset, const StoragePtr& src,
                 int64_t src_offset, int64_t nbytes) {
  require_cuda(*dst, "dst");
  require_cuda(*src, "src");
  check_span(*dst, dst_offset, nbytes, "dst");
  check_span(*src, src_offset, nbytes, "src");
  char* d = static_cast<char*>(dst->data()) + dst_offset;
  const char* s = static_cast<const char*>(src->data()) + src_offset;
  py::gil_scoped_release release;
  cuda::memcpy_d2d(d, dst->device_id(), s, src->device_id(), size_t(nbytes));
}

// The DLPack / __cuda_array_interface__ stream encoding: 1 = legacy default stream, 2 = per-thread
// default stream, anything else a cudaStream_t. 0 is ambiguous and refused by the Python layer.
cudaStream_t decode_stream(uintptr_t s) {
  if (s == 1) return cudaStreamLegacy;
  if (s == 2) return cudaStreamPerThread;
  return reinterpret_cast<cudaStream_t>(s);
}

// ------------------------------------------------------------------------------------ export

// Owns what an exported capsule points to; one of the two managed structs is handed out.
struct ExportCtx {
  StoragePtr storage;
  std::vector<int64_t> shape, strides;
  bool fence = false;  // fence the consumer's stream back onto ours before the block is reused
  cudaStream_t consumer = nullptr;
  DLManagedTensor managed{};
  DLManagedTensorVersioned managed_v{};
};

void release_export(ExportCtx* ctx) {
  if (ctx->fence && ctx->storage->cached())
    cuda::fence_from(ctx->consumer, ctx->storage->device_id());
  delete ctx;  // may return the block to the cache
}

void export_deleter(DLManagedTensor* self) {
  release_export(static_cast<ExportCtx*>(self->manager_ctx));
}

void export_deleter_v(DLManagedTensorVersioned* self) {
  release_export(static_cast<ExportCtx*>(self->manager_ctx));
}

// Called when the capsule object dies. A consumer renames the capsule "used_..." when it takes
// ownership; otherwise nobody consumed it and the tensor is ours to release.
template <class Managed>
void capsule_destructor(PyObject* capsule, const char* name, const char* used_name) {
  if (PyCapsule_IsValid(capsule, used_name)) return;
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);  // GetPointer may set an error; keep the caller's
  auto* managed = static_cast<Managed*>(PyCapsule_GetPointer(capsule, name));
  if (managed) {
    if (managed->deleter) managed->deleter(managed);
  } else {
    PyErr_WriteUnraisable(capsule);
  }
  PyErr_Restore(type, value, traceback);
}

void legacy_capsule_destructor(PyObject* capsule) {
  capsule_destructor<DLManagedTensor>(capsule, dlpack::kCapsuleName, dlpack::kUsedCapsuleName);
}

void versioned_capsule_destructor(PyObject* capsule) {
  capsule_destructor<DLManagedTensorVersioned>(capsule, dlpack::kVersionedCapsuleName,
                                               dlpack::kUsedVersionedCapsuleName);
}

// A capsule viewing storage at byte_offset with the given shape and element strides:
// "dltensor_versioned" (DLPack 1.0, with the read-only and is-copied flags) when `versioned`,
// else "dltensor". consumer_stream: -1 for no synchronisation, else the consumer's stream (1, 2 or
// a pointer), which is made to wait for fastnn's.
py::object export_dlpack(const StoragePtr& storage, int64_t byte_offset,
                         const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                         int type_code, int bits, int64_t consumer_stream, bool versioned,
                         bool copied) {
  if (shape.size() != strides.size())
    throw ValueError("export_dlpack: shape and strides differ in length");
  if (bits <= 0 || bits % 8 != 0 || bits > 128 || type_code < 0 || type_code > 255)
    throw ValueError("export_dlpack: bad dtype code/bits");
  const int64_t item = bits / 8;
  int64_t lo = 0, hi = 0;
  bool empty = false;
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] < 0) throw ValueError("export_dlpack: negative extent in shape");
    if (shape[k] == 0) empty = true;
    const int64_t span = (shape[k] - 1) * strides[k];
    (span < 0 ? lo : hi) += span;
  }
  if (!empty) check_span(*storage, byte_offset + lo * item, (hi - lo + 1) * item, "export_dlpack");

  auto ctx = std::make_unique<ExportCtx>();
  ctx->storage = storage;
  ctx->shape = shape;
  ctx->strides = strides;
  dlpack::DLTensor t{};
  t.data = static_cast<char*>(storage->data()) + (empty ? 0 : byte_offset);
  t.device = {storage->device_type(), storage->device_id()};
  t.ndim = int32_t(shape.size());
  t.dtype = {uint8_t(type_code), uint8_t(bits), 1};
  t.shape = ctx->shape.empty() ? nullptr : ctx->shape.data();
  t.strides = ctx->strides.empty() ? nullptr : ctx->strides.data();
  t.byte_offset = 0;

  if (consumer_stream != -1 && storage->device_type() == dlpack::kDLCUDA) {
    if (consumer_stream == 0)
      throw ValueError("stream: 0 is ambiguous; use 1 for the legacy default stream");
    ctx->consumer = decode_stream(uintptr_t(consumer_stream));
    ctx->fence = true;
    cuda::fence_to(ctx->consumer, storage->device_id());
  }
  PyObject* cap;
  if (versioned) {
    DLManagedTensorVersioned& m = ctx->managed_v;
    m.version = {1, 0};
    m.manager_ctx = ctx.get();
    m.deleter = &export_deleter_v;
    m.flags = (storage->readonly() ? dlpack::kFlagReadOnly : 0) |
              (copied ? dlpack::kFlagIsCopied : 0);
    m.dl_tensor = t;
    cap = PyCapsule_New(&m, dlpack::kVersionedCapsuleName, &versioned_capsule_destructor);
  } else {
    // Legacy DLPack cannot say "read-only": refuse rather than hand out writable memory.
    if (storage->readonly())
      throw py::buffer_error("__dlpack__: this tensor is read-only, which only DLPack >= 1.0 can "
                             "express; pass max_version=(1, 0)");
    DLManagedTensor& m = ctx->managed;
    m.manager_ctx = ctx.get();
    m.deleter = &export_deleter;
    m.dl_tensor = t;
    cap = PyCapsule_New(&m, dlpack::kCapsuleName, &legacy_capsule_destructor);
  }
  if (!cap) throw py::error_already_set();
  ctx.release();  // owned by the capsule (or its consumer) from here on
  return py::reinterpret_steal<py::object>(cap);
}

// ------------------------------------------------------------------------------------ import

// Takes ownership of a "dltensor" or "dltensor_versioned" capsule (renaming it "used_...").
// Returns (storage, shape, strides, (code, bits, lanes), offset): strides in elements (computed
// when the producer gave none), offset the byte position of element 0 inside storage, which spans
// exactly the bytes the tensor can reach.
py::tuple import_dlpack(const py::object& capsule_obj) {
  PyObject* cap = capsule_obj.ptr();
  if (!PyCapsule_CheckExact(cap)) throw TypeError("from_dlpack: expected a DLPack capsule");
  if (PyCapsule_IsValid(cap, dlpack::kUsedCapsuleName) ||
      PyCapsule_IsValid(cap, dlpack::kUsedVersionedCapsuleName))
    throw ValueError("from_dlpack: this DLPack capsule was already consumed");
  DLManagedTensor* m = nullptr;
  DLManagedTensorVersioned* mv = nullptr;
  if (PyCapsule_IsValid(cap, dlpack::kCapsuleName)) {
    m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, dlpack::kCapsuleName));
  } else if (PyCapsule_IsValid(cap, dlpack::kVersionedCapsuleName)) {
    mv = static_cast<DLManagedTensorVersioned*>(
        PyCapsule_GetPointer(cap, dlpack::kVersionedCapsuleName));
    if (mv->version.major != 1)
      throw ValueError("from_dlpack: unsupported DLPack version " +
                       std::to_string(mv->version.major) + "." + std::to_string(mv->version.minor) +
                       " (fastnn reads 1.x)");
  } else {
    const char* name = PyCapsule_GetName(cap);
    PyErr_Clear();
    throw TypeError(std::string("from_dlpack: expected a capsule named 'dltensor' or "
                                "'dltensor_versioned', got '") + (name ? name : "(null)") + "'");
  }
  const dlpack::DLTensor& t = m ? m->dl_tensor : mv->dl_tensor;
  const bool readonly = mv && (mv->flags & dlpack::kFlagReadOnly);
  const int32_t dev = t.device.device_type;
  if (dev != dlpack::kDLCPU && dev != dlpack::kDLCUDA)
    throw ValueError("from_dlpack: unsupported DLPack device type " + std::to_string(dev) +
                     " (fastnn takes CPU (1) and CUDA (2) memory)");
  if (t.dtype.lanes != 1 || t.dtype.bits == 0 || t.dtype.bits % 8 != 0)
    throw TypeError("from_dlpack: unsupported DLPack dtype (code " + std::to_string(t.dtype.code) +
                    ", bits " + std::to_string(t.dtype.bits) + ", lanes " +
                    std::to_string(t.dtype.lanes) + ")");
  if (t.ndim < 0 || t.ndim > 64)
    throw ValueError("from_dlpack: bad ndim " + std::to_string(t.ndim));
  const int64_t item = t.dtype.bits / 8;
  std::vector<int64_t> shape(size_t(t.ndim)), strides(size_t(t.ndim));
  int64_t running = 1;
  bool empty = false;
  for (int k = t.ndim - 1; k >= 0; --k) {
    shape[size_t(k)] = t.shape[k];
    if (t.shape[k] < 0) throw ValueError("from_dlpack: negative extent in shape");
    if (t.shape[k] == 0) empty = true;
    strides[size_t(k)] = t.strides ? t.strides[k] : running;
    running *= t.shape[k];
  }
  int64_t lo = 0, hi = 0;
  for (int k = 0; k < t.ndim; ++k) {
    const int64_t span = (shape[size_t(k)] - 1) * strides[size_t(k)];
    (span < 0 ? lo : hi) += span;
  }
  char* first = static_cast<char*>(t.data) + t.byte_offset;
  void* base = empty ? first : first + lo * item;
  const size_t nbytes = empty ? 0 : size_t((hi - lo + 1) * item);
  if (!t.data && nbytes) throw ValueError("from_dlpack: null data pointer for a non-empty tensor");
  if (dev == dlpack::kDLCUDA) cuda::check_device(t.device.device_id);

  // Renamed first: should anything below fail, the producer's memory leaks instead of being
  // released twice (by the capsule and by the storage).
  if (PyCapsule_SetName(cap, m ? dlpack::kUsedCapsuleName : dlpack::kUsedVersionedCapsuleName) != 0)
    throw py::error_already_set();
  auto storage =
      std::make_shared<Storage>(base, nbytes, dev, t.device.device_id, m, mv, readonly);
  return py::make_tuple(storage, py::tuple(py::cast(shape)), py::tuple(py::cast(strides)),
                        py::make_tuple(int(t.dtype.code), int(t.dtype.bits), int(t.dtype.lanes)),
                        empty ? int64_t(0) : -lo * item);
}

py::dict memory_stats(int device) {
  const cuda::AllocatorStats s = cuda::allocator_stats(device);
  py::dict d;
  d["bytes_in_use"] = s.bytes_in_use;
  d["peak_bytes_in_use"] = s.peak_bytes_in_use;
  d["bytes_cached"] = s.bytes_cached;
  d["num_allocs"] = s.num_allocs;
  d["num_cache_hits"] = s.num_cache_hits;
  d["num_cuda_malloc"] = s.num_cuda_malloc;
  d["num_cuda_free"] = s.num_cuda_free;
  return d;
}

}  // namespace

void register_tensor_bindings(py::module_& m) {
  py::class_<Storage, StoragePtr>(m, "Storage",
                                  "A span of device or imported memory (internal: fastnn.Tensor)")
      .def_property_readonly("ptr", &Storage::ptr)
      .def_property_readonly("nbytes", &Storage::nbytes)
      .def_property_readonly("device_type", &Storage::device_type)
      .def_property_readonly("device_id", &Storage::device_id)
      .def_property_readonly("device", [](const Storage& s) {
        return s.device_type() == dlpack::kDLCUDA ? "cuda:" + std::to_string(s.device_id())
                                                  : std::string("cpu");
      })
      .def_property_readonly("readonly", &Storage::readonly,
                             "True when a DLPack >= 1.0 producer marked the memory read-only")
      .def_property_readonly("cached", &Storage::cached,
                             "True for a block of fastnn's caching allocator, False for memory "
                             "imported through DLPack")
      .def("__repr__", [](const Storage& s) {
        return "<fastnn Storage " + std::to_string(s.nbytes()) + " bytes at " +
               std::to_string(s.ptr()) + ", DLPack device (" + std::to_string(s.device_type()) +
               ", " + std::to_string(s.device_id()) + ")>";
      });
  m.def("empty", &empty, py::arg("nbytes"), py::arg("device"),
        "Uninitialised device storage from the caching allocator");
  m.def("copy_from_host", &copy_from_host, py::arg("dst"), py::arg("dst_offset"), py::arg("src"),
        "Copies a C-contiguous array into dst at dst_offset on fastnn's stream; waits for it");
  m.def("copy_to_host", &copy_to_host, py::arg("src"), py::arg("src_offset"), py::arg("dst"),
        "Copies src at src_offset into a C-contiguous writable array; waits for the copy");
  m.def("copy_device", &copy_device, py::arg("dst"), py::arg("dst_offset"), py::arg("src"),
        py::arg("src_offset"), py::arg("nbytes"), "Device-to-device (or peer) copy, asynchronous");
  m.def("synchronize", [](int device) { cuda::synchronize(device); }, py::arg("device"),
        py::call_guard<py::gil_scoped_release>(), "Waits for fastnn's stream on `device`");
  m.def("stream", [](int device) { return reinterpret_cast<uintptr_t>(cuda::stream(device)); },
        py::arg("device"), "fastnn's cudaStream_t on `device`, as an integer");
  m.def("stream_wait", [](int64_t consumer, int device) {
          if (consumer == 0)
            throw ValueError("stream: 0 is ambiguous; use 1 for the legacy default stream");
          cuda::fence_to(decode_stream(uintptr_t(consumer)), device);
        }, py::arg("consumer"), py::arg("device"),
        "Makes stream `consumer` (1, 2 or a pointer) wait for the work on fastnn's stream");
  m.def("memory_stats", &memory_stats, py::arg("device"), "Caching allocator counters");
  m.def("empty_cache", [](int device) { cuda::empty_cache(device); }, py::arg("device") = -1,
        py::call_guard<py::gil_scoped_release>(), "cudaFrees the cached blocks (all devices: -1)");
  m.def("size_class", [](int64_t n) { return cuda::size_class(size_t(n < 0 ? 0 : n)); },
        py::arg("nbytes"));
  m.def("export_dlpack", &export_dlpack, py::arg("storage"), py::arg("byte_offset"),
        py::arg("shape"), py::arg("strides"), py::arg("type_code"), py::arg("bits"),
        py::arg("consumer_stream"), py::arg("versioned") = false, py::arg("copied") = false,
        "A DLPack capsule viewing storage (zero-copy): 'dltensor_versioned' when versioned");
  m.def("import_dlpack", &import_dlpack, py::arg("capsule"),
        "Consumes a 'dltensor' or 'dltensor_versioned' capsule: (storage, shape, strides, "
        "(code, bits, lanes), offset)");
}

}  // namespace fastnn
