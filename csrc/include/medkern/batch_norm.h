// medkern/batch_norm.h — batch normalization over (N, C, *) inputs: per-channel statistics
// over N and the spatial axes. Training mode uses batch statistics (saved as mean and
// inverse std for the backward pass) and updates the running statistics in place with
// torch's rule (unbiased variance); eval mode normalizes with the running statistics.
#pragma once
#include "medkern/activation.h"
#include "medkern/tensor_view.h"

namespace medkern {

struct BatchNormParams {
  bool training = true;
  double momentum = 0.1;
  double eps = 1e-5;
  // applied to the normalized result in the same pass; the backward recomputes the
  // pre-activation from the input (bias is then needed) and applies its gradient first
  Activation activation = Activation::Identity;
  double negative_slope = 0.01;
};

// weight, bias, running_mean, running_var may be null. save_mean / save_invstd are (C,)
// outputs written in training mode (in eval mode they receive the running values used).
namespace cpu {
void batch_norm_forward(const TensorView& input, const TensorView* weight, const TensorView* bias,
                        const TensorView* running_mean, const TensorView* running_var, const TensorView& output,
                        const TensorView& save_mean, const TensorView& save_invstd, const BatchNormParams& p);
// grad_input may be null (not needed); grad_weight / grad_bias may be null; bias is read only with
// an activation.
void batch_norm_backward(const TensorView& grad_output, const TensorView& input, const TensorView* weight,
                         const TensorView* bias, const TensorView& save_mean, const TensorView& save_invstd, const TensorView* grad_input,
                         const TensorView* grad_weight, const TensorView* grad_bias, const BatchNormParams& p);
}  // namespace cpu

namespace cuda {
void batch_norm_forward(const TensorView& input, const TensorView* weight, const TensorView* bias,
                        const TensorView* running_mean, const TensorView* running_var, const TensorView& output,
                        const TensorView& save_mean, const TensorView& save_invstd, const BatchNormParams& p,
                        Stream stream);
void batch_norm_backward(const TensorView& grad_output, const TensorView& input, const TensorView* weight,
                         const TensorView* bias, const TensorView& save_mean, const TensorView& save_invstd, const TensorView* grad_input,
                         const TensorView* grad_weight, const TensorView* grad_bias, const BatchNormParams& p,
                         Stream stream);
}  // namespace cuda

}  // namespace medkern
