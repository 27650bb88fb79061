// medkern/pooling.h — 2-D and 3-D max and average pooling with torch's semantics: kernel, stride,
// padding, dilation (max only), ceil_mode, count_include_pad, divisor_override. The kernels see
// every input as (N, C, D, H, W): 2-D pooling is the case D = 1 with a unit depth axis, so one
// set of kernels serves both. Max-pool indices are int64 flat offsets (d * H + h) * W + w into
// each (n, c) input volume, as torch's (h * W + w for 2-D).
#pragma once
#include <cstdint>
#include <vector>

#include "medkern/tensor_view.h"

namespace medkern {

// One spatial axis of a pooling window.
struct PoolAxis {
  int64_t kernel = 1, stride = 1, pad = 0, dilation = 1;
};

struct PoolParams {
  PoolAxis d, h, w;  // 2-D pooling leaves d at its defaults: a unit window on a unit depth axis
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling only
  int64_t divisor_override = 0;   // average pooling only; 0 = none
};

enum class PoolKind : int { Max, Average };

// Validates and returns the output shape for an input of 2 + spatial_dims dimensions:
// (N, C, H, W) -> (N, C, P, Q) for spatial_dims 2, (N, C, D, H, W) -> (N, C, OD, P, Q) for 3.
// N may be 0 (empty output), as in torch; the other dimensions must be positive.
std::vector<int64_t> pool_output_shape(const std::vector<int64_t>& input_shape, const PoolParams& p, int spatial_dims,
                                       PoolKind kind);

// The kernels below take 5-D views (N, C, D, H, W) of input and output (a 2-D caller inserts a
// unit depth axis); output, indices and grad_input are dense. Empty tensors return at once.
namespace cpu {
void max_pool_forward(const TensorView& input, const TensorView& output, const TensorView& indices,
                      const PoolParams& p);
void max_pool_backward(const TensorView& grad_output, const TensorView& indices, const TensorView& grad_input,
                       const PoolParams& p);
void avg_pool_forward(const TensorView& input, const TensorView& output, const PoolParams& p);
void avg_pool_backward(const TensorView& grad_output, const TensorView& grad_input, const PoolParams& p);
}  // namespace cpu

namespace cuda {
void max_pool_forward(const TensorView& input, const TensorView& output, const TensorView& indices,
                      const PoolParams& p, Stream stream);
void max_pool_backward(const TensorView& grad_output, const TensorView& indices, const TensorView& grad_input,
                       const PoolParams& p, Stream stream);
void avg_pool_forward(const TensorView& input, const TensorView& output, const PoolParams& p, Stream stream);
void avg_pool_backward(const TensorView& grad_output, const TensorView& grad_input, const PoolParams& p,
                       Stream stream);
}  // namespace cuda

}  // namespace medkern
