// common/pooling_math.h — pooling window math shared by the CPU and CUDA kernels, with torch's
// rules: output size (incl. ceil_mode's "last window starts inside input or left padding"),
// max- and average-pooling window bounds, the max-pool scan of one window (NaN rule, tap order,
// flat index) and the average-pooling divisor. Written per axis, so 2-D and 3-D share it.
#pragma once
#include <cstdint>
#include <limits>

#include "common/conv_math.h"
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
// inside). `I` is the index type (the GPU runs 32-bit when the tensors fit).
template <class I>
MEDKERN_HD void pool_valid_taps(I start, I kernel, I dilation, I size, I* first, I* last) {
  const I room = size - 1 - start;  // largest offset from start still inside
  I k0, k1;
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

// The taps of output `o`'s max-pooling window along one axis that read the input: tap k reads
// coordinate coord(k) for k in [first, last). coord(first) is also torch's index coordinate of a
// window with no tap inside (possible with dilation): the first tap at or past 0.
template <class I> struct AxisTaps {
  I start, first, last, dilation;
  MEDKERN_HD I coord(I k) const { return start + k * dilation; }
  MEDKERN_HD I count() const { return last - first; }
};

template <class I>
MEDKERN_HD AxisTaps<I> max_pool_taps(I o, I kernel, I stride, I pad, I dilation, I size) {
  AxisTaps<I> t;
  t.start = o * stride - pad;
  t.dilation = dilation;
  pool_valid_taps(t.start, kernel, dilation, size, &t.first, &t.last);
  return t;
}

// torch's max rule: a larger value or a NaN replaces the running maximum (so NaN propagates, the
// first of equal maxima is kept and the last NaN's index wins).
template <class T> MEDKERN_HD bool max_pool_replaces(T value, T best) { return value > best || value != value; }

template <class Acc, class I> struct MaxPoolResult {
  Acc value;
  I index;  // flat (z * H + y) * W + x in the input volume
};

// The maximum of one window over its taps in torch's (depth, row, column) order; load(z, y, x)
// reads the input. A window without a tap inside gives -inf at torch's index (AxisTaps::coord).
template <class Acc, class I, class Load>
MEDKERN_HD MaxPoolResult<Acc, I> max_pool_window(const AxisTaps<I>& tz, const AxisTaps<I>& ty, const AxisTaps<I>& tx,
                                                 I H, I W, const Load& load) {
  MaxPoolResult<Acc, I> r{-std::numeric_limits<Acc>::infinity(),
                          (tz.coord(tz.first) * H + ty.coord(ty.first)) * W + tx.coord(tx.first)};
  for (I kz = tz.first; kz < tz.last; ++kz) {
    const I z = tz.coord(kz);
    for (I ky = ty.first; ky < ty.last; ++ky) {
      const I y = ty.coord(ky);
      for (I kx = tx.first; kx < tx.last; ++kx) {
        const I x = tx.coord(kx);
        const Acc v = load(z, y, x);
        if (max_pool_replaces(v, r.value)) {
          r.value = v;
          r.index = (z * H + y) * W + x;
        }
      }
    }
  }
  return r;
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

// The window of a unit axis (2-D pooling's depth): one element, no padding.
MEDKERN_HD PoolWindow unit_pool_window() { return {0, 1, 1}; }

// Divisor of one average-pooling output (torch: divisor_override, else the padded window
// volume when count_include_pad, else the number of input elements in the window).
MEDKERN_HD int64_t avg_pool_divisor(const PoolWindow& d, const PoolWindow& h, const PoolWindow& w,
                                    bool count_include_pad, int64_t divisor_override) {
  if (divisor_override > 0) return divisor_override;
  if (count_include_pad) return d.padded_size * h.padded_size * w.padded_size;
  return (d.end - d.start) * (h.end - h.start) * (w.end - w.start);
}

}  // namespace medkern
