// core/pooling.cpp — the device-neutral part of 2-D pooling: the output-shape rule (torch's,
// ceil_mode included) and its argument checks, run by the bindings before either kernel.
#include "common/pooling_math.h"
#include "medkern/checks.h"
#include "medkern/pooling.h"

namespace medkern {

std::vector<int64_t> pool2d_output_shape(const std::vector<int64_t>& input_shape, const Pool2dParams& p) {
  MEDKERN_CHECK_VALUE(input_shape.size() == 4, "argument 'input' must be 4-D (N, C, H, W), got ",
                      input_shape.size(), " dimensions");
  const int64_t N = input_shape[0], C = input_shape[1], H = input_shape[2], W = input_shape[3];
  MEDKERN_CHECK_VALUE(N > 0, "argument 'input' has an empty batch (shape (", N, ", ", C, ", ", H, ", ", W, "))");
  MEDKERN_CHECK_VALUE(C > 0 && H > 0 && W > 0, "argument 'input' has an empty channel or spatial dimension (shape (",
                      N, ", ", C, ", ", H, ", ", W, "))");
  MEDKERN_CHECK_VALUE(p.kernel_h > 0 && p.kernel_w > 0, "argument 'kernel_size' must be positive, got (", p.kernel_h,
                      ", ", p.kernel_w, ")");
  MEDKERN_CHECK_VALUE(p.stride_h > 0 && p.stride_w > 0, "argument 'stride' must be positive, got (", p.stride_h, ", ",
                      p.stride_w, ")");
  MEDKERN_CHECK_VALUE(p.dilation_h > 0 && p.dilation_w > 0, "argument 'dilation' must be positive, got (",
                      p.dilation_h, ", ", p.dilation_w, ")");
  MEDKERN_CHECK_VALUE(p.pad_h >= 0 && p.pad_w >= 0, "argument 'padding' must be non-negative, got (", p.pad_h, ", ",
                      p.pad_w, ")");
  MEDKERN_CHECK_VALUE(p.pad_h <= p.kernel_h / 2 && p.pad_w <= p.kernel_w / 2,
                      "argument 'padding' should be at most half of the kernel size, got padding (", p.pad_h, ", ",
                      p.pad_w, ") for kernel_size (", p.kernel_h, ", ", p.kernel_w, ")");
  MEDKERN_CHECK_VALUE(p.divisor_override >= 0, "argument 'divisor_override' must be positive, got ",
                      p.divisor_override);
  const int64_t P = pool_output_size(H, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, p.ceil_mode);
  const int64_t Q = pool_output_size(W, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, p.ceil_mode);
  MEDKERN_CHECK_VALUE(P > 0 && Q > 0, "argument 'kernel_size' (", p.kernel_h, ", ", p.kernel_w,
                      ") with dilation (", p.dilation_h, ", ", p.dilation_w, ") and padding (", p.pad_h, ", ", p.pad_w,
                      ") is larger than the padded input (", H, ", ", W, "): output size (", P, ", ", Q,
                      ") is too small");
  return {N, C, P, Q};
}

}  // namespace medkern
