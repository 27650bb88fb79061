// common/conv2d_math.h — convolution index math shared by the CPU and CUDA kernels: output
// size and the input coordinate an output/filter tap reads (torch's cross-correlation).
#pragma once
#include <cstdint>

#include "common/macros.h"

namespace medkern {

// (in + 2 pad - dilation (k - 1) - 1) / stride + 1; <= 0 means the kernel does not fit.
MEDKERN_HD int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t span = dilation * (kernel - 1) + 1;
  const int64_t room = in + 2 * pad - span;
  return room < 0 ? 0 : room / stride + 1;
}

// Input coordinate read by output coordinate `out` at filter tap `tap` (may fall in padding).
MEDKERN_HD int64_t conv_input_coord(int64_t out, int64_t tap, int64_t stride, int64_t pad, int64_t dilation) {
  return out * stride - pad + tap * dilation;
}

// Inverse of conv_input_coord for the input gradient as a gather: the output coordinate whose
// tap `tap` reads input coordinate `in`, or -1 when none does (off the stride grid, or outside
// [0, out_size)).
MEDKERN_HD int64_t conv_output_coord(int64_t in, int64_t tap, int64_t stride, int64_t pad, int64_t dilation,
                                     int64_t out_size) {
  const int64_t shifted = in + pad - tap * dilation;
  if (shifted < 0) return -1;
  if (stride == 1) return shifted < out_size ? shifted : -1;  // the common case, without a division
  if (shifted % stride != 0) return -1;
  const int64_t out = shifted / stride;
  return out < out_size ? out : -1;
}

// Output coordinates [*lo, *hi) whose tap `tap` reads inside [0, in): outside them the tap reads
// padding. Lets loops split into zero-fill and straight copy without a test per element.
MEDKERN_HD void conv_valid_output_range(int64_t in, int64_t out_size, int64_t tap, int64_t stride, int64_t pad,
                                        int64_t dilation, int64_t* lo, int64_t* hi) {
  const int64_t shift = tap * dilation - pad;  // input = out * stride + shift
  int64_t a = shift >= 0 ? 0 : (-shift + stride - 1) / stride;
  int64_t b = in - 1 - shift < 0 ? 0 : (in - 1 - shift) / stride + 1;
  if (b > out_size) b = out_size;
  if (a > b) a = b;
  *lo = a;
  *hi = b;
}

}  // namespace medkern
