// medkern/conv2d.h — 2-D convolution (NCHW, cross-correlation as torch defines it): the
// parameters, the output-shape rule with its argument checks, and the CPU / CUDA entry points.
// Layouts: input (N, C, H, W), weight (K, C/groups, R, S), bias (K,), output (N, K, P, Q).
#pragma once
#include <cstdint>
#include <vector>

#include "medkern/tensor_view.h"

namespace medkern {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  bool fuse_relu = false;  // forward only: output = max(conv + bias, 0)
};

// Validates shapes and parameters (ValueError naming the argument) and returns (N, K, P, Q).
std::vector<int64_t> conv2d_output_shape(const std::vector<int64_t>& input_shape,
                                         const std::vector<int64_t>& weight_shape, const Conv2dParams& p);

namespace cpu {
void conv2d_forward(const TensorView& input, const TensorView& weight, const TensorView* bias,
                    const TensorView& output, const Conv2dParams& p);
void conv2d_backward_input(const TensorView& grad_output, const TensorView& weight,
                           const TensorView& grad_input, const Conv2dParams& p);
void conv2d_backward_weight(const TensorView& grad_output, const TensorView& input,
                            const TensorView& grad_weight, const Conv2dParams& p);
void conv2d_backward_bias(const TensorView& grad_output, const TensorView& grad_bias);
}  // namespace cpu

enum class Conv2dOp { Forward, BackwardInput, BackwardWeight };

namespace cuda {
// `workspace` (optional, any dtype, from the caller's allocator) enables the TF32 tensor-core
// path for float32 with allow_tf32 when it holds conv2d_tf32_workspace_bytes(...) bytes; without
// it (or for shapes that path does not take) the generic implicit GEMM runs.
void conv2d_forward(const TensorView& input, const TensorView& weight, const TensorView* bias,
                    const TensorView& output, const Conv2dParams& p, bool allow_tf32, Stream stream,
                    const TensorView* workspace = nullptr);
void conv2d_backward_input(const TensorView& grad_output, const TensorView& weight,
                           const TensorView& grad_input, const Conv2dParams& p, bool allow_tf32, Stream stream,
                           const TensorView* workspace = nullptr);
void conv2d_backward_weight(const TensorView& grad_output, const TensorView& input,
                            const TensorView& grad_weight, const Conv2dParams& p, bool allow_tf32, Stream stream,
                            const TensorView* workspace = nullptr);
// Workspace bytes the TF32 path needs for this op on device `device_index` (0: it does not apply).
int64_t conv2d_tf32_workspace_bytes(Conv2dOp op, const std::vector<int64_t>& input_shape,
                                    const std::vector<int64_t>& weight_shape, const Conv2dParams& p,
                                    DType dtype, bool allow_tf32, int device_index);
void conv2d_backward_bias(const TensorView& grad_output, const TensorView& grad_bias, Stream stream);
}  // namespace cuda

}  // namespace medkern
