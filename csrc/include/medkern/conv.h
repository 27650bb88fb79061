// medkern/conv.h — 2-D and 3-D convolution (cross-correlation as torch defines it) and, as its
// adjoint, the transposed convolution: the parameters, the output-shape rules with their argument
// checks, and the CPU / CUDA entry points. The kernels see every tensor as 5-D, with 2-D as the
// depth-1 case (a unit depth axis and a unit depth tap): input (N, C, D, H, W), weight
// (K, C/groups, T, R, S), bias (K,), output (N, K, OD, P, Q).
// The transposed convolution needs no kernels of its own: its forward is the convolution's input
// gradient (plus a bias), its input gradient the convolution's forward and its weight gradient the
// convolution's weight gradient with the roles of input and grad_output swapped. Every kernel
// therefore reads the output-side spatial sizes from the view it is given (grad_output / output),
// which may be smaller than conv_output_shape's when a transposed convolution's output_padding
// adds rows that no output position reads.
#pragma once
#include <cstdint>
#include <vector>

#include "medkern/tensor_view.h"

namespace medkern {

struct ConvParams {
  int64_t stride_d = 1, stride_h = 1, stride_w = 1;
  int64_t pad_d = 0, pad_h = 0, pad_w = 0;
  int64_t dilation_d = 1, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  bool fuse_relu = false;  // forward only: output = max(conv + bias, 0)
};

// Validates shapes and parameters (ValueError naming the argument) for an input of
// 2 + spatial_dims dimensions and returns the output shape: (N, K, P, Q) for spatial_dims 2 (the
// depth fields of p are ignored), (N, K, OD, P, Q) for 3.
std::vector<int64_t> conv_output_shape(const std::vector<int64_t>& input_shape,
                                       const std::vector<int64_t>& weight_shape, const ConvParams& p,
                                       int spatial_dims);

// The transposed convolution's output shape for input (N, C_in, [D,] H, W) and weight
// (C_in, C_out/groups, [T,] R, S): (in - 1) stride - 2 pad + dilation (k - 1) + output_padding + 1
// per axis; output_padding (one value per spatial axis, depth first) must be smaller than the
// stride or the dilation of its axis. The convolution with these parameters maps that output
// shape back to an input at least as large as the given one (equal when output_padding < stride).
std::vector<int64_t> conv_transpose_output_shape(const std::vector<int64_t>& input_shape,
                                                 const std::vector<int64_t>& weight_shape, const ConvParams& p,
                                                 const std::vector<int64_t>& output_padding, int spatial_dims);

// The 5-D view (N, C, D, H, W) of a 4-D (N, C, H, W) one: a unit depth axis inserted.
TensorView as_volume(const TensorView& v);

namespace cpu {
// All views 5-D. forward: output dense or strided; `prepared` (optional) holds the weights as
// conv_prepare_weight left them for this layer (ignored when they were made for another shape,
// path or SIMD level). backward_input: grad_input dense, overwritten, plus bias[c] when given
// (the transposed convolution's bias).
void conv_forward(const TensorView& input, const TensorView& weight, const TensorView* bias,
                  const TensorView& output, const ConvParams& p, const TensorView* prepared = nullptr);
// Prepared weights for inference: the forward's packed (or Winograd-transformed) weights, made once
// and reused while the weights do not change. Bytes they take for these 5-D shapes (0: the path
// this layer takes has nothing to prepare), and the preparation into `prepared` (any dtype, dense).
int64_t conv_prepared_weight_bytes(const std::vector<int64_t>& input_shape, const std::vector<int64_t>& weight_shape,
                                   const std::vector<int64_t>& output_shape, const ConvParams& p, DType dtype);
void conv_prepare_weight(const TensorView& weight, const std::vector<int64_t>& input_shape,
                         const std::vector<int64_t>& output_shape, const ConvParams& p, const TensorView& prepared);
void conv_backward_input(const TensorView& grad_output, const TensorView& weight, const TensorView* bias,
                         const TensorView& grad_input, const ConvParams& p);
void conv_backward_weight(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                          const ConvParams& p);
// grad_bias[k] = sum of grad_output (any rank >= 2) over every axis but 1.
void conv_backward_bias(const TensorView& grad_output, const TensorView& grad_bias);
}  // namespace cpu

enum class ConvOp { Forward, BackwardInput, BackwardWeight };

namespace cuda {
// All views 5-D. `workspace` (optional, any dtype, from the caller's allocator) enables the TF32
// tensor-core path for float32 with allow_tf32 when it holds conv_tf32_workspace_bytes(...)
// bytes; without it (or for shapes that path does not take) the generic implicit GEMM runs.
void conv_forward(const TensorView& input, const TensorView& weight, const TensorView* bias,
                  const TensorView& output, const ConvParams& p, bool allow_tf32, Stream stream,
                  const TensorView* workspace = nullptr);
void conv_backward_input(const TensorView& grad_output, const TensorView& weight, const TensorView* bias,
                         const TensorView& grad_input, const ConvParams& p, bool allow_tf32, Stream stream,
                         const TensorView* workspace = nullptr);
void conv_backward_weight(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                          const ConvParams& p, bool allow_tf32, Stream stream, const TensorView* workspace = nullptr);
// Workspace bytes the TF32 path needs for this op on device `device_index` (0: it does not apply).
// Shapes are 5-D: input (N, C, D, H, W), weight (K, C/groups, T, R, S).
int64_t conv_tf32_workspace_bytes(ConvOp op, const std::vector<int64_t>& input_shape,
                                  const std::vector<int64_t>& weight_shape, const ConvParams& p, DType dtype,
                                  bool allow_tf32, int device_index);
void conv_backward_bias(const TensorView& grad_output, const TensorView& grad_bias, Stream stream);
}  // namespace cuda

}  // namespace medkern
