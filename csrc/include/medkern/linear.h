// medkern/linear.h — fully connected layer y = x W^T + b on the same GEMM as convolution.
// Layouts: input (M, K) (leading axes flattened by the caller), weight (N, K), bias (N,),
// output (M, N).
#pragma once
#include "medkern/tensor_view.h"

namespace medkern {

namespace cpu {
void linear_forward(const TensorView& input, const TensorView& weight, const TensorView* bias,
                    const TensorView& output);
void linear_backward_input(const TensorView& grad_output, const TensorView& weight, const TensorView& grad_input);
void linear_backward_weight(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight);
void linear_backward_bias(const TensorView& grad_output, const TensorView& grad_bias);
}  // namespace cpu

namespace cuda {
void linear_forward(const TensorView& input, const TensorView& weight, const TensorView* bias,
                    const TensorView& output, bool allow_tf32, Stream stream);
void linear_backward_input(const TensorView& grad_output, const TensorView& weight, const TensorView& grad_input,
                           bool allow_tf32, Stream stream);
void linear_backward_weight(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                            bool allow_tf32, Stream stream);
void linear_backward_bias(const TensorView& grad_output, const TensorView& grad_bias, Stream stream);
}  // namespace cuda

}  // namespace medkern
