// bindings/activation_bindings.cpp — _C.relu_forward / relu_backward and _C.leaky_relu_forward /
// leaky_relu_backward. The output may be the
// input itself (in-place relu); otherwise outputs must be dense and match the input's shape.
#include "bindings/bindings.h"
#include "medkern/activation.h"

namespace medkern::bindings {
void register_activation(py::module_& m) {
#ifdef MEDKERN_WITH_CUDA
  add_cuda_ops({KernelOp::ReluForward, KernelOp::ReluBackward, KernelOp::LeakyReluForward,
                KernelOp::LeakyReluBackward});
#endif
  m.def(kernel_op_name(KernelOp::ReluForward),
        [](const TensorView& input, const TensorView& output, std::uintptr_t stream) {
          check_kernel_dtype(input, "input");
          // in place (output is input) needs a dense input, which check_output enforces on output
          check_output(output, "output", input, shape_of(input));
          check_in_place_or_no_overlap(output, "output", input, "input");
          if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::relu_forward(input, output, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::ReluForward);
#endif
          } else {
            cpu::relu_forward(input, output);
          }
        },
        py::arg("input"), py::arg("output"), py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>());

  m.def(kernel_op_name(KernelOp::ReluBackward),
        [](const TensorView& grad_output, const TensorView& output, const TensorView& grad_input,
           std::uintptr_t stream) {
          check_kernel_dtype(grad_output, "grad_output");
          check_same_dtype(grad_output, "grad_output", output, "output");
          check_same_device(grad_output, "grad_output", output, "output");
          check_shape(output, "output", shape_of(grad_output));
          check_output(grad_input, "grad_input", grad_output, shape_of(grad_output));
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::relu_backward(grad_output, output, grad_input, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::ReluBackward);
#endif
          } else {
            cpu::relu_backward(grad_output, output, grad_input);
          }
        },
        py::arg("grad_output"), py::arg("output"), py::arg("grad_input"), py::arg("stream") = 0,
        py::call_guard<py::gil_scoped_release>());

  m.def(kernel_op_name(KernelOp::LeakyReluForward),
        [](const TensorView& input, const TensorView& output, double negative_slope, std::uintptr_t stream) {
          check_kernel_dtype(input, "input");
          check_output(output, "output", input, shape_of(input));
          check_in_place_or_no_overlap(output, "output", input, "input");
          if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::leaky_relu_forward(input, output, negative_slope, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::LeakyReluForward);
#endif
          } else {
            cpu::leaky_relu_forward(input, output, negative_slope);
          }
        },
        py::arg("input"), py::arg("output"), py::arg("negative_slope"), py::arg("stream") = 0,
        py::call_guard<py::gil_scoped_release>());

  // `self` is leaky_relu's input, or its output when self_is_result (then the slope must be
  // non-negative, as in aten: a negative slope flips the sign the mask is read from).
  m.def(kernel_op_name(KernelOp::LeakyReluBackward),
        [](const TensorView& grad_output, const TensorView& self, const TensorView& grad_input, double negative_slope,
           bool self_is_result, std::uintptr_t stream) {
          check_kernel_dtype(grad_output, "grad_output");
          check_same_dtype(grad_output, "grad_output", self, "self");
          check_same_device(grad_output, "grad_output", self, "self");
          check_shape(self, "self", shape_of(grad_output));
          check_output(grad_input, "grad_input", grad_output, shape_of(grad_output));
          MEDKERN_CHECK_VALUE(!self_is_result || negative_slope >= 0, "argument 'negative_slope' is ", negative_slope,
                              ": the gradient can be read from leaky_relu's output (self_is_result=True) only for a "
                              "non-negative slope; pass the input instead");
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::leaky_relu_backward(grad_output, self, grad_input, negative_slope, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::LeakyReluBackward);
#endif
          } else {
            cpu::leaky_relu_backward(grad_output, self, grad_input, negative_slope);
          }
        },
        py::arg("grad_output"), py::arg("self"), py::arg("grad_input"), py::arg("negative_slope"),
        py::arg("self_is_result"), py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>());
}

}  // namespace medkern::bindings
