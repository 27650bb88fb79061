// medkern/group_norm.h — group normalization over (N, C, *) inputs, optionally followed by an
// activation in the same pass: statistics per (sample, group of C / groups channels), an affine
// per channel. Instance norm is the case groups = C. The backward reads the forward's input and
// its per-(n, group) mean / inverse std; with an activation it recomputes the pre-activation
// from them (no second saved tensor) and applies the activation's gradient first.
#pragma once
#include "medkern/activation.h"
#include "medkern/tensor_view.h"

namespace medkern {

struct GroupNormParams {
  int64_t groups = 1;
  double eps = 1e-5;
  Activation activation = Activation::Identity;
  double negative_slope = 0.01;
};

// input (N, C, *) with its spatial axes collapsible to one strided run; weight, bias (C,) or
// null; output dense like input; mean, invstd dense (N, groups).
// Backward: channel_sums is a dense (2, N, C) float64 workspace (per (n, c): the sums of the
// pre-activation gradient dz and of dz * (x - mean)); grad_input, grad_weight, grad_bias may be
// null. bias is read only with an activation (to recompute the pre-activation).
namespace cpu {
void group_norm_forward(const TensorView& input, const TensorView* weight, const TensorView* bias,
                        const TensorView& output, const TensorView& mean, const TensorView& invstd,
                        const GroupNormParams& p);
void group_norm_backward(const TensorView& grad_output, const TensorView& input, const TensorView& mean,
                         const TensorView& invstd, const TensorView* weight, const TensorView* bias,
                         const TensorView& channel_sums, const TensorView* grad_input, const TensorView* grad_weight,
                         const TensorView* grad_bias, const GroupNormParams& p);
}  // namespace cpu

namespace cuda {
void group_norm_forward(const TensorView& input, const TensorView* weight, const TensorView* bias,
                        const TensorView& output, const TensorView& mean, const TensorView& invstd,
                        const GroupNormParams& p, Stream stream);
void group_norm_backward(const TensorView& grad_output, const TensorView& input, const TensorView& mean,
                         const TensorView& invstd, const TensorView* weight, const TensorView* bias,
                         const TensorView& channel_sums, const TensorView* grad_input, const TensorView* grad_weight,
                         const TensorView* grad_bias, const GroupNormParams& p, Stream stream);
}  // namespace cuda

}  // namespace medkern
