// medkern/tensor_view.h — the one way arrays cross into the C++ core: a raw pointer with
// dtype, shape, strides (in elements) and device. No torch and no numpy here, so the same
// compiled core serves torch, numpy and cupy callers and any torch version.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "medkern/errors.h"

namespace medkern {

enum class DType : int {
  Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3,
  UInt8 = 4, Int8 = 5, Int16 = 6, UInt16 = 7, Int32 = 8, Int64 = 9, Bool = 10,
};

// numpy's name of each dtype, nullptr for a code outside the enum. The switch has no default, so
// a dtype added without a name fails the build (-Werror=switch); _C.DTYPE_CODES and the dtype
// check of _C.TensorView are read from this function (see medkern/enum_names.h).
constexpr const char* dtype_name_or_null(DType d) {
  switch (d) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::UInt8: return "uint8";
    case DType::Int8: return "int8";
    case DType::Int16: return "int16";
    case DType::UInt16: return "uint16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
  }
  return nullptr;
}

inline const char* dtype_name(DType d) {
  const char* name = dtype_name_or_null(d);
  return name ? name : "unknown";
}

inline int64_t dtype_size(DType d) {
  switch (d) {
    case DType::Float64: case DType::Int64: return 8;
    case DType::Float32: case DType::Int32: return 4;
    case DType::Float16: case DType::BFloat16: case DType::Int16: case DType::UInt16: return 2;
    default: return 1;
  }
}

enum class DeviceType : int { CPU = 0, CUDA = 1 };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && (type == DeviceType::CPU || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const { return type == DeviceType::CPU ? std::string("cpu") : "cuda:" + std::to_string(index); }
};

// CUDA stream handle as an opaque pointer (cudaStream_t); nullptr = the legacy default stream.
using Stream = void*;

constexpr int kMaxDims = 8;

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::Float32;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> strides{};  // in elements, may be 0 (broadcast) or negative
  Device device{};

  int64_t size(int d) const { return shape[d < 0 ? d + ndim : d]; }
  int64_t stride(int d) const { return strides[d < 0 ? d + ndim : d]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  bool is_contiguous() const {
    int64_t expected = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != expected) return false;
      expected *= shape[i];
    }
    return true;
  }
  bool is_cuda() const { return device.type == DeviceType::CUDA; }
  template <class T> T* ptr() const { return static_cast<T*>(data); }
  std::string shape_string() const {
    std::string s = "(";
    for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (ndim == 1 ? ",)" : ")");
  }
};

}  // namespace medkern
