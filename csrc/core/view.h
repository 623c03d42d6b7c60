// The one argument view: how an op receives an array, whichever backend and whichever Python
// object (NumPy array or fastnn.Tensor) it came from. The bindings build it (csrc/bindings owns
// the converter); the kernels read pointers, shapes and strides from it. A view owns nothing: the
// caller keeps the memory alive for the call. Header-only, no Python or CUDA types.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace fastnn {

enum class DType : uint8_t { Float32, Float64, Int64, UInt8 };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
  }
  return "?";
}

inline int64_t dtype_size(DType d) {
  switch (d) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
    case DType::UInt8: return 1;
  }
  return 0;
}

// The DType of a C++ element type: dtype_of<float>() == DType::Float32.
template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::Float32; }
template <>
constexpr DType dtype_of<double>() { return DType::Float64; }
template <>
constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <>
constexpr DType dtype_of<uint8_t>() { return DType::UInt8; }

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;  // the CUDA ordinal; 0 for the CPU
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

struct View {
  static constexpr int kMaxDims = 8;

  void* data = nullptr;
  DType dtype = DType::Float32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};  // in elements, not bytes; any sign
  Device device;

  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= shape[d];
    return n;
  }

  // C-contiguous (row-major, no gaps). Dimensions of size 1 may carry any stride, and an empty
  // view is contiguous, as NumPy has it.
  bool is_contiguous() const {
    int64_t expected = 1;
    for (int d = ndim - 1; d >= 0; --d) {
      if (shape[d] == 0) return true;
      if (shape[d] != 1 && strides[d] != expected) return false;
      expected *= shape[d];
    }
    return true;
  }

  // The data as T*; TypeError naming the argument when the view holds another dtype.
  template <class T>
  T* as(const char* name) const {
    if (dtype != dtype_of<T>())
      throw TypeError(std::string(name) + ": expected " + dtype_name(dtype_of<T>()) + ", got " +
                      dtype_name(dtype));
    return static_cast<T*>(data);
  }
};

// A contiguous view over `data` with the given shape (the bindings' converter does the general
// case; this is for C++ callers and tests).
template <class T>
View contiguous_view(T* data, std::initializer_list<int64_t> shape, Device device = Device()) {
  View v;
  v.data = const_cast<void*>(static_cast<const void*>(data));
  v.dtype = dtype_of<typename std::remove_const<T>::type>();
  v.device = device;
  if (shape.size() > size_t(View::kMaxDims))
    throw ValueError("view: at most " + std::to_string(View::kMaxDims) + " dimensions, got " +
                     std::to_string(shape.size()));
  v.ndim = int(shape.size());
  int d = 0;
  for (int64_t s : shape) v.shape[d++] = s;
  int64_t stride = 1;
  for (d = v.ndim - 1; d >= 0; --d) {
    v.strides[d] = stride;
    stride *= v.shape[d];
  }
  return v;
}

}  // namespace fastnn
