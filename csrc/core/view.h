// The one argument view: how an op receives an array, whichever backend and whichever Python
// object (NumPy array or fastnn.Tensor) it came from. The bindings build it (csrc/bindings/
// convert.h is the converter); the kernels read pointers, shapes and strides from it. A view owns
// nothing: the caller keeps the memory alive for the call. Header-only, no Python or CUDA types.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace fastnn {

// The element types the kernels take; Other stands for any other (refused with its name).
enum class DType : uint8_t { Float32, Float64, Int64, UInt8, Other };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    default: return "unsupported";
  }
}

// The DType of a C++ element type: dtype_of<float>() == DType::Float32.
template <class T>
constexpr DType dtype_of() {
  using U = std::remove_const_t<T>;
  if constexpr (std::is_same_v<U, float>) return DType::Float32;
  else if constexpr (std::is_same_v<U, double>) return DType::Float64;
  else if constexpr (std::is_same_v<U, int64_t>) return DType::Int64;
  else if constexpr (std::is_same_v<U, uint8_t>) return DType::UInt8;
  else return DType::Other;
}

enum class DeviceType : uint8_t { Cpu, Cuda };

struct View {
  void* data = nullptr;
  DType dtype = DType::Other;
  std::string dtype_name;        // the producer's name ("float32", "int32"), for messages
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements, not bytes
  DeviceType device = DeviceType::Cpu;
  int device_index = 0;          // the CUDA ordinal; 0 on the CPU
  bool readonly = false;

  int ndim() const { return int(shape.size()); }

  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }

  // C order without gaps. Dimensions of size 1 may carry any stride, and an empty view is
  // contiguous, as NumPy has it.
  bool contiguous() const {
    if (size() == 0) return true;
    int64_t expected = 1;
    for (int i = ndim() - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != expected) return false;
      expected *= shape[i];
    }
    return true;
  }

  template <class T>
  T* ptr() const { return static_cast<T*>(data); }
};

}  // namespace fastnn
