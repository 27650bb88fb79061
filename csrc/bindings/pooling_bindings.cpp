// bindings/pooling_bindings.cpp — _C.pool2d_output_shape and the max/avg pooling kernels. Every
// argument is checked here (dtype, rank, shapes against pool2d_output_shape, devices, dense
// outputs) so the kernels can trust their views; the GIL is released while they run.
#include "bindings/bindings.h"
#include "medkern/pooling.h"

namespace medkern::bindings {
namespace {

Pool2dParams make_params(const std::vector<int64_t>& kernel_size, const std::vector<int64_t>& stride,
                         const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, bool ceil_mode,
                         bool count_include_pad, int64_t divisor_override) {
  const auto k = pair_arg(kernel_size, "kernel_size", 1);
  const auto s = pair_arg(stride, "stride", 1);
  const auto pd = pair_arg(padding, "padding", 0);
  const auto d = pair_arg(dilation, "dilation", 1);
  MEDKERN_CHECK_VALUE(divisor_override >= 0, "argument 'divisor_override' must be positive, got ", divisor_override);
  Pool2dParams p;
  p.kernel_h = k[0]; p.kernel_w = k[1];
  p.stride_h = s[0]; p.stride_w = s[1];
  p.pad_h = pd[0]; p.pad_w = pd[1];
  p.dilation_h = d[0]; p.dilation_w = d[1];
  p.ceil_mode = ceil_mode;
  p.count_include_pad = count_include_pad;
  p.divisor_override = divisor_override;
  return p;
}

// Checks input and returns the output shape.
std::vector<int64_t> check_pool_input(const TensorView& input, const Pool2dParams& p) {
  check_kernel_dtype(input, "input");
  check_ndim(input, "input", 4, "(N, C, H, W)");
  return pool2d_output_shape(shape_of(input), p);
}

void check_indices(const TensorView& indices, const char* name, const TensorView& like,
                   const std::vector<int64_t>& shape) {
  check_dtype(indices, name, {DType::Int64});
  check_same_device(like, "input", indices, name);
  check_shape(indices, name, shape);
}

// Backward: grad_input (N, C, H, W) is the dense output; grad_output must have the forward's
// output shape for that input size.
std::vector<int64_t> check_pool_backward(const TensorView& grad_output, const TensorView& grad_input,
                                         const Pool2dParams& p) {
  check_kernel_dtype(grad_output, "grad_output");
  check_ndim(grad_output, "grad_output", 4, "(N, C, P, Q)");
  check_ndim(grad_input, "grad_input", 4, "(N, C, H, W)");
  const std::vector<int64_t> out_shape = pool2d_output_shape(shape_of(grad_input), p);
  check_shape(grad_output, "grad_output", out_shape);
  check_output(grad_input, "grad_input", grad_output, shape_of(grad_input));
  return out_shape;
}

}  // namespace

void register_pooling(py::module_& m) {
#ifdef MEDKERN_WITH_CUDA
  add_cuda_ops({KernelOp::MaxPool2dForward, KernelOp::MaxPool2dBackward, KernelOp::AvgPool2dForward,
                KernelOp::AvgPool2dBackward});
#endif
  m.def("pool2d_output_shape",
        [](const std::vector<int64_t>& input_shape, const std::vector<int64_t>& kernel_size,
           const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
           const std::vector<int64_t>& dilation, bool ceil_mode) {
          return pool2d_output_shape(input_shape, make_params(kernel_size, stride, padding, dilation, ceil_mode, true, 0));
        },
        py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("ceil_mode"), "Validates pooling arguments and returns the output shape (N, C, P, Q).");

  m.def(kernel_op_name(KernelOp::MaxPool2dForward),
        [](const TensorView& input, const TensorView& output, const OptionalView& indices,
           const std::vector<int64_t>& kernel_size, const std::vector<int64_t>& stride,
           const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, bool ceil_mode,
           std::uintptr_t stream) {
          const Pool2dParams p = make_params(kernel_size, stride, padding, dilation, ceil_mode, true, 0);
          const auto shape = check_pool_input(input, p);
          check_output(output, "output", input, shape);
          // indices=None: values only (inference), signalled to the kernel by a null data pointer
          TensorView index_view;
          index_view.dtype = DType::Int64;
          if (indices) {
            check_indices(*indices, "indices", input, shape);
            check_contiguous(*indices, "indices");
            index_view = *indices;
          }
          if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::max_pool2d_forward(input, output, index_view, p, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::MaxPool2dForward);
#endif
          } else {
            cpu::max_pool2d_forward(input, output, index_view, p);
          }
        },
        py::arg("input"), py::arg("output"), py::arg("indices"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"), py::arg("stream") = 0,
        py::call_guard<py::gil_scoped_release>());

  m.def(kernel_op_name(KernelOp::MaxPool2dBackward),
        [](const TensorView& grad_output, const TensorView& indices, const TensorView& grad_input,
           const std::vector<int64_t>& kernel_size, const std::vector<int64_t>& stride,
           const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, bool ceil_mode,
           std::uintptr_t stream) {
          const Pool2dParams p = make_params(kernel_size, stride, padding, dilation, ceil_mode, true, 0);
          const auto shape = check_pool_backward(grad_output, grad_input, p);
          check_indices(indices, "indices", grad_output, shape);
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::max_pool2d_backward(grad_output, indices, grad_input, p, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::MaxPool2dBackward);
#endif
          } else {
            cpu::max_pool2d_backward(grad_output, indices, grad_input, p);
          }
        },
        py::arg("grad_output"), py::arg("indices"), py::arg("grad_input"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"), py::arg("stream") = 0,
        py::call_guard<py::gil_scoped_release>());

  m.def(kernel_op_name(KernelOp::AvgPool2dForward),
        [](const TensorView& input, const TensorView& output, const std::vector<int64_t>& kernel_size,
           const std::vector<int64_t>& stride, const std::vector<int64_t>& padding, bool ceil_mode,
           bool count_include_pad, int64_t divisor_override, std::uintptr_t stream) {
          const Pool2dParams p =
              make_params(kernel_size, stride, padding, {1, 1}, ceil_mode, count_include_pad, divisor_override);
          const auto shape = check_pool_input(input, p);
          check_output(output, "output", input, shape);
          if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::avg_pool2d_forward(input, output, p, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::AvgPool2dForward);
#endif
          } else {
            cpu::avg_pool2d_forward(input, output, p);
          }
        },
        py::arg("input"), py::arg("output"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"), py::arg("stream") = 0,
        py::call_guard<py::gil_scoped_release>());

  m.def(kernel_op_name(KernelOp::AvgPool2dBackward),
        [](const TensorView& grad_output, const TensorView& grad_input, const std::vector<int64_t>& kernel_size,
           const std::vector<int64_t>& stride, const std::vector<int64_t>& padding, bool ceil_mode,
           bool count_include_pad, int64_t divisor_override, std::uintptr_t stream) {
          const Pool2dParams p =
              make_params(kernel_size, stride, padding, {1, 1}, ceil_mode, count_include_pad, divisor_override);
          check_pool_backward(grad_output, grad_input, p);
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::avg_pool2d_backward(grad_output, grad_input, p, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::AvgPool2dBackward);
#endif
          } else {
            cpu::avg_pool2d_backward(grad_output, grad_input, p);
          }
        },
        py::arg("grad_output"), py::arg("grad_input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"), py::arg("stream") = 0,
        py::call_guard<py::gil_scoped_release>());
}

}  // namespace medkern::bindings
