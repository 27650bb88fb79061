// bindings/group_norm_bindings.cpp — _C.group_norm_forward / group_norm_backward (instance norm
// is groups = C). Checks the channel split, every per-channel and per-(n, group) tensor against
// the input, and the activation code before the GIL is released.
#include "bindings/bindings.h"
#include "medkern/enum_names.h"
#include "medkern/group_norm.h"

namespace medkern::bindings {
namespace {

GroupNormParams group_norm_params(const TensorView& input, int64_t groups, double eps, int activation,
                                  double negative_slope) {
  check_kernel_dtype(input, "input");
  MEDKERN_CHECK_VALUE(input.ndim >= 2, "argument 'input' must be at least 2-D (N, C, *), got shape ",
                      input.shape_string());
  check_not_empty(input, "input");
  const int64_t C = input.size(1);
  MEDKERN_CHECK_VALUE(groups >= 1 && C % groups == 0, "argument 'num_groups' is ", groups,
                      ": expected a positive divisor of the input's ", C, " channels (shape ", input.shape_string(),
                      ")");
  MEDKERN_CHECK_VALUE(eps >= 0, "argument 'eps' must be non-negative, got ", eps);
  check_enum_code(activation, "activation", activation_name);
  MEDKERN_CHECK_VALUE(input.numel() / (input.size(0) * groups) > 0, "argument 'input' has empty groups");
  GroupNormParams p;
  p.groups = groups;
  p.eps = eps;
  p.activation = static_cast<Activation>(activation);
  p.negative_slope = negative_slope;
  return p;
}

void check_channel_param(const OptionalView& v, const char* name, const TensorView& input) {
  if (!v) return;
  check_param_dtype(input, *v, name);
  check_same_device(input, "input", *v, name);
  check_shape(*v, name, {input.size(1)});
}

// mean / invstd: dense (N, groups), the input's dtype (float32 for float16/bfloat16 on CUDA).
void check_group_statistics(const TensorView& v, const char* name, const TensorView& input, int64_t groups) {
  check_param_dtype(input, v, name);
  check_same_device(input, "input", v, name);
  check_shape(v, name, {input.size(0), groups});
  check_contiguous(v, name);
}

}  // namespace

void register_group_norm(py::module_& m) {
#ifdef MEDKERN_WITH_CUDA
  add_cuda_ops({KernelOp::GroupNormForward, KernelOp::GroupNormBackward});
#endif
  m.def(kernel_op_name(KernelOp::GroupNormForward),
        [](const TensorView& input, const OptionalView& weight, const OptionalView& bias, const TensorView& output,
           const TensorView& mean, const TensorView& invstd, int64_t groups, double eps, int activation,
           double negative_slope, std::uintptr_t stream) {
          const GroupNormParams p = group_norm_params(input, groups, eps, activation, negative_slope);
          check_channel_param(weight, "weight", input);
          check_channel_param(bias, "bias", input);
          check_output(output, "output", input, shape_of(input));
          check_no_overlap(output, "output", input, "input");
          check_group_statistics(mean, "mean", input, groups);
          check_group_statistics(invstd, "invstd", input, groups);
          if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::group_norm_forward(input, get(weight), get(bias), output, mean, invstd, p, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::GroupNormForward);
#endif
          } else {
            cpu::group_norm_forward(input, get(weight), get(bias), output, mean, invstd, p);
          }
        },
        py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("output"), py::arg("mean"), py::arg("invstd"),
        py::arg("groups"), py::arg("eps"), py::arg("activation") = 0, py::arg("negative_slope") = 0.01,
        py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>());

  m.def(kernel_op_name(KernelOp::GroupNormBackward),
        [](const TensorView& grad_output, const TensorView& input, const TensorView& mean, const TensorView& invstd,
           const OptionalView& weight, const OptionalView& bias, const TensorView& channel_sums,
           const OptionalView& grad_input, const OptionalView& grad_weight, const OptionalView& grad_bias,
           int64_t groups, int activation, double negative_slope, std::uintptr_t stream) {
          const GroupNormParams p = group_norm_params(input, groups, 0.0, activation, negative_slope);
          const int64_t N = input.size(0), C = input.size(1);
          check_same_dtype(input, "input", grad_output, "grad_output");
          check_same_device(input, "input", grad_output, "grad_output");
          check_shape(grad_output, "grad_output", shape_of(input));
          check_group_statistics(mean, "mean", input, groups);
          check_group_statistics(invstd, "invstd", input, groups);
          check_channel_param(weight, "weight", input);
          check_channel_param(bias, "bias", input);
          check_dtype(channel_sums, "channel_sums", {DType::Float64});
          check_same_device(input, "input", channel_sums, "channel_sums");
          check_shape(channel_sums, "channel_sums", {2, N, C});
          check_contiguous(channel_sums, "channel_sums");
          if (grad_input) {
            check_output(*grad_input, "grad_input", input, shape_of(input));
            check_no_overlap(*grad_input, "grad_input", input, "input");
            check_no_overlap(*grad_input, "grad_input", grad_output, "grad_output");
          }
          for (const auto& [v, name] : {std::pair{&grad_weight, "grad_weight"}, std::pair{&grad_bias, "grad_bias"}}) {
            if (!*v) continue;
            check_param_dtype(input, **v, name);
            check_same_device(input, "input", **v, name);
            check_shape(**v, name, {C});
          }
          if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::group_norm_backward(grad_output, input, mean, invstd, get(weight), get(bias), channel_sums,
                                      get(grad_input), get(grad_weight), get(grad_bias), p, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::GroupNormBackward);
#endif
          } else {
            cpu::group_norm_backward(grad_output, input, mean, invstd, get(weight), get(bias), channel_sums,
                                     get(grad_input), get(grad_weight), get(grad_bias), p);
          }
        },
        py::arg("grad_output"), py::arg("input"), py::arg("mean"), py::arg("invstd"), py::arg("weight"),
        py::arg("bias"), py::arg("channel_sums"), py::arg("grad_input"), py::arg("grad_weight"),
        py::arg("grad_bias"), py::arg("groups"), py::arg("activation") = 0, py::arg("negative_slope") = 0.01,
        py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>());
}

}  // namespace medkern::bindings
