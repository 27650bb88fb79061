// medkern/pooling.h — 2-D max and average pooling (NCHW) with torch's semantics: kernel,
// stride, padding, dilation (max only), ceil_mode, count_include_pad, divisor_override.
// Max-pool indices are int64 flat offsets h * W + w into each (n, c) input plane, as torch's.
#pragma once
#include <cstdint>
#include <vector>

#include "medkern/tensor_view.h"

namespace medkern {

struct Pool2dParams {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling only
  int64_t divisor_override = 0;   // average pooling only; 0 = none
};

// Validates and returns the output shape (N, C, P, Q) for an input (N, C, H, W).
std::vector<int64_t> pool2d_output_shape(const std::vector<int64_t>& input_shape, const Pool2dParams& p);

namespace cpu {
void max_pool2d_forward(const TensorView& input, const TensorView& output, const TensorView& indices,
                        const Pool2dParams& p);
void max_pool2d_backward(const TensorView& grad_output, const TensorView& indices, const TensorView& grad_input,
                         const Pool2dParams& p);
void avg_pool2d_forward(const TensorView& input, const TensorView& output, const Pool2dParams& p);
void avg_pool2d_backward(const TensorView& grad_output, const TensorView& grad_input, const Pool2dParams& p);
}  // namespace cpu

namespace cuda {
void max_pool2d_forward(const TensorView& input, const TensorView& output, const TensorView& indices,
                        const Pool2dParams& p, Stream stream);
void max_pool2d_backward(const TensorView& grad_output, const TensorView& indices, const TensorView& grad_input,
                         const Pool2dParams& p, Stream stream);
void avg_pool2d_forward(const TensorView& input, const TensorView& output, const Pool2dParams& p, Stream stream);
void avg_pool2d_backward(const TensorView& grad_output, const TensorView& grad_input, const Pool2dParams& p,
                         Stream stream);
}  // namespace cuda

}  // namespace medkern
