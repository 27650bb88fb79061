// bindings/bindings.h — shared pieces of the pybind11 module medkern._C: one register_* per op
// family (each in its own file), the list of ops with a compiled CUDA kernel, and small
// converters. Bindings stay thin: they check arguments, pick CPU or CUDA, release the GIL.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "medkern/checks.h"
#include "medkern/tensor_view.h"

namespace medkern::bindings {

namespace py = pybind11;

void register_core(py::module_& m);
void register_conv(py::module_& m);
void register_pooling(py::module_& m);
void register_batch_norm(py::module_& m);
void register_group_norm(py::module_& m);
void register_activation(py::module_& m);
void register_linear(py::module_& m);
void register_preprocess(py::module_& m);
void register_filter(py::module_& m);

void register_constants(py::module_& m);

// Every _C op that may have a CUDA kernel, named once: _C.KERNEL_OP_NAMES exports the names, each
// family's register_* lists its compiled kernels by these values (build_info()["cuda_ops"]), and
// Python's fallback checks reject any other name, so a typo cannot silently fall back to torch.
enum class KernelOp : int {
  Conv2dForward, Conv2dBackwardInput, Conv2dBackwardWeight, Conv2dBackwardBias,
  Conv3dForward, Conv3dBackwardInput, Conv3dBackwardWeight, Conv3dBackwardBias,
  ConvTranspose2dForward, ConvTranspose2dBackwardInput, ConvTranspose2dBackwardWeight,
  ConvTranspose3dForward, ConvTranspose3dBackwardInput, ConvTranspose3dBackwardWeight,
  LinearForward, LinearBackwardInput, LinearBackwardWeight, LinearBackwardBias,
  MaxPool2dForward, MaxPool2dBackward, AvgPool2dForward, AvgPool2dBackward,
  MaxPool3dForward, MaxPool3dBackward, AvgPool3dForward, AvgPool3dBackward,
  BatchNormForward, BatchNormBackward, ReluForward, ReluBackward,
  LeakyReluForward, LeakyReluBackward, GroupNormForward, GroupNormBackward,
  ResampleIntensity, NormalizeIntensity, FilterAxis,
};

// The _C function name of each op; nullptr past the last (see medkern/enum_names.h).
constexpr const char* kernel_op_name(KernelOp op) {
  switch (op) {
    case KernelOp::Conv2dForward: return "conv2d_forward";
    case KernelOp::Conv2dBackwardInput: return "conv2d_backward_input";
    case KernelOp::Conv2dBackwardWeight: return "conv2d_backward_weight";
    case KernelOp::Conv2dBackwardBias: return "conv2d_backward_bias";
    case KernelOp::Conv3dForward: return "conv3d_forward";
    case KernelOp::Conv3dBackwardInput: return "conv3d_backward_input";
    case KernelOp::Conv3dBackwardWeight: return "conv3d_backward_weight";
    case KernelOp::Conv3dBackwardBias: return "conv3d_backward_bias";
    case KernelOp::ConvTranspose2dForward: return "conv_transpose2d_forward";
    case KernelOp::ConvTranspose2dBackwardInput: return "conv_transpose2d_backward_input";
    case KernelOp::ConvTranspose2dBackwardWeight: return "conv_transpose2d_backward_weight";
    case KernelOp::ConvTranspose3dForward: return "conv_transpose3d_forward";
    case KernelOp::ConvTranspose3dBackwardInput: return "conv_transpose3d_backward_input";
    case KernelOp::ConvTranspose3dBackwardWeight: return "conv_transpose3d_backward_weight";
    case KernelOp::LinearForward: return "linear_forward";
    case KernelOp::LinearBackwardInput: return "linear_backward_input";
    case KernelOp::LinearBackwardWeight: return "linear_backward_weight";
    case KernelOp::LinearBackwardBias: return "linear_backward_bias";
    case KernelOp::MaxPool2dForward: return "max_pool2d_forward";
    case KernelOp::MaxPool2dBackward: return "max_pool2d_backward";
    case KernelOp::AvgPool2dForward: return "avg_pool2d_forward";
    case KernelOp::AvgPool2dBackward: return "avg_pool2d_backward";
    case KernelOp::MaxPool3dForward: return "max_pool3d_forward";
    case KernelOp::MaxPool3dBackward: return "max_pool3d_backward";
    case KernelOp::AvgPool3dForward: return "avg_pool3d_forward";
    case KernelOp::AvgPool3dBackward: return "avg_pool3d_backward";
    case KernelOp::BatchNormForward: return "batch_norm_forward";
    case KernelOp::BatchNormBackward: return "batch_norm_backward";
    case KernelOp::ReluForward: return "relu_forward";
    case KernelOp::ReluBackward: return "relu_backward";
    case KernelOp::LeakyReluForward: return "leaky_relu_forward";
    case KernelOp::LeakyReluBackward: return "leaky_relu_backward";
    case KernelOp::GroupNormForward: return "group_norm_forward";
    case KernelOp::GroupNormBackward: return "group_norm_backward";
    case KernelOp::ResampleIntensity: return "resample_intensity";
    case KernelOp::NormalizeIntensity: return "normalize_intensity";
    case KernelOp::FilterAxis: return "filter_axis";
  }
  return nullptr;
}

// Names of ops whose CUDA kernel is compiled into this build (medkern.info()["cuda_ops"]).
std::vector<std::string>& cuda_ops();
inline void add_cuda_ops(std::initializer_list<KernelOp> ops) {
  for (KernelOp op : ops) cuda_ops().emplace_back(kernel_op_name(op));
}

using OptionalView = std::optional<TensorView>;
inline const TensorView* get(const OptionalView& v) { return v ? &*v : nullptr; }
inline Stream to_stream(std::uintptr_t s) { return reinterpret_cast<Stream>(s); }

// Raised when a CUDA tensor reaches an op compiled without its CUDA kernel; the Python layer
// normally falls back to torch before this, so seeing it means a direct _C call.
[[noreturn]] inline void no_cuda_kernel(KernelOp op) {
  throw NotImplementedError(concat("medkern was built without a CUDA kernel for ", kernel_op_name(op),
                                   "; medkern.info()['cuda_ops'] lists those compiled in"));
}

inline std::vector<int64_t> shape_of(const TensorView& v) { return {v.shape.begin(), v.shape.begin() + v.ndim}; }

// Floating dtypes a kernel runs on: the CPU kernels take float32/float64; the CUDA kernels also
// take float16/bfloat16 (accumulating in float), so a CUDA view may carry those too.
inline void check_kernel_dtype(const TensorView& v, const char* name) {
  if (v.is_cuda())
    check_dtype(v, name, {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16});
  else
    check_floating(v, name);
}

// Per-channel tensors of a normalization share the input's dtype, except that float16/bfloat16
// activations on CUDA may come with float32 parameters and statistics (torch's mixed precision).
inline void check_param_dtype(const TensorView& input, const TensorView& v, const char* name) {
  const bool low_precision = input.dtype == DType::Float16 || input.dtype == DType::BFloat16;
  if (input.is_cuda() && low_precision && v.dtype == DType::Float32) return;
  check_same_dtype(input, "input", v, name);
}

// A non-negative pair such as stride or padding, checked and named.
inline std::array<int64_t, 2> pair_arg(const std::vector<int64_t>& v, const char* name, int64_t minimum) {
  MEDKERN_CHECK_VALUE(v.size() == 2, "argument '", name, "' must have 2 values (h, w), got ", v.size());
  for (int64_t x : v)
    MEDKERN_CHECK_VALUE(x >= minimum, "argument '", name, "' must be >= ", minimum, ", got (", v[0], ", ", v[1], ")");
  return {v[0], v[1]};
}

}  // namespace medkern::bindings
