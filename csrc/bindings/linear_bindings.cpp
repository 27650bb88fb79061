// bindings/linear_bindings.cpp — _C.linear_*: checks (2-D operands, feature counts agree, dtypes,
// devices, output shapes; messages name the argument), then CPU or CUDA dispatch without the GIL.
#include "bindings/bindings.h"
#include "medkern/linear.h"

namespace medkern::bindings {
namespace {

void check_operands(const TensorView& x, const char* x_name, const TensorView& w, const char* w_name) {
  check_kernel_dtype(x, x_name);
  check_same_dtype(x, x_name, w, w_name);
  check_same_device(x, x_name, w, w_name);
  check_ndim(x, x_name, 2, "(M, in_features)");
  check_ndim(w, w_name, 2, "(out_features, in_features)");
  MEDKERN_CHECK_VALUE(w.size(1) == x.size(1), "argument '", w_name, "' has ", w.size(1), " input features but '",
                      x_name, "' has ", x.size(1), "; expected ", w_name, ".shape[1] == ", x.size(1));
}

}  // namespace

void register_linear(py::module_& m) {
#ifdef MEDKERN_WITH_CUDA
  add_cuda_ops({KernelOp::LinearForward, KernelOp::LinearBackwardInput, KernelOp::LinearBackwardWeight,
                KernelOp::LinearBackwardBias});
#endif
  m.def(kernel_op_name(KernelOp::LinearForward),
        [](const TensorView& input, const TensorView& weight, const OptionalView& bias, const TensorView& output,
           bool allow_tf32, std::uintptr_t stream) {
          check_operands(input, "input", weight, "weight");
          if (bias) {
            check_same_dtype(input, "input", *bias, "bias");
            check_same_device(input, "input", *bias, "bias");
            check_shape(*bias, "bias", {weight.size(0)});
          }
          check_output(output, "output", input, {input.size(0), weight.size(0)});
          if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::linear_forward(input, weight, get(bias), output, allow_tf32, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::LinearForward);
#endif
          } else {
            cpu::linear_forward(input, weight, get(bias), output);
          }
        },
        py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("output"), py::arg("allow_tf32") = false,
        py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>(), "output = input @ weight.T + bias");

  m.def(kernel_op_name(KernelOp::LinearBackwardInput),
        [](const TensorView& grad_output, const TensorView& weight, const TensorView& grad_input, bool allow_tf32,
           std::uintptr_t stream) {
          check_kernel_dtype(grad_output, "grad_output");
          check_same_dtype(grad_output, "grad_output", weight, "weight");
          check_same_device(grad_output, "grad_output", weight, "weight");
          check_ndim(grad_output, "grad_output", 2, "(M, out_features)");
          check_ndim(weight, "weight", 2, "(out_features, in_features)");
          check_shape(weight, "weight", {grad_output.size(1), weight.size(1)});
          check_output(grad_input, "grad_input", grad_output, {grad_output.size(0), weight.size(1)});
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::linear_backward_input(grad_output, weight, grad_input, allow_tf32, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::LinearBackwardInput);
#endif
          } else {
            cpu::linear_backward_input(grad_output, weight, grad_input);
          }
        },
        py::arg("grad_output"), py::arg("weight"), py::arg("grad_input"), py::arg("allow_tf32") = false,
        py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>(), "grad_input = grad_output @ weight");

  m.def(kernel_op_name(KernelOp::LinearBackwardWeight),
        [](const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight, bool allow_tf32,
           std::uintptr_t stream) {
          check_kernel_dtype(grad_output, "grad_output");
          check_same_dtype(grad_output, "grad_output", input, "input");
          check_same_device(grad_output, "grad_output", input, "input");
          check_ndim(grad_output, "grad_output", 2, "(M, out_features)");
          check_ndim(input, "input", 2, "(M, in_features)");
          check_shape(input, "input", {grad_output.size(0), input.size(1)});
          check_output(grad_weight, "grad_weight", grad_output, {grad_output.size(1), input.size(1)});
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::linear_backward_weight(grad_output, input, grad_weight, allow_tf32, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::LinearBackwardWeight);
#endif
          } else {
            cpu::linear_backward_weight(grad_output, input, grad_weight);
          }
        },
        py::arg("grad_output"), py::arg("input"), py::arg("grad_weight"), py::arg("allow_tf32") = false,
        py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>(), "grad_weight = grad_output.T @ input");

  m.def(kernel_op_name(KernelOp::LinearBackwardBias),
        [](const TensorView& grad_output, const TensorView& grad_bias, std::uintptr_t stream) {
          check_kernel_dtype(grad_output, "grad_output");
          check_ndim(grad_output, "grad_output", 2, "(M, out_features)");
          check_output(grad_bias, "grad_bias", grad_output, {grad_output.size(1)});
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::linear_backward_bias(grad_output, grad_bias, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::LinearBackwardBias);
#endif
          } else {
            cpu::linear_backward_bias(grad_output, grad_bias);
          }
        },
        py::arg("grad_output"), py::arg("grad_bias"), py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>(),
        "grad_bias = grad_output summed over rows");
}

}  // namespace medkern::bindings
