// bindings/conv2d_bindings.cpp — _C.conv2d_*: argument checks (dtype, rank, channel agreement,
// devices, output shapes; messages name the argument), then CPU or CUDA dispatch with the GIL
// released. Shape rules live once, in medkern::conv2d_output_shape.
#include "bindings/bindings.h"
#include "common/conv2d_math.h"
#include "medkern/conv2d.h"

namespace medkern::bindings {
namespace {

Conv2dParams make_params(const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                         const std::vector<int64_t>& dilation, int64_t groups, bool fuse_relu) {
  Conv2dParams p;
  const auto s = pair_arg(stride, "stride", 1);
  const auto pad = pair_arg(padding, "padding", 0);
  const auto d = pair_arg(dilation, "dilation", 1);
  MEDKERN_CHECK_VALUE(groups >= 1, "argument 'groups' must be >= 1, got ", groups);
  p.stride_h = s[0]; p.stride_w = s[1];
  p.pad_h = pad[0]; p.pad_w = pad[1];
  p.dilation_h = d[0]; p.dilation_w = d[1];
  p.groups = groups;
  p.fuse_relu = fuse_relu;
  return p;
}

// Checks input/weight dtypes, ranks, devices; returns the output shape (N, K, P, Q).
std::vector<int64_t> check_conv(const TensorView& input, const char* input_name, const TensorView& weight,
                                const char* weight_name, const Conv2dParams& p) {
  check_kernel_dtype(input, input_name);
  check_same_dtype(input, input_name, weight, weight_name);
  check_same_device(input, input_name, weight, weight_name);
  check_ndim(input, input_name, 4, "(N, C, H, W)");
  check_ndim(weight, weight_name, 4, "(K, C/groups, R, S)");
  return conv2d_output_shape(shape_of(input), shape_of(weight), p);
}

void check_bias(const TensorView* bias, const TensorView& like, int64_t channels, const char* name) {
  if (!bias) return;
  check_same_dtype(like, "input", *bias, name);
  check_same_device(like, "input", *bias, name);
  check_shape(*bias, name, {channels});
}

using Pair = std::vector<int64_t>;

// The TF32 path's workspace: a contiguous CUDA buffer on the op's device (its size is checked
// where it is used; too small a buffer means the generic kernel runs).
void check_workspace(const TensorView* workspace, const TensorView& like, const char* like_name) {
  if (!workspace) return;
  check_same_device(like, like_name, *workspace, "workspace");
  check_contiguous(*workspace, "workspace");
}

Conv2dOp parse_op(const std::string& op) {
  if (op == "forward") return Conv2dOp::Forward;
  if (op == "backward_input") return Conv2dOp::BackwardInput;
  if (op == "backward_weight") return Conv2dOp::BackwardWeight;
  MEDKERN_CHECK_VALUE(false, "argument 'op' must be 'forward', 'backward_input' or 'backward_weight', got '", op,
                      "'");
  return Conv2dOp::Forward;
}

}  // namespace

void register_conv2d(py::module_& m) {
#ifdef MEDKERN_WITH_CUDA
  add_cuda_ops({KernelOp::Conv2dForward, KernelOp::Conv2dBackwardInput, KernelOp::Conv2dBackwardWeight,
                KernelOp::Conv2dBackwardBias});
#endif
  m.def("conv2d_output_shape",
        [](const std::vector<int64_t>& input_shape, const std::vector<int64_t>& weight_shape, const Pair& stride,
           const Pair& padding, const Pair& dilation, int64_t groups) {
          return conv2d_output_shape(input_shape, weight_shape, make_params(stride, padding, dilation, groups, false));
        },
        py::arg("input_shape"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), "Validated output shape (N, K, P, Q) of a 2-D convolution.");

  m.def(kernel_op_name(KernelOp::Conv2dForward),
        [](const TensorView& input, const TensorView& weight, const OptionalView& bias, const TensorView& output,
           const Pair& stride, const Pair& padding, const Pair& dilation, int64_t groups, bool fuse_relu,
           bool allow_tf32, std::uintptr_t stream, const OptionalView& workspace) {
          const Conv2dParams p = make_params(stride, padding, dilation, groups, fuse_relu);
          const auto out_shape = check_conv(input, "input", weight, "weight", p);
          check_bias(get(bias), input, weight.size(0), "bias");
          check_output(output, "output", input, out_shape);
          check_workspace(get(workspace), input, "input");
          if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::conv2d_forward(input, weight, get(bias), output, p, allow_tf32, to_stream(stream), get(workspace));
#else
            no_cuda_kernel(KernelOp::Conv2dForward);
#endif
          } else {
            cpu::conv2d_forward(input, weight, get(bias), output, p);
          }
        },
        py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("output"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("fuse_relu") = false, py::arg("allow_tf32") = false,
        py::arg("stream") = 0, py::arg("workspace") = py::none(), py::call_guard<py::gil_scoped_release>(),
        "output = conv2d(input, weight) + bias, then max(., 0) when fuse_relu.");

  m.def(kernel_op_name(KernelOp::Conv2dBackwardInput),
        [](const TensorView& grad_output, const TensorView& weight, const TensorView& grad_input, const Pair& stride,
           const Pair& padding, const Pair& dilation, int64_t groups, bool allow_tf32, std::uintptr_t stream,
           const OptionalView& workspace) {
          const Conv2dParams p = make_params(stride, padding, dilation, groups, false);
          const auto out_shape = check_conv(grad_input, "grad_input", weight, "weight", p);
          check_workspace(get(workspace), grad_input, "grad_input");
          check_same_dtype(weight, "weight", grad_output, "grad_output");
          check_same_device(weight, "weight", grad_output, "grad_output");
          check_shape(grad_output, "grad_output", out_shape);
          check_contiguous(grad_input, "grad_input");
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::conv2d_backward_input(grad_output, weight, grad_input, p, allow_tf32, to_stream(stream),
                                        get(workspace));
#else
            no_cuda_kernel(KernelOp::Conv2dBackwardInput);
#endif
          } else {
            cpu::conv2d_backward_input(grad_output, weight, grad_input, p);
          }
        },
        py::arg("grad_output"), py::arg("weight"), py::arg("grad_input"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("allow_tf32") = false, py::arg("stream") = 0,
        py::arg("workspace") = py::none(),
        py::call_guard<py::gil_scoped_release>(), "grad_input (shape of the forward input) from grad_output.");

  m.def(kernel_op_name(KernelOp::Conv2dBackwardWeight),
        [](const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight, const Pair& stride,
           const Pair& padding, const Pair& dilation, int64_t groups, bool allow_tf32, std::uintptr_t stream,
           const OptionalView& workspace) {
          const Conv2dParams p = make_params(stride, padding, dilation, groups, false);
          const auto out_shape = check_conv(input, "input", grad_weight, "grad_weight", p);
          check_workspace(get(workspace), input, "input");
          check_same_dtype(input, "input", grad_output, "grad_output");
          check_same_device(input, "input", grad_output, "grad_output");
          check_shape(grad_output, "grad_output", out_shape);
          check_contiguous(grad_weight, "grad_weight");
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::conv2d_backward_weight(grad_output, input, grad_weight, p, allow_tf32, to_stream(stream),
                                         get(workspace));
#else
            no_cuda_kernel(KernelOp::Conv2dBackwardWeight);
#endif
          } else {
            cpu::conv2d_backward_weight(grad_output, input, grad_weight, p);
          }
        },
        py::arg("grad_output"), py::arg("input"), py::arg("grad_weight"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("allow_tf32") = false, py::arg("stream") = 0,
        py::arg("workspace") = py::none(),
        py::call_guard<py::gil_scoped_release>(), "grad_weight (shape of the weight) from grad_output and input.");

  // For tests: the stride-phase split the CUDA input gradient runs on (common/conv2d_math.h), so
  // the CPU suite checks the GPU's index arithmetic.
  m.def("_conv2d_stride_phase",
        [](int64_t phase, int64_t in_size, int64_t kernel, int64_t stride, int64_t pad) {
          MEDKERN_CHECK_VALUE(stride >= 1 && phase >= 0 && phase < stride && in_size >= 0 && kernel >= 1 && pad >= 0,
                              "_conv2d_stride_phase: need 0 <= phase < stride, in_size >= 0, kernel >= 1, pad >= 0");
          const StridePhase sp = stride_phase(phase, in_size, kernel, stride, pad);
          return py::make_tuple(sp.first, sp.count, sp.taps, sp.base);
        },
        py::arg("phase"), py::arg("in_size"), py::arg("kernel"), py::arg("stride"), py::arg("pad"),
        "(first, count, taps, base) of one stride phase of the input gradient (see common/conv2d_math.h).");

  m.def("conv2d_workspace_bytes",
        [](const std::string& op, const std::vector<int64_t>& input_shape, const std::vector<int64_t>& weight_shape,
           const Pair& stride, const Pair& padding, const Pair& dilation, int64_t groups, int dtype, bool allow_tf32,
           int device_index) -> int64_t {
          const Conv2dOp kind = parse_op(op);
          const Conv2dParams p = make_params(stride, padding, dilation, groups, false);
          conv2d_output_shape(input_shape, weight_shape, p);  // the usual argument errors first
          MEDKERN_CHECK_TYPE(dtype >= 0 && dtype <= static_cast<int>(DType::Bool), "unknown dtype code ", dtype);
#ifdef MEDKERN_WITH_CUDA
          return cuda::conv2d_tf32_workspace_bytes(kind, input_shape, weight_shape, p, static_cast<DType>(dtype),
                                                   allow_tf32, device_index);
#else
          (void)kind; (void)allow_tf32; (void)device_index;
          return 0;
#endif
        },
        py::arg("op"), py::arg("input_shape"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("dtype"), py::arg("allow_tf32"), py::arg("device_index"),
        "Bytes of CUDA workspace that lets conv2d op ('forward', 'backward_input', 'backward_weight') take the "
        "TF32 tensor-core path on device device_index; 0 when that path does not apply (the op then needs none).");

  m.def(kernel_op_name(KernelOp::Conv2dBackwardBias),
        [](const TensorView& grad_output, const TensorView& grad_bias, std::uintptr_t stream) {
          check_kernel_dtype(grad_output, "grad_output");
          check_ndim(grad_output, "grad_output", 4, "(N, K, P, Q)");
          check_output(grad_bias, "grad_bias", grad_output, {grad_output.size(1)});
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::conv2d_backward_bias(grad_output, grad_bias, to_stream(stream));
#else
            no_cuda_kernel(KernelOp::Conv2dBackwardBias);
#endif
          } else {
            cpu::conv2d_backward_bias(grad_output, grad_bias);
          }
        },
        py::arg("grad_output"), py::arg("grad_bias"), py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>(),
        "grad_bias[k] = sum of grad_output over batch and pixels.");
}

}  // namespace medkern::bindings
