// bindings/pooling_bindings.cpp — _C.pool_output_shape and the 2-D and 3-D max/average pooling
// kernels. Every argument is checked here (dtype, rank, shapes against pool_output_shape, devices,
// dense outputs) so the kernels can trust their views; a 2-D call's views get a unit depth axis
// (the kernels are written for (N, C, D, H, W)); the GIL is released while they run.
#include "bindings/bindings.h"
#include "medkern/pooling.h"

namespace medkern::bindings {
namespace {

// The _C ops of one pooling dimensionality.
struct PoolFamily {
  int spatial_dims;
  KernelOp max_forward, max_backward, avg_forward, avg_backward;
  const char* input_layout;   // "(N, C, H, W)" or "(N, C, D, H, W)"
  const char* output_layout;  // "(N, C, P, Q)" or "(N, C, OD, P, Q)"
};

constexpr PoolFamily kPool2d{2, KernelOp::MaxPool2dForward, KernelOp::MaxPool2dBackward, KernelOp::AvgPool2dForward,
                             KernelOp::AvgPool2dBackward, "(N, C, H, W)", "(N, C, P, Q)"};
constexpr PoolFamily kPool3d{3, KernelOp::MaxPool3dForward, KernelOp::MaxPool3dBackward, KernelOp::AvgPool3dForward,
                             KernelOp::AvgPool3dBackward, "(N, C, D, H, W)", "(N, C, OD, P, Q)"};

// Per-axis values such as stride or padding, one per spatial axis ((h, w) or (d, h, w)); their
// ranges are checked by pool_output_shape, which names every axis in its messages.
void set_axes(PoolParams& p, int spatial_dims, const std::vector<int64_t>& v, const char* name,
              int64_t PoolAxis::*field) {
  MEDKERN_CHECK_VALUE(static_cast<int>(v.size()) == spatial_dims, "argument '", name, "' must have ", spatial_dims,
                      " values ", spatial_dims == 3 ? "(d, h, w)" : "(h, w)", ", got ", v.size());
  PoolAxis* axes[3] = {&p.d, &p.h, &p.w};
  for (int i = 0; i < spatial_dims; ++i) axes[3 - spatial_dims + i]->*field = v[static_cast<size_t>(i)];
}

PoolParams make_params(int spatial_dims, const std::vector<int64_t>& kernel_size, const std::vector<int64_t>& stride,
                       const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, bool ceil_mode,
                       bool count_include_pad, int64_t divisor_override) {
  PoolParams p;
  set_axes(p, spatial_dims, kernel_size, "kernel_size", &PoolAxis::kernel);
  set_axes(p, spatial_dims, stride, "stride", &PoolAxis::stride);
  set_axes(p, spatial_dims, padding, "padding", &PoolAxis::pad);
  set_axes(p, spatial_dims, dilation, "dilation", &PoolAxis::dilation);
  p.ceil_mode = ceil_mode;
  p.count_include_pad = count_include_pad;
  p.divisor_override = divisor_override;
  return p;
}

// The (N, C, D, H, W) view the kernels take: a 2-D view gets a unit depth axis.
TensorView as_volume(const TensorView& v) {
  if (v.ndim != 4) return v;
  TensorView r = v;
  r.ndim = 5;
  for (int i = 4; i > 2; --i) {
    r.shape[i] = v.shape[i - 1];
    r.strides[i] = v.strides[i - 1];
  }
  r.shape[2] = 1;
  r.strides[2] = v.shape[2] * v.strides[2];
  return r;
}

// Checks input and returns the output shape.
std::vector<int64_t> check_pool_input(const TensorView& input, const PoolParams& p, const PoolFamily& f,
                                      PoolKind kind) {
  check_kernel_dtype(input, "input");
  check_ndim(input, "input", f.spatial_dims + 2, f.input_layout);
  return pool_output_shape(shape_of(input), p, f.spatial_dims, kind);
}

void check_indices(const TensorView& indices, const char* name, const TensorView& like,
                   const std::vector<int64_t>& shape) {
  check_dtype(indices, name, {DType::Int64});
  check_same_device(like, "input", indices, name);
  check_shape(indices, name, shape);
}

// Backward: grad_input is the dense output; grad_output must have the forward's output shape for
// that input size.
std::vector<int64_t> check_pool_backward(const TensorView& grad_output, const TensorView& grad_input,
                                         const PoolParams& p, const PoolFamily& f, PoolKind kind) {
  check_kernel_dtype(grad_output, "grad_output");
  check_ndim(grad_output, "grad_output", f.spatial_dims + 2, f.output_layout);
  check_ndim(grad_input, "grad_input", f.spatial_dims + 2, f.input_layout);
  const std::vector<int64_t> out_shape = pool_output_shape(shape_of(grad_input), p, f.spatial_dims, kind);
  check_shape(grad_output, "grad_output", out_shape);
  check_output(grad_input, "grad_input", grad_output, shape_of(grad_input));
  return out_shape;
}

void register_pool_family(py::module_& m, const PoolFamily& f) {
#ifdef MEDKERN_WITH_CUDA
  add_cuda_ops({f.max_forward, f.max_backward, f.avg_forward, f.avg_backward});
#endif
  m.def(kernel_op_name(f.max_forward),
        [f](const TensorView& input, const TensorView& output, const OptionalView& indices,
            const std::vector<int64_t>& kernel_size, const std::vector<int64_t>& stride,
            const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, bool ceil_mode,
            std::uintptr_t stream) {
          const PoolParams p = make_params(f.spatial_dims, kernel_size, stride, padding, dilation, ceil_mode, true, 0);
          const auto shape = check_pool_input(input, p, f, PoolKind::Max);
          check_output(output, "output", input, shape);
          // indices=None: values only (inference), signalled to the kernel by a null data pointer
          TensorView index_view;
          index_view.dtype = DType::Int64;
          if (indices) {
            check_indices(*indices, "indices", input, shape);
            check_contiguous(*indices, "indices");
            index_view = as_volume(*indices);
          }
          if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::max_pool_forward(as_volume(input), as_volume(output), index_view, p, to_stream(stream));
#else
            no_cuda_kernel(f.max_forward);
#endif
          } else {
            cpu::max_pool_forward(as_volume(input), as_volume(output), index_view, p);
          }
        },
        py::arg("input"), py::arg("output"), py::arg("indices"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"), py::arg("stream") = 0,
        py::call_guard<py::gil_scoped_release>());

  m.def(kernel_op_name(f.max_backward),
        [f](const TensorView& grad_output, const TensorView& indices, const TensorView& grad_input,
            const std::vector<int64_t>& kernel_size, const std::vector<int64_t>& stride,
            const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, bool ceil_mode,
            std::uintptr_t stream) {
          const PoolParams p = make_params(f.spatial_dims, kernel_size, stride, padding, dilation, ceil_mode, true, 0);
          const auto shape = check_pool_backward(grad_output, grad_input, p, f, PoolKind::Max);
          check_indices(indices, "indices", grad_output, shape);
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::max_pool_backward(as_volume(grad_output), as_volume(indices), as_volume(grad_input), p,
                                    to_stream(stream));
#else
            no_cuda_kernel(f.max_backward);
#endif
          } else {
            cpu::max_pool_backward(as_volume(grad_output), as_volume(indices), as_volume(grad_input), p);
          }
        },
        py::arg("grad_output"), py::arg("indices"), py::arg("grad_input"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"), py::arg("stream") = 0,
        py::call_guard<py::gil_scoped_release>());

  const std::vector<int64_t> no_dilation(static_cast<size_t>(f.spatial_dims), 1);
  m.def(kernel_op_name(f.avg_forward),
        [f, no_dilation](const TensorView& input, const TensorView& output, const std::vector<int64_t>& kernel_size,
                         const std::vector<int64_t>& stride, const std::vector<int64_t>& padding, bool ceil_mode,
                         bool count_include_pad, int64_t divisor_override, std::uintptr_t stream) {
          const PoolParams p = make_params(f.spatial_dims, kernel_size, stride, padding, no_dilation, ceil_mode,
                                           count_include_pad, divisor_override);
          const auto shape = check_pool_input(input, p, f, PoolKind::Average);
          check_output(output, "output", input, shape);
          if (input.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::avg_pool_forward(as_volume(input), as_volume(output), p, to_stream(stream));
#else
            no_cuda_kernel(f.avg_forward);
#endif
          } else {
            cpu::avg_pool_forward(as_volume(input), as_volume(output), p);
          }
        },
        py::arg("input"), py::arg("output"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"), py::arg("stream") = 0,
        py::call_guard<py::gil_scoped_release>());

  m.def(kernel_op_name(f.avg_backward),
        [f, no_dilation](const TensorView& grad_output, const TensorView& grad_input,
                         const std::vector<int64_t>& kernel_size, const std::vector<int64_t>& stride,
                         const std::vector<int64_t>& padding, bool ceil_mode, bool count_include_pad,
                         int64_t divisor_override, std::uintptr_t stream) {
          const PoolParams p = make_params(f.spatial_dims, kernel_size, stride, padding, no_dilation, ceil_mode,
                                           count_include_pad, divisor_override);
          check_pool_backward(grad_output, grad_input, p, f, PoolKind::Average);
          if (grad_output.is_cuda()) {
#ifdef MEDKERN_WITH_CUDA
            cuda::avg_pool_backward(as_volume(grad_output), as_volume(grad_input), p, to_stream(stream));
#else
            no_cuda_kernel(f.avg_backward);
#endif
          } else {
            cpu::avg_pool_backward(as_volume(grad_output), as_volume(grad_input), p);
          }
        },
        py::arg("grad_output"), py::arg("grad_input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"), py::arg("stream") = 0,
        py::call_guard<py::gil_scoped_release>());
}

}  // namespace

void register_pooling(py::module_& m) {
  m.def("pool_output_shape",
        [](const std::vector<int64_t>& input_shape, const std::vector<int64_t>& kernel_size,
           const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
           const std::vector<int64_t>& dilation, bool ceil_mode, bool average) {
          // the dimensionality is the kernel's: (h, w) pools 2-D, (d, h, w) 3-D
          const int dims = kernel_size.size() == 3 ? 3 : 2;
          return pool_output_shape(input_shape,
                                   make_params(dims, kernel_size, stride, padding, dilation, ceil_mode, true, 0), dims,
                                   average ? PoolKind::Average : PoolKind::Max);
        },
        py::arg("input_shape"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("ceil_mode"), py::arg("average") = false,
        "Validates pooling arguments and returns the output shape: (N, C, P, Q) for a 2-value kernel_size, "
        "(N, C, OD, P, Q) for a 3-value one; average=True adds average pooling's rules.");
  register_pool_family(m, kPool2d);
  register_pool_family(m, kPool3d);
}

}  // namespace medkern::bindings
