// bindings/filter_bindings.cpp — _C.filter_axis, the separable filter stage of the preprocessing
// pipeline (Gaussian blur, antialiased resize). Validates every argument once, in C++, then
// dispatches to the CPU or CUDA kernel.
#include "bindings/bindings.h"
#include "medkern/filter.h"

namespace medkern::bindings {

void register_filter(py::module_& m) {
  m.def(kernel_op_name(KernelOp::FilterAxis), [](const TensorView& input, const TensorView& indices,
                                                 const TensorView& weights, const TensorView& output, int axis,
                                                 std::uintptr_t stream) {
    check_filter_axis_args(input, indices, weights, output, axis);
    if (!input.is_cuda()) {
      cpu::filter_axis(input, indices, weights, output, axis);
    } else {
#ifdef MEDKERN_WITH_CUDA
      cuda::filter_axis(input, indices, weights, output, axis, to_stream(stream));
#else
      no_cuda_kernel(KernelOp::FilterAxis);
#endif
    }
  }, py::arg("input"), py::arg("indices"), py::arg("weights"), py::arg("output"), py::arg("axis"),
     py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>(),
     "output[..., i, ...] = sum_k weights[i, k] * input[..., indices[i, k], ...] along spatial axis 'axis' "
     "(0 = first spatial axis) of an (N, C, *spatial) float32 input; indices outside [0, in_len) read zero; "
     "weights (N, out_len, K) give each sample its own.");

#ifdef MEDKERN_WITH_CUDA
  add_cuda_ops({KernelOp::FilterAxis});
#endif
}

}  // namespace medkern::bindings
