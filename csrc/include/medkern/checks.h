// medkern/checks.h — argument checks shared by every op family. Each names the argument and
// prints the actual and expected values, because "shape mismatch" alone helps nobody.
#pragma once
#include <initializer_list>
#include <vector>

#include "medkern/tensor_view.h"

namespace medkern {

inline void check_dtype(const TensorView& v, const char* name, std::initializer_list<DType> allowed) {
  for (DType d : allowed) if (v.dtype == d) return;
  std::string list;
  for (DType d : allowed) list += (list.empty() ? "" : ", ") + std::string(dtype_name(d));
  throw TypeError(concat("argument '", name, "' has dtype ", dtype_name(v.dtype), "; expected one of: ", list));
}

inline void check_floating(const TensorView& v, const char* name) {
  check_dtype(v, name, {DType::Float32, DType::Float64});
}

inline void check_same_dtype(const TensorView& a, const char* a_name, const TensorView& b, const char* b_name) {
  MEDKERN_CHECK_TYPE(a.dtype == b.dtype, "argument '", b_name, "' has dtype ", dtype_name(b.dtype),
                     " but '", a_name, "' has dtype ", dtype_name(a.dtype), "; they must match");
}

inline void check_same_device(const TensorView& a, const char* a_name, const TensorView& b, const char* b_name) {
  MEDKERN_CHECK_VALUE(a.device == b.device, "argument '", b_name, "' is on ", b.device.str(), " but '", a_name,
                      "' is on ", a.device.str(), "; they must be on the same device");
}

inline void check_ndim(const TensorView& v, const char* name, int ndim, const char* layout = "") {
  MEDKERN_CHECK_VALUE(v.ndim == ndim, "argument '", name, "' must be ", ndim, "-D", (*layout ? " " : ""), layout,
                      ", got shape ", v.shape_string());
}

inline void check_shape(const TensorView& v, const char* name, const std::vector<int64_t>& expected) {
  bool ok = v.ndim == static_cast<int>(expected.size());
  for (int i = 0; ok && i < v.ndim; ++i) ok = v.shape[i] == expected[i];
  if (ok) return;
  std::string e = "(";
  for (size_t i = 0; i < expected.size(); ++i) e += (i ? ", " : "") + std::to_string(expected[i]);
  e += expected.size() == 1 ? ",)" : ")";
  throw ValueError(concat("argument '", name, "' has shape ", v.shape_string(), "; expected ", e));
}

inline void check_not_empty(const TensorView& v, const char* name) {
  MEDKERN_CHECK_VALUE(v.numel() > 0, "argument '", name, "' is empty (shape ", v.shape_string(), ")");
}

inline void check_cpu(const TensorView& v, const char* name) {
  MEDKERN_CHECK_VALUE(v.device.type == DeviceType::CPU, "argument '", name, "' is on ", v.device.str(),
                      "; this kernel runs on the CPU");
}

inline void check_contiguous(const TensorView& v, const char* name) {
  MEDKERN_CHECK_VALUE(v.is_contiguous(), "argument '", name, "' must be contiguous (shape ", v.shape_string(), ")");
}

// Output buffers are written in place; they must be dense so no element aliases another.
inline void check_output(const TensorView& out, const char* name, const TensorView& like, const std::vector<int64_t>& shape) {
  check_same_dtype(like, "input", out, name);
  check_same_device(like, "input", out, name);
  check_shape(out, name, shape);
  check_contiguous(out, name);
}

}  // namespace medkern
