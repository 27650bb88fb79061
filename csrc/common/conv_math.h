// common/conv_math.h — convolution index math shared by the CPU and CUDA kernels, one spatial axis at
// a time (2-D and 3-D convolutions apply it per axis): output size, the input coordinate an
// output/filter tap reads (torch's cross-correlation), its inverse, and the stride-phase split of
// the input gradient.
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

// The input gradient split by stride phase (the CUDA TF32 path runs one GEMM per phase), along one
// axis without dilation. Input coordinates h with (h + pad) % stride == phase are reached only by
// taps r = phase + i * stride (i < taps); the j-th such h is first + j * stride, and tap i of it
// comes from output coordinate base + j - i (valid when inside [0, out_size)). This is
// conv_output_coord regrouped so that no (h, r) pair off the stride grid is ever visited.
struct StridePhase {
  int64_t first;  // smallest input coordinate of the phase
  int64_t count;  // input coordinates in the phase
  int64_t taps;   // filter taps that reach it
  int64_t base;   // output coordinate of (j = 0, i = 0)
};

MEDKERN_HD StridePhase stride_phase(int64_t phase, int64_t in_size, int64_t kernel, int64_t stride, int64_t pad) {
  StridePhase sp;
  sp.first = ((phase - pad) % stride + stride) % stride;
  sp.count = sp.first < in_size ? (in_size - 1 - sp.first) / stride + 1 : 0;
  sp.taps = phase < kernel ? (kernel - 1 - phase) / stride + 1 : 0;
  sp.base = (sp.first + pad - phase) / stride;  // exact: first + pad == phase (mod stride)
  return sp;
}

}  // namespace medkern
