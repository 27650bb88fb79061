// common/pooling_math.h — pooling window math shared by the CPU and CUDA kernels, with torch's
// rules: output size (incl. ceil_mode's "last window starts inside input or left padding"),
// max- and average-pooling window bounds and the average-pooling divisor.
#pragma once
#include <cstdint>

#include "common/conv2d_math.h"
#include "common/macros.h"

namespace medkern {

MEDKERN_HD int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                                    bool ceil_mode) {
  const int64_t span = dilation * (kernel - 1) + 1;
  const int64_t room = in + 2 * pad - span + (ceil_mode ? stride - 1 : 0);
  if (room < 0) return 0;
  int64_t out = room / stride + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// Max pooling's window bounds along one axis: the kernel taps [*first, *last) of the window that
// starts at input coordinate `start` (o * stride - pad) whose input coordinate start + tap *
// dilation lies inside [0, size); the others read padding and are skipped (empty when none is
// inside).
MEDKERN_HD void pool_valid_taps(int64_t start, int64_t kernel, int64_t dilation, int64_t size, int64_t* first,
                                int64_t* last) {
  const int64_t room = size - 1 - start;  // largest offset from start still inside
  int64_t k0, k1;
  if (dilation == 1) {  // the common case, without the two divisions (they showed in profiles of small planes)
    k0 = start < 0 ? -start : 0;
    k1 = room < 0 ? 0 : room + 1;
  } else {
    k0 = start < 0 ? (-start + dilation - 1) / dilation : 0;
    k1 = room < 0 ? 0 : room / dilation + 1;
  }
  if (k1 > kernel) k1 = kernel;
  if (k0 > k1) k0 = k1;
  *first = k0;
  *last = k1;
}

// Outputs [*lo, *hi) whose whole max-pooling window lies inside [0, in): every tap of theirs
// reads the input, so loops over them need no bounds tests. The window's first tap decides the
// lower end and its last tap the upper end (conv_valid_output_range of each).
MEDKERN_HD void pool_interior_outputs(int64_t in, int64_t out_size, int64_t kernel, int64_t stride, int64_t pad,
                                      int64_t dilation, int64_t* lo, int64_t* hi) {
  int64_t first_lo, first_hi, last_lo, last_hi;
  conv_valid_output_range(in, out_size, 0, stride, pad, dilation, &first_lo, &first_hi);
  conv_valid_output_range(in, out_size, kernel - 1, stride, pad, dilation, &last_lo, &last_hi);
  *hi = last_hi;
  *lo = first_lo < last_hi ? first_lo : last_hi;
}

// Average pooling window along one axis for output index `o`:
//   start = o*stride - pad, end = min(start + kernel, in + pad)   (padded extent, "pool size")
//   then clipped to [0, in).
struct PoolWindow {
  int64_t start, end;   // clipped to the input
  int64_t padded_size;  // end - start before clipping (counts the padding)
};

MEDKERN_HD PoolWindow avg_pool_window(int64_t o, int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  int64_t start = o * stride - pad;
  int64_t end = start + kernel < in + pad ? start + kernel : in + pad;
  const int64_t padded = end - start;
  start = start < 0 ? 0 : start;
  end = end > in ? in : end;
  return {start, end, padded};
}

// Outputs whose undilated window covers input coordinate `in`, as [start, end): the gather form
// of the pooling backward pass. Output o covers in when o*stride - pad <= in <= o*stride - pad +
// kernel - 1. `divide_by_stride(x)` returns x / stride for x >= 0 (the GPU passes a
// multiply-shift divider, the CPU a plain division).
template <class I> struct OutputRange {
  I start, end;
};
template <class I, class DivideByStride>
MEDKERN_HD OutputRange<I> pool_output_range(I in, I kernel, I pad, I out_size, const DivideByStride& divide_by_stride) {
  const I last = in + pad;           // latest window start that still covers in
  const I first = last - kernel + 1;  // earliest window start that covers in
  const I start = first <= 0 ? I(0) : divide_by_stride(first - 1) + 1;  // ceil(first / stride)
  I end = divide_by_stride(last) + 1;
  if (end > out_size) end = out_size;
  return {start, end < start ? start : end};
}

// Divisor of one average-pooling output (torch: divisor_override, else the padded window
// area when count_include_pad, else the number of input elements in the window).
MEDKERN_HD int64_t avg_pool_divisor(const PoolWindow& h, const PoolWindow& w, bool count_include_pad,
                                    int64_t divisor_override) {
  if (divisor_override > 0) return divisor_override;
  if (count_include_pad) return h.padded_size * w.padded_size;
  return (h.end - h.start) * (w.end - w.start);
}

}  // namespace medkern
