// core/conv2d.cpp — the device-neutral part of 2-D convolution: the output-shape rule and its
// argument checks, run by the bindings before either the CPU or the CUDA kernel.
#include "common/conv2d_math.h"
#include "medkern/checks.h"
#include "medkern/conv2d.h"

namespace medkern {

std::vector<int64_t> conv2d_output_shape(const std::vector<int64_t>& in, const std::vector<int64_t>& w,
                                         const Conv2dParams& p) {
  MEDKERN_CHECK_VALUE(in.size() == 4, "argument 'input' must be 4-D (N, C, H, W), got ", in.size(), " dimensions");
  MEDKERN_CHECK_VALUE(w.size() == 4, "argument 'weight' must be 4-D (K, C/groups, R, S), got ", w.size(),
                      " dimensions");
  MEDKERN_CHECK_VALUE(p.stride_h >= 1 && p.stride_w >= 1, "argument 'stride' must be >= 1, got (", p.stride_h, ", ",
                      p.stride_w, ")");
  MEDKERN_CHECK_VALUE(p.pad_h >= 0 && p.pad_w >= 0, "argument 'padding' must be >= 0, got (", p.pad_h, ", ",
                      p.pad_w, ")");
  MEDKERN_CHECK_VALUE(p.dilation_h >= 1 && p.dilation_w >= 1, "argument 'dilation' must be >= 1, got (",
                      p.dilation_h, ", ", p.dilation_w, ")");
  MEDKERN_CHECK_VALUE(p.groups >= 1, "argument 'groups' must be >= 1, got ", p.groups);
  MEDKERN_CHECK_VALUE(in[0] >= 1, "argument 'input' has an empty batch (shape (", in[0], ", ", in[1], ", ", in[2],
                      ", ", in[3], ")); expected at least one sample");
  MEDKERN_CHECK_VALUE(in[1] >= 1 && in[2] >= 1 && in[3] >= 1, "argument 'input' has an empty dimension: shape (",
                      in[0], ", ", in[1], ", ", in[2], ", ", in[3], ")");
  MEDKERN_CHECK_VALUE(w[0] >= 1 && w[1] >= 1 && w[2] >= 1 && w[3] >= 1,
                      "argument 'weight' has an empty dimension: shape (", w[0], ", ", w[1], ", ", w[2], ", ", w[3],
                      ")");
  MEDKERN_CHECK_VALUE(in[1] % p.groups == 0, "argument 'groups' (", p.groups, ") must divide the input channels (",
                      in[1], ")");
  MEDKERN_CHECK_VALUE(w[0] % p.groups == 0, "argument 'groups' (", p.groups, ") must divide the output channels (",
                      w[0], ") of 'weight'");
  MEDKERN_CHECK_VALUE(w[1] * p.groups == in[1], "argument 'weight' has ", w[1], " input channels per group, but "
                      "'input' has ", in[1], " channels and groups=", p.groups, "; expected weight.shape[1] == ",
                      in[1] / p.groups);
  const int64_t span_h = p.dilation_h * (w[2] - 1) + 1, span_w = p.dilation_w * (w[3] - 1) + 1;
  MEDKERN_CHECK_VALUE(span_h <= in[2] + 2 * p.pad_h && span_w <= in[3] + 2 * p.pad_w,
                      "argument 'weight': kernel extent (", span_h, ", ", span_w, ") (with dilation) is larger than "
                      "the padded 'input' (", in[2] + 2 * p.pad_h, ", ", in[3] + 2 * p.pad_w, ")");
  return {in[0], w[0], conv_output_size(in[2], w[2], p.stride_h, p.pad_h, p.dilation_h),
          conv_output_size(in[3], w[3], p.stride_w, p.pad_w, p.dilation_w)};
}

}  // namespace medkern
