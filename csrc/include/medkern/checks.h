// medkern/checks.h — argument checks shared by every op family. Each names the argument and
// prints the actual and expected values, because "shape mismatch" alone helps nobody.
#pragma once
#include <cstdint>
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

// The bytes a view can touch, [begin, end); empty for a view without elements. Negative strides
// reach below the data pointer.
struct ByteRange {
  std::uintptr_t begin = 0, end = 0;
};

inline ByteRange byte_range(const TensorView& v) {
  if (v.numel() == 0) return {};
  int64_t low = 0, high = 0;  // element offsets of the first and last elements in memory
  for (int d = 0; d < v.ndim; ++d) {
    const int64_t span = (v.shape[d] - 1) * v.strides[d];
    (span < 0 ? low : high) += span;
  }
  const auto base = reinterpret_cast<std::uintptr_t>(v.data);
  const int64_t item = dtype_size(v.dtype);
  // unsigned wrap-around makes base + a negative offset exact
  return {base + static_cast<std::uintptr_t>(low * item), base + static_cast<std::uintptr_t>((high + 1) * item)};
}

// Whether two views on one device may share a byte: their byte ranges intersect. Comparing
// ranges, not base pointers, catches a shifted view of the same buffer (x[..., 1:]); views that
// interleave without sharing an element (x[::2] and x[1::2]) count as overlapping too.
inline bool views_overlap(const TensorView& a, const TensorView& b) {
  if (a.device != b.device) return false;
  const ByteRange ra = byte_range(a), rb = byte_range(b);
  return ra.begin < ra.end && rb.begin < rb.end && ra.begin < rb.end && rb.begin < ra.end;
}

// An output written while `input` is still being read must not share memory with it.
inline void check_no_overlap(const TensorView& output, const char* output_name, const TensorView& input,
                             const char* input_name) {
  MEDKERN_CHECK_VALUE(!views_overlap(output, input), "argument '", output_name, "' (shape ", output.shape_string(),
                      ") overlaps the memory of '", input_name, "' (shape ", input.shape_string(),
                      "), which the kernel still reads while writing it; pass a separate buffer");
}

// Element-wise ops may also write in place: an output that is exactly the input view (same
// pointer, dtype, shape and strides) is fine, any other overlap is not.
inline void check_in_place_or_no_overlap(const TensorView& output, const char* output_name, const TensorView& input,
                                         const char* input_name) {
  bool same = output.data == input.data && output.dtype == input.dtype && output.ndim == input.ndim &&
              output.device == input.device;
  for (int d = 0; same && d < output.ndim; ++d)
    same = output.shape[d] == input.shape[d] && (output.shape[d] == 1 || output.strides[d] == input.strides[d]);
  if (!same) check_no_overlap(output, output_name, input, input_name);
}

}  // namespace medkern
