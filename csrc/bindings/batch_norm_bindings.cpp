// bindings/batch_norm_bindings.cpp — _C.batch_norm_forward / batch_norm_backward, optionally with
// a fused activation. Checks every tensor against the input's channel count, dtype and device
// (weight, bias and running stats are optional; running stats are required in eval mode) and the
// activation code before the GIL is released.
#include "bindings/bindings.h"
#include "medkern/batch_norm.h"
#include "medkern/enum_names.h"

namespace medkern::bindings {
namespace {

int64_t check_bn_input(const TensorView& input, const char* name) {
  check_kernel_dtype(input, name);
  MEDKERN_CHECK_VALUE(input.ndim >= 2, "argument '", name, "' must be at least 2-D (N, C, *), got shape ",
                      input.shape_string());
  MEDKERN_CHECK_VALUE(input.size(0) > 0, "argument '", name, "' has an empty batch (shape ", input.shape_string(), ")");
  check_not_empty(input, name);
  return input.size(1);
}

void check_channel_vector(const OptionalView& v, const char* name, const TensorView& input, int64_t channels) {
  if (!v) return;
  check_param_dtype(input, *v, name);
  check_same_device(input, "input", *v, name);
  check_shape(*v, name, {channels});
}

// A per-channel output (saved statistics, parameter gradients): dense, on the input's device.
void check_channel_output(const TensorView& v, const char* name, const TensorView& input, int64_t channels) {
  check_param_dtype(input, v, name);
  check_same_device(input, "input", v, name);
  check_shape(v, name, {channels});
  check_contiguous(v, name);
}

}  // namespace

void register_batch_norm(py::module_& m) {
#ifdef MEDKERN_WITH_CUDA
  add_cuda_ops({KernelOp::BatchNormForward, KernelOp::BatchNormBackward});
#endif
  m.def(kernel_op_name(KernelOp::BatchNormForward),
        [](const TensorView& input, const OptionalView& weight, const OptionalView& bias,
           const OptionalView& running_mean, const OptionalView& running_var, const TensorView& output,
           const TensorView& save_mean, const TensorView& save_invstd, bool training, double momentum, double eps,
           std::uintptr_t stream, int activation, double negative_slope) {
          const int64_t C = check_bn_input(input, "input");
          check_channel_vector(weight, "weight", input, C);
          check_channel_vector(bias, "bias", input, C);
          check_channel_vector(running_mean, "running_mean", input, C);
          check_channel_vector(running_var, "running_var", input, C);
          MEDKERN_CHECK_VALUE(static_cast<bool>(running_mean) == static_cast<bool>(running_var),
                              "arguments 'running_mean' and 'running_var' must be given together");
          MEDKERN_CHECK_VALUE(training || running_mean, "argument 'running_mean' is required in eval mode "
                              "(training=False)");
          MEDKERN_CHECK_VALUE(!training || input.numel() / C > 1, "argument 'input' has shape ",
                              input.shape_string(), ": expected more than 1 value per channel when training");
          MEDKERN_CHECK_VALUE(eps >= 0, "argument 'eps' must be non-negative, got ", eps);
          check_output(output, "output", input, shape_of(input));
          check_channel_output(save_mean, "save_mean", input, C);
          check_channel_output(save_invstd, "save_invstd", input, C);
          BatchNormParams p;
          p.training = training;
          p.momentum = momentum;
          p.eps = eps;
          check_enum_code(activation, "activation", activation_name);
          p.activation = static_cast<Activation>(activation);
          p.negative_slope = negative_slope;
          if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::batch_norm_forward(input, get(weight), get(bias), get(running_mean), get(running_var), output,
                                     save_mean, save_invstd, p, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::BatchNormForward);
#endif
          } else {
            cpu::batch_norm_forward(input, get(weight), get(bias), get(running_mean), get(running_var), output,
                                    save_mean, save_invstd, p);
          }
        },
        py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("running_mean"), py::arg("running_var"),
        py::arg("output"), py::arg("save_mean"), py::arg("save_invstd"), py::arg("training"), py::arg("momentum"),
        py::arg("eps"), py::arg("stream") = 0, py::arg("activation") = 0, py::arg("negative_slope") = 0.01,
        py::call_guard<py::gil_scoped_release>());

  m.def(kernel_op_name(KernelOp::BatchNormBackward),
        [](const TensorView& grad_output, const TensorView& input, const OptionalView& weight,
           const TensorView& save_mean, const TensorView& save_invstd, const OptionalView& grad_input,
           const OptionalView& grad_weight, const OptionalView& grad_bias, bool training, double eps,
           std::uintptr_t stream, const OptionalView& bias, int activation, double negative_slope) {
          const int64_t C = check_bn_input(input, "input");
          check_same_dtype(input, "input", grad_output, "grad_output");
          check_same_device(input, "input", grad_output, "grad_output");
          check_shape(grad_output, "grad_output", shape_of(input));
          check_channel_vector(weight, "weight", input, C);
          check_channel_vector(bias, "bias", input, C);
          check_channel_vector(save_mean, "save_mean", input, C);
          check_channel_vector(save_invstd, "save_invstd", input, C);
          if (grad_input) check_output(*grad_input, "grad_input", input, shape_of(input));
          if (grad_weight) check_channel_output(*grad_weight, "grad_weight", input, C);
          if (grad_bias) check_channel_output(*grad_bias, "grad_bias", input, C);
          BatchNormParams p;
          p.training = training;
          p.eps = eps;
          check_enum_code(activation, "activation", activation_name);
          p.activation = static_cast<Activation>(activation);
          p.negative_slope = negative_slope;
          if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::batch_norm_backward(grad_output, input, get(weight), get(bias), save_mean, save_invstd, get(grad_input),
                                      get(grad_weight), get(grad_bias), p, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::BatchNormBackward);
#endif
          } else {
            cpu::batch_norm_backward(grad_output, input, get(weight), get(bias), save_mean, save_invstd, get(grad_input),
                                     get(grad_weight), get(grad_bias), p);
          }
        },
        py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("save_mean"), py::arg("save_invstd"),
        py::arg("grad_input"), py::arg("grad_weight"), py::arg("grad_bias"), py::arg("training"), py::arg("eps"),
        py::arg("stream") = 0, py::arg("bias") = py::none(), py::arg("activation") = 0,
        py::arg("negative_slope") = 0.01, py::call_guard<py::gil_scoped_release>());
}

}  // namespace medkern::bindings
