// bindings/conv_bindings.cpp — _C.conv{2,3}d_* and _C.conv_transpose{2,3}d_*: argument checks
// (dtype, rank, channel agreement, devices, output shapes; messages name the argument), then CPU
// or CUDA dispatch with the GIL released. Shape rules live once, in medkern::conv_output_shape /
// conv_transpose_output_shape; a 2-D call's views get a unit depth axis, since the kernels are
// written for (N, C, D, H, W). The transposed ops run the convolution's kernels with the roles
// swapped (see medkern/conv.h), so they add no kernels, only their own shape checks.
#include "bindings/bindings.h"
#include "common/conv_math.h"
#include "medkern/conv.h"

namespace medkern::bindings {
namespace {

using Values = std::vector<int64_t>;

// The _C ops of one dimensionality.
struct ConvFamily {
  int spatial_dims;
  KernelOp forward, backward_input, backward_weight, backward_bias;
  KernelOp transpose_forward, transpose_backward_input, transpose_backward_weight;
  const char* input_layout;   // "(N, C, H, W)" or "(N, C, D, H, W)"
  const char* weight_layout;  // of the convolution's weight
  const char* transpose_weight_layout;
};

constexpr ConvFamily kConv2d{2,
                             KernelOp::Conv2dForward,
                             KernelOp::Conv2dBackwardInput,
                             KernelOp::Conv2dBackwardWeight,
                             KernelOp::Conv2dBackwardBias,
                             KernelOp::ConvTranspose2dForward,
                             KernelOp::ConvTranspose2dBackwardInput,
                             KernelOp::ConvTranspose2dBackwardWeight,
                             "(N, C, H, W)",
                             "(K, C/groups, R, S)",
                             "(C_in, C_out/groups, R, S)"};
constexpr ConvFamily kConv3d{3,
                             KernelOp::Conv3dForward,
                             KernelOp::Conv3dBackwardInput,
                             KernelOp::Conv3dBackwardWeight,
                             KernelOp::Conv3dBackwardBias,
                             KernelOp::ConvTranspose3dForward,
                             KernelOp::ConvTranspose3dBackwardInput,
                             KernelOp::ConvTranspose3dBackwardWeight,
                             "(N, C, D, H, W)",
                             "(K, C/groups, T, R, S)",
                             "(C_in, C_out/groups, T, R, S)"};

// One value per spatial axis ((h, w) or (d, h, w)), at least `minimum`, into p's fields.
void set_axes(ConvParams& p, int spatial_dims, const Values& v, const char* name, int64_t minimum,
              int64_t ConvParams::*d, int64_t ConvParams::*h, int64_t ConvParams::*w) {
  MEDKERN_CHECK_VALUE(static_cast<int>(v.size()) == spatial_dims, "argument '", name, "' must have ", spatial_dims,
                      " values ", spatial_dims == 3 ? "(d, h, w)" : "(h, w)", ", got ", v.size());
  for (int64_t x : v)
    MEDKERN_CHECK_VALUE(x >= minimum, "argument '", name, "' must be >= ", minimum, ", got ", x);
  const size_t o = static_cast<size_t>(spatial_dims - 2);
  if (spatial_dims == 3) p.*d = v[0];
  p.*h = v[o];
  p.*w = v[o + 1];
}

ConvParams make_params(int spatial_dims, const Values& stride, const Values& padding, const Values& dilation,
                       int64_t groups, bool fuse_relu) {
  ConvParams p;
  set_axes(p, spatial_dims, stride, "stride", 1, &ConvParams::stride_d, &ConvParams::stride_h,
           &ConvParams::stride_w);
  set_axes(p, spatial_dims, padding, "padding", 0, &ConvParams::pad_d, &ConvParams::pad_h, &ConvParams::pad_w);
  set_axes(p, spatial_dims, dilation, "dilation", 1, &ConvParams::dilation_d, &ConvParams::dilation_h,
           &ConvParams::dilation_w);
  MEDKERN_CHECK_VALUE(groups >= 1, "argument 'groups' must be >= 1, got ", groups);
  p.groups = groups;
  p.fuse_relu = fuse_relu;
  return p;
}

int spatial_dims_of(const Values& stride) {
  MEDKERN_CHECK_VALUE(stride.size() == 2 || stride.size() == 3, "argument 'stride' must have 2 values (h, w) or 3 "
                      "(d, h, w), got ", stride.size());
  return static_cast<int>(stride.size());
}

// Checks input/weight dtypes, ranks, devices; returns the convolution's output shape.
Values check_conv(const TensorView& input, const char* input_name, const TensorView& weight, const char* weight_name,
                  const ConvParams& p, const ConvFamily& f) {
  check_kernel_dtype(input, input_name);
  check_same_dtype(input, input_name, weight, weight_name);
  check_same_device(input, input_name, weight, weight_name);
  check_ndim(input, input_name, f.spatial_dims + 2, f.input_layout);
  check_ndim(weight, weight_name, f.spatial_dims + 2, f.weight_layout);
  return conv_output_shape(shape_of(input), shape_of(weight), p, f.spatial_dims);
}

// The same for a transposed convolution's input and weight; returns its output shape.
Values check_transpose(const TensorView& input, const char* input_name, const TensorView& weight,
                       const char* weight_name, const ConvParams& p, const Values& output_padding,
                       const ConvFamily& f) {
  check_kernel_dtype(input, input_name);
  check_same_dtype(input, input_name, weight, weight_name);
  check_same_device(input, input_name, weight, weight_name);
  check_ndim(input, input_name, f.spatial_dims + 2, f.input_layout);
  check_ndim(weight, weight_name, f.spatial_dims + 2, f.transpose_weight_layout);
  return conv_transpose_output_shape(shape_of(input), shape_of(weight), p, output_padding, f.spatial_dims);
}

void check_bias(const TensorView* bias, const TensorView& like, int64_t channels, const char* name) {
  if (!bias) return;
  check_same_dtype(like, "input", *bias, name);
  check_same_device(like, "input", *bias, name);
  check_shape(*bias, name, {channels});
}

// The TF32 path's workspace: a contiguous CUDA buffer on the op's device (its size is checked
// where it is used; too small a buffer means the generic kernel runs).
void check_workspace(const TensorView* workspace, const TensorView& like, const char* like_name) {
  if (!workspace) return;
  check_same_device(like, like_name, *workspace, "workspace");
  check_contiguous(*workspace, "workspace");
}

ConvOp parse_op(const std::string& op) {
  if (op == "forward") return ConvOp::Forward;
  if (op == "backward_input") return ConvOp::BackwardInput;
  if (op == "backward_weight") return ConvOp::BackwardWeight;
  MEDKERN_CHECK_VALUE(false, "argument 'op' must be 'forward', 'backward_input' or 'backward_weight', got '", op,
                      "'");
  return ConvOp::Forward;
}

// The kernels, on 5-D views, on the device of `where`.
void run_forward(const TensorView& input, const TensorView& weight, const TensorView* bias, const TensorView& output,
                 const ConvParams& p, bool allow_tf32, std::uintptr_t stream, const TensorView* workspace,
                 KernelOp op, const TensorView* prepared = nullptr) {
  const TensorView x = as_volume(input), w = as_volume(weight), y = as_volume(output);
  if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
    cuda::conv_forward(x, w, bias, y, p, allow_tf32, to_stream(stream), workspace);
#else
    no_cuda_kernel(op);
#endif
  } else {
    cpu::conv_forward(x, w, bias, y, p, prepared);
  }
}

void run_backward_input(const TensorView& grad_output, const TensorView& weight, const TensorView* bias,
                        const TensorView& grad_input, const ConvParams& p, bool allow_tf32, std::uintptr_t stream,
                        const TensorView* workspace, KernelOp op) {
  const TensorView dy = as_volume(grad_output), w = as_volume(weight), dx = as_volume(grad_input);
  if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
    cuda::conv_backward_input(dy, w, bias, dx, p, allow_tf32, to_stream(stream), workspace);
#else
    no_cuda_kernel(op);
#endif
  } else {
    cpu::conv_backward_input(dy, w, bias, dx, p);
  }
}

void run_backward_weight(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                         const ConvParams& p, bool allow_tf32, std::uintptr_t stream, const TensorView* workspace,
                         KernelOp op) {
  const TensorView dy = as_volume(grad_output), x = as_volume(input), dw = as_volume(grad_weight);
  if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
    cuda::conv_backward_weight(dy, x, dw, p, allow_tf32, to_stream(stream), workspace);
#else
    no_cuda_kernel(op);
#endif
  } else {
    cpu::conv_backward_weight(dy, x, dw, p);
  }
}

void register_family(py::module_& m, const ConvFamily& f) {
#ifdef MEDKERN_WITH_CUDA
  add_cuda_ops({f.forward, f.backward_input, f.backward_weight, f.backward_bias, f.transpose_forward,
                f.transpose_backward_input, f.transpose_backward_weight});
#endif
  const int dims = f.spatial_dims;

  // ---- convolution ----
  m.def(kernel_op_name(f.forward),
        [f, dims](const TensorView& input, const TensorView& weight, const OptionalView& bias,
                  const TensorView& output, const Values& stride, const Values& padding, const Values& dilation,
                  int64_t groups, bool fuse_relu, bool allow_tf32, std::uintptr_t stream,
                  const OptionalView& workspace, const OptionalView& prepared) {
          const ConvParams p = make_params(dims, stride, padding, dilation, groups, fuse_relu);
          const auto out_shape = check_conv(input, "input", weight, "weight", p, f);
          check_bias(get(bias), input, weight.size(0), "bias");
          check_output(output, "output", input, out_shape);
          check_workspace(get(workspace), input, "input");
          if (get(prepared)) {
            check_same_device(input, "input", *get(prepared), "prepared");
            check_contiguous(*get(prepared), "prepared");
          }
          run_forward(input, weight, get(bias), output, p, allow_tf32, stream, get(workspace), f.forward,
                      get(prepared));
        },
        py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("output"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("fuse_relu") = false, py::arg("allow_tf32") = false,
        py::arg("stream") = 0, py::arg("workspace") = py::none(), py::arg("prepared") = py::none(),
        py::call_guard<py::gil_scoped_release>(),
        "output = conv(input, weight) + bias, then max(., 0) when fuse_relu. `prepared` (CPU): the weights as "
        "conv_prepare_weight made them for this layer, reused instead of packed per call.");

  m.def(kernel_op_name(f.backward_input),
        [f, dims](const TensorView& grad_output, const TensorView& weight, const TensorView& grad_input,
                  const Values& stride, const Values& padding, const Values& dilation, int64_t groups,
                  bool allow_tf32, std::uintptr_t stream, const OptionalView& workspace) {
          const ConvParams p = make_params(dims, stride, padding, dilation, groups, false);
          const auto out_shape = check_conv(grad_input, "grad_input", weight, "weight", p, f);
          check_workspace(get(workspace), grad_input, "grad_input");
          check_same_dtype(weight, "weight", grad_output, "grad_output");
          check_same_device(weight, "weight", grad_output, "grad_output");
          check_shape(grad_output, "grad_output", out_shape);
          check_contiguous(grad_input, "grad_input");
          run_backward_input(grad_output, weight, nullptr, grad_input, p, allow_tf32, stream, get(workspace),
                             f.backward_input);
        },
        py::arg("grad_output"), py::arg("weight"), py::arg("grad_input"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("allow_tf32") = false, py::arg("stream") = 0,
        py::arg("workspace") = py::none(), py::call_guard<py::gil_scoped_release>(),
        "grad_input (shape of the forward input) from grad_output.");

  m.def(kernel_op_name(f.backward_weight),
        [f, dims](const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                  const Values& stride, const Values& padding, const Values& dilation, int64_t groups,
                  bool allow_tf32, std::uintptr_t stream, const OptionalView& workspace) {
          const ConvParams p = make_params(dims, stride, padding, dilation, groups, false);
          const auto out_shape = check_conv(input, "input", grad_weight, "grad_weight", p, f);
          check_workspace(get(workspace), input, "input");
          check_same_dtype(input, "input", grad_output, "grad_output");
          check_same_device(input, "input", grad_output, "grad_output");
          check_shape(grad_output, "grad_output", out_shape);
          check_contiguous(grad_weight, "grad_weight");
          run_backward_weight(grad_output, input, grad_weight, p, allow_tf32, stream, get(workspace),
                              f.backward_weight);
        },
        py::arg("grad_output"), py::arg("input"), py::arg("grad_weight"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("allow_tf32") = false, py::arg("stream") = 0,
        py::arg("workspace") = py::none(), py::call_guard<py::gil_scoped_release>(),
        "grad_weight (shape of the weight) from grad_output and input.");

  m.def(kernel_op_name(f.backward_bias),
        [f](const TensorView& grad_output, const TensorView& grad_bias, std::uintptr_t stream) {
          check_kernel_dtype(grad_output, "grad_output");
          check_ndim(grad_output, "grad_output", f.spatial_dims + 2,
                     f.spatial_dims == 3 ? "(N, K, OD, P, Q)" : "(N, K, P, Q)");
          check_output(grad_bias, "grad_bias", grad_output, {grad_output.size(1)});
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::conv_backward_bias(as_volume(grad_output), grad_bias, to_stream(stream));
#else
            no_cuda_kernel(f.backward_bias);
#endif
          } else {
            cpu::conv_backward_bias(grad_output, grad_bias);
          }
        },
        py::arg("grad_output"), py::arg("grad_bias"), py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>(),
        "grad_bias[k] = sum of grad_output over batch and voxels.");

  // ---- transposed convolution: the convolution's kernels with the roles swapped ----
  // Its weight (C_in, C_out/groups, ...) is the weight of the convolution from its output
  // (C_out channels) to its input (C_in), with the same stride, padding, dilation and groups.
  m.def(kernel_op_name(f.transpose_forward),
        [f, dims](const TensorView& input, const TensorView& weight, const OptionalView& bias,
                  const TensorView& output, const Values& stride, const Values& padding,
                  const Values& output_padding, int64_t groups, const Values& dilation, bool allow_tf32,
                  std::uintptr_t stream, const OptionalView& workspace) {
          const ConvParams p = make_params(dims, stride, padding, dilation, groups, false);
          const auto out_shape = check_transpose(input, "input", weight, "weight", p, output_padding, f);
          check_bias(get(bias), input, out_shape[1], "bias");
          check_output(output, "output", input, out_shape);
          check_workspace(get(workspace), input, "input");
          run_backward_input(input, weight, get(bias), output, p, allow_tf32, stream, get(workspace),
                             f.transpose_forward);
        },
        py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("output"), py::arg("stride"), py::arg("padding"),
        py::arg("output_padding"), py::arg("groups"), py::arg("dilation"), py::arg("allow_tf32") = false,
        py::arg("stream") = 0, py::arg("workspace") = py::none(), py::call_guard<py::gil_scoped_release>(),
        "output = conv_transpose(input, weight) + bias: the convolution's input gradient of `input`.");

  m.def(kernel_op_name(f.transpose_backward_input),
        [f, dims](const TensorView& grad_output, const TensorView& weight, const TensorView& grad_input,
                  const Values& stride, const Values& padding, const Values& output_padding, int64_t groups,
                  const Values& dilation, bool allow_tf32, std::uintptr_t stream, const OptionalView& workspace) {
          const ConvParams p = make_params(dims, stride, padding, dilation, groups, false);
          const auto out_shape = check_transpose(grad_input, "grad_input", weight, "weight", p, output_padding, f);
          check_workspace(get(workspace), grad_input, "grad_input");
          check_same_dtype(weight, "weight", grad_output, "grad_output");
          check_same_device(weight, "weight", grad_output, "grad_output");
          check_shape(grad_output, "grad_output", out_shape);
          check_contiguous(grad_input, "grad_input");
          run_forward(grad_output, weight, nullptr, grad_input, p, allow_tf32, stream, get(workspace),
                      f.transpose_backward_input);
        },
        py::arg("grad_output"), py::arg("weight"), py::arg("grad_input"), py::arg("stride"), py::arg("padding"),
        py::arg("output_padding"), py::arg("groups"), py::arg("dilation"), py::arg("allow_tf32") = false,
        py::arg("stream") = 0, py::arg("workspace") = py::none(), py::call_guard<py::gil_scoped_release>(),
        "grad_input of a transposed convolution: the convolution of grad_output.");

  m.def(kernel_op_name(f.transpose_backward_weight),
        [f, dims](const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                  const Values& stride, const Values& padding, const Values& output_padding, int64_t groups,
                  const Values& dilation, bool allow_tf32, std::uintptr_t stream, const OptionalView& workspace) {
          const ConvParams p = make_params(dims, stride, padding, dilation, groups, false);
          const auto out_shape = check_transpose(input, "input", grad_weight, "grad_weight", p, output_padding, f);
          check_workspace(get(workspace), input, "input");
          check_same_dtype(input, "input", grad_output, "grad_output");
          check_same_device(input, "input", grad_output, "grad_output");
          check_shape(grad_output, "grad_output", out_shape);
          check_contiguous(grad_weight, "grad_weight");
          // the convolution from grad_output's space to input's: grad_output is its input
          run_backward_weight(input, grad_output, grad_weight, p, allow_tf32, stream, get(workspace),
                              f.transpose_backward_weight);
        },
        py::arg("grad_output"), py::arg("input"), py::arg("grad_weight"), py::arg("stride"), py::arg("padding"),
        py::arg("output_padding"), py::arg("groups"), py::arg("dilation"), py::arg("allow_tf32") = false,
        py::arg("stream") = 0, py::arg("workspace") = py::none(), py::call_guard<py::gil_scoped_release>(),
        "grad_weight of a transposed convolution: the convolution's weight gradient, roles swapped.");
}

}  // namespace

void register_conv(py::module_& m) {
  register_family(m, kConv2d);
  register_family(m, kConv3d);

  m.def("conv_output_shape",
        [](const Values& input_shape, const Values& weight_shape, const Values& stride, const Values& padding,
           const Values& dilation, int64_t groups) {
          const int dims = spatial_dims_of(stride);
          return conv_output_shape(input_shape, weight_shape, make_params(dims, stride, padding, dilation, groups, false),
                                   dims);
        },
        py::arg("input_shape"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"),
        "Validated output shape of a 2-D or 3-D convolution (the dimensionality is len(stride)).");

  m.def("conv_transpose_output_shape",
        [](const Values& input_shape, const Values& weight_shape, const Values& stride, const Values& padding,
           const Values& output_padding, int64_t groups, const Values& dilation) {
          const int dims = spatial_dims_of(stride);
          return conv_transpose_output_shape(input_shape, weight_shape,
                                             make_params(dims, stride, padding, dilation, groups, false),
                                             output_padding, dims);
        },
        py::arg("input_shape"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"),
        py::arg("output_padding"), py::arg("groups"), py::arg("dilation"),
        "Validated output shape of a 2-D or 3-D transposed convolution (the dimensionality is len(stride)).");

  // For tests: the stride-phase split the CUDA input gradient runs on (common/conv_math.h), so
  // the CPU suite checks the GPU's index arithmetic.
  m.def("_conv_stride_phase",
        [](int64_t phase, int64_t in_size, int64_t kernel, int64_t stride, int64_t pad) {
          MEDKERN_CHECK_VALUE(stride >= 1 && phase >= 0 && phase < stride && in_size >= 0 && kernel >= 1 && pad >= 0,
                              "_conv_stride_phase: need 0 <= phase < stride, in_size >= 0, kernel >= 1, pad >= 0");
          const StridePhase sp = stride_phase(phase, in_size, kernel, stride, pad);
          return py::make_tuple(sp.first, sp.count, sp.taps, sp.base);
        },
        py::arg("phase"), py::arg("in_size"), py::arg("kernel"), py::arg("stride"), py::arg("pad"),
        "(first, count, taps, base) of one stride phase of the input gradient (see common/conv_math.h).");

  // Prepared weights (CPU inference): the dimensionality is len(stride); 2-D shapes get a unit depth.
  auto volume_of = [](Values s, int dims) {
    if (dims == 2) s.insert(s.begin() + 2, 1);
    return s;
  };
  m.def("conv_prepared_weight_bytes",
        [volume_of](const Values& input_shape, const Values& weight_shape, const Values& stride, const Values& padding,
                    const Values& dilation, int64_t groups, int dtype) -> int64_t {
          const int dims = spatial_dims_of(stride);
          const ConvParams p = make_params(dims, stride, padding, dilation, groups, false);
          const Values out = conv_output_shape(input_shape, weight_shape, p, dims);
          MEDKERN_CHECK_TYPE(dtype >= 0 && dtype <= static_cast<int>(DType::Bool), "unknown dtype code ", dtype);
          return cpu::conv_prepared_weight_bytes(volume_of(input_shape, dims), volume_of(weight_shape, dims),
                                                 volume_of(out, dims), p, static_cast<DType>(dtype));
        },
        py::arg("input_shape"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), py::arg("dtype"),
        "Bytes of the prepared weights of a CPU convolution forward with these shapes (0: its kernel has "
        "nothing to prepare).");
  m.def("conv_prepare_weight",
        [volume_of](const TensorView& weight, const Values& input_shape, const Values& stride, const Values& padding,
                    const Values& dilation, int64_t groups, const TensorView& prepared) {
          const int dims = spatial_dims_of(stride);
          const ConvParams p = make_params(dims, stride, padding, dilation, groups, false);
          MEDKERN_CHECK_VALUE(!weight.is_cuda() && !prepared.is_cuda(),
                              "conv_prepare_weight: arguments 'weight' and 'prepared' must be CPU tensors");
          MEDKERN_CHECK_TYPE(weight.dtype == DType::Float32 || weight.dtype == DType::Float64,
                             "argument 'weight' must be float32 or float64");
          MEDKERN_CHECK_VALUE(static_cast<int>(input_shape.size()) == dims + 2 && weight.ndim == dims + 2,
                              "arguments 'input_shape' and 'weight' need ", dims + 2, " dimensions");
          check_contiguous(prepared, "prepared");
          const Values out = conv_output_shape(input_shape, shape_of(weight), p, dims);
          cpu::conv_prepare_weight(as_volume(weight), volume_of(input_shape, dims), volume_of(out, dims), p, prepared);
        },
        py::arg("weight"), py::arg("input_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), py::arg("prepared"), py::call_guard<py::gil_scoped_release>(),
        "Writes the prepared weights of the forward (input_shape, weight) into `prepared` "
        "(conv_prepared_weight_bytes bytes).");

  m.def("conv_workspace_bytes",
        [](const std::string& op, const Values& input_shape, const Values& weight_shape, const Values& stride,
           const Values& padding, const Values& dilation, int64_t groups, int dtype, bool allow_tf32,
           int device_index) -> int64_t {
          const ConvOp kind = parse_op(op);
          const int dims = spatial_dims_of(stride);
          const ConvParams p = make_params(dims, stride, padding, dilation, groups, false);
          conv_output_shape(input_shape, weight_shape, p, dims);  // the usual argument errors first
          MEDKERN_CHECK_TYPE(dtype >= 0 && dtype <= static_cast<int>(DType::Bool), "unknown dtype code ", dtype);
#ifdef MEDKERN_WITH_CUDA
          auto volume = [dims](Values s) {
            if (dims == 2) s.insert(s.begin() + 2, 1);
            return s;
          };
          return cuda::conv_tf32_workspace_bytes(kind, volume(input_shape), volume(weight_shape), p,
                                                 static_cast<DType>(dtype), allow_tf32, device_index);
#else
          (void)kind; (void)allow_tf32; (void)device_index;
          return 0;
#endif
        },
        py::arg("op"), py::arg("input_shape"), py::arg("weight_shape"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("dtype"), py::arg("allow_tf32"), py::arg("device_index"),
        "Bytes of CUDA workspace that lets convolution op ('forward', 'backward_input', 'backward_weight') of the "
        "convolution (input_shape, weight_shape) take the TF32 tensor-core path on device device_index; 0 when "
        "that path does not apply (the op then needs none). A transposed convolution asks for its convolution.");
}

}  // namespace medkern::bindings
