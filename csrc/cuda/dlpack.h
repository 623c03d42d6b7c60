// The DLPack ABI ("dltensor" capsules of v0.8 and "dltensor_versioned" ones of v1.0), written
// from the public specification (https://dmlc.github.io/dlpack/latest/c_api.html). Only the
// layout matters: these structs are read and written by other libraries (PyTorch, CuPy, NumPy,
// JAX), so field order and widths must match the standard exactly.
#pragma once
#include <cstdint>

namespace fastnn {
namespace dlpack {

enum DeviceType : int32_t {
  kDLCPU = 1,
  kDLCUDA = 2,
  kDLCUDAHost = 3,     // pinned host memory
  kDLCUDAManaged = 13,
};

enum TypeCode : uint8_t {
  kDLInt = 0,
  kDLUInt = 1,
  kDLFloat = 2,
  kDLBfloat = 4,
  kDLComplex = 5,
  kDLBool = 6,
};

struct DLDevice {
  int32_t device_type;  // DeviceType
  int32_t device_id;
};

struct DLDataType {
  uint8_t code;   // TypeCode
  uint8_t bits;   // 8, 16, 32, 64
  uint16_t lanes; // 1 for every array fastnn deals in
};

// shape and strides have `ndim` entries; strides are in elements and may be NULL, which means
// compact row-major. The element at index i lives at (char*)data + byte_offset + itemsize * sum
// i_k * strides_k.
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
};

// The producer owns everything reachable from dl_tensor; the consumer calls deleter(self) exactly
// once when it no longer needs the memory.
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

// DLPack >= 1.0: the same tensor with a version and flags, exchanged as "dltensor_versioned"
// capsules when the consumer passes max_version >= (1, 0).
struct DLPackVersion {
  uint32_t major;
  uint32_t minor;
};

constexpr uint64_t kFlagReadOnly = 1ull << 0;  // the consumer must not write
constexpr uint64_t kFlagIsCopied = 1ull << 1;  // the producer made a copy for this export

struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(DLManagedTensorVersioned* self);
  uint64_t flags;
  DLTensor dl_tensor;
};

// PyCapsule names: a fresh capsule is "dltensor"; the consumer renames it "used_dltensor" so that
// the capsule's destructor knows the deleter is no longer its business.
constexpr const char* kCapsuleName = "dltensor";
constexpr const char* kUsedCapsuleName = "used_dltensor";
constexpr const char* kVersionedCapsuleName = "dltensor_versioned";
constexpr const char* kUsedVersionedCapsuleName = "used_dltensor_versioned";

}  // namespace dlpack
}  // namespace fastnn
