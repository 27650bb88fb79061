// cpu/simd/pooling_kernels.h — the max-pooling inner loops of 2-D and 3-D pooling, written once
// as templates and compiled per instruction set (pooling_avx2/scalar.cpp set MEDKERN_SIMD_NS and
// the -m flags; there is no AVX-512 build: on the pooling rows of CNNs (5-56 outputs) its masked
// tails ran 1.3-3x slower than AVX2 on Sapphire Rapids, so AVX-512 machines use the AVX2 variant).
// Each output row (od, oh) is built input-row by input-row over the window's (kd, kh) taps with
// the loop over output columns innermost, so the compiler vectorizes across columns (masked
// selects carry the int64 index); 2-D pooling is the depth-1 case. The window bounds, the NaN
// rule and the border windows' scan come from common/pooling_math.h.
#pragma once
#include <cstdint>
#include <limits>

#include "common/pooling_math.h"
#include "medkern/pooling.h"

namespace medkern::cpu {

// One call covers the (n, c) planes [begin, end) of an (N, C) grid, each a D x H x W volume; the
// input is read through strides, output and indices are dense (N*C, OD, P, Q).
template <class T>
struct MaxPoolPlanes {
  const T* input;
  int64_t channels, stride_n, stride_c, stride_d, stride_h, stride_w, depth, height, width;
  T* output;
  int64_t* indices;  // may be null: values only
  int64_t out_d, out_h, out_w;
  PoolParams p;
};

#define MEDKERN_DECLARE_POOLING_KERNELS(ns)                                        \
  namespace ns {                                                                   \
  void max_pool_planes(const MaxPoolPlanes<float>& a, int64_t begin, int64_t end);  \
  void max_pool_planes(const MaxPoolPlanes<double>& a, int64_t begin, int64_t end); \
  }
MEDKERN_DECLARE_POOLING_KERNELS(simd_avx2)
MEDKERN_DECLARE_POOLING_KERNELS(simd_scalar)
#undef MEDKERN_DECLARE_POOLING_KERNELS

}  // namespace medkern::cpu

#ifdef MEDKERN_SIMD_NS
namespace medkern::cpu::MEDKERN_SIMD_NS {
namespace {

// Folds one input row (row_index = its flat offset (z * H + y) * W) into the running maxima of
// output columns [q0, q1), all of whose windows lie inside the row. KW/SW > 0 fix kernel width and
// stride at compile time (the common 2x2 and 3x3 pools) so the column loop becomes straight
// vector code.
template <class T, int KW, int SW, bool IDX>
void fold_row(const T* row, int64_t row_index, int64_t sw_elem, int64_t kernel_w, int64_t stride_w,
              int64_t dilation_w, int64_t pad_w, int64_t q0, int64_t q1, bool first, T* __restrict m,
              int64_t* __restrict mi) {
  const int64_t kw_n = KW > 0 ? KW : kernel_w;
  const int64_t sw = SW > 0 ? SW : stride_w;
  for (int64_t kw = 0; kw < kw_n; ++kw) {
    const int64_t off = kw * dilation_w - pad_w;
    if (first && kw == 0) {
      if (sw_elem == 1) {
#pragma omp simd
        for (int64_t q = q0; q < q1; ++q) {
          m[q] = row[q * sw + off];
          if (IDX) mi[q] = row_index + q * sw + off;
        }
      } else {
        for (int64_t q = q0; q < q1; ++q) {
          m[q] = row[(q * sw + off) * sw_elem];
          if (IDX) mi[q] = row_index + q * sw + off;
        }
      }
      continue;
    }
    if (sw_elem == 1) {
#pragma omp simd
      for (int64_t q = q0; q < q1; ++q) {
        const T v = row[q * sw + off];
        const bool take = max_pool_replaces(v, m[q]);
        m[q] = take ? v : m[q];
        if (IDX) mi[q] = take ? row_index + q * sw + off : mi[q];
      }
    } else {
      for (int64_t q = q0; q < q1; ++q) {
        const T v = row[(q * sw + off) * sw_elem];
        const bool take = max_pool_replaces(v, m[q]);
        m[q] = take ? v : m[q];
        if (IDX) mi[q] = take ? row_index + q * sw + off : mi[q];
      }
    }
  }
}

// Every tap of a full K x K (KD = 1) or K x K x K (KD = K) window with unit column stride, the
// window's first input row being (zs, hs): one pass per output row, all taps unrolled (the
// 2x2/s2 and 3x3/s2 pools of CNNs spend their time here).
template <class T, int KD, int K, int S, bool IDX>
void fused_rows(const T* in, int64_t stride_d, int64_t stride_h, int64_t zs, int64_t hs, int64_t H, int64_t W,
                int64_t pad_w, int64_t q0, int64_t q1, T* __restrict m, int64_t* __restrict mi) {
  constexpr int R = KD * K;
  const T* rows[R];
  int64_t base[R];  // flat offset of each row
  for (int kd = 0; kd < KD; ++kd)
    for (int kh = 0; kh < K; ++kh) {
      rows[kd * K + kh] = in + (zs + kd) * stride_d + (hs + kh) * stride_h;
      base[kd * K + kh] = ((zs + kd) * H + hs + kh) * W;
    }
#pragma omp simd
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t w = q * S - pad_w;
    T best = rows[0][w];
    int64_t best_i = base[0] + w;
    for (int r = 0; r < R; ++r)
      for (int kw = 0; kw < K; ++kw) {
        if (r == 0 && kw == 0) continue;
        const T v = rows[r][w + kw];
        const bool take = max_pool_replaces(v, best);
        best = take ? v : best;
        if (IDX) best_i = take ? base[r] + w + kw : best_i;
      }
    m[q] = best;
    if (IDX) mi[q] = best_i;
  }
}

// KD: the window depth the fused loop takes (1 for 2-D, KW for a cubic window; 0: none).
template <class T, int KW, int SW, int KD, bool IDX>
void max_pool_planes_impl(const MaxPoolPlanes<T>& a, int64_t begin, int64_t end) {
  constexpr int K = KW > 0 ? KW : 1, S = SW > 0 ? SW : 1;
  const PoolParams& p = a.p;
  const int64_t D = a.depth, H = a.height, W = a.width, OD = a.out_d, P = a.out_h, Q = a.out_w;
  // Output columns whose whole window lies inside [0, W): handled by the vector loops.
  int64_t q0, q1;
  pool_interior_outputs(W, Q, p.w.kernel, p.w.stride, p.w.pad, p.w.dilation, &q0, &q1);
  // the fused loops take every tap of a K x K (2-D) or K x K x K (3-D) window
  const bool fusable = KW > 0 && KD > 0 && p.h.kernel == KW && p.h.dilation == 1 && a.stride_w == 1 &&
                       p.d.kernel == KD && (KD == 1 || p.d.dilation == 1);
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / a.channels, c = plane % a.channels;
    const T* in = a.input + n * a.stride_n + c * a.stride_c;
    auto load = [&](int64_t z, int64_t y, int64_t x) { return in[z * a.stride_d + y * a.stride_h + x * a.stride_w]; };
    for (int64_t od = 0; od < OD; ++od) {
      const AxisTaps<int64_t> tz = max_pool_taps(od, p.d.kernel, p.d.stride, p.d.pad, p.d.dilation, D);
      for (int64_t oh = 0; oh < P; ++oh) {
        const AxisTaps<int64_t> ty = max_pool_taps(oh, p.h.kernel, p.h.stride, p.h.pad, p.h.dilation, H);
        const int64_t row0 = (plane * OD + od) * P + oh;
        T* m = a.output + row0 * Q;
        int64_t* mi = IDX ? a.indices + row0 * Q : nullptr;
        // a unit window depth (KD = 1) always has its one tap inside
        const int64_t rows = KD == 1 ? ty.count() : tz.count() * ty.count();
        // no input row in the window (only possible with large dilation): the scan below takes
        // every column
        const int64_t lo = rows > 0 ? q0 : Q, hi = rows > 0 ? q1 : Q;
        if (fusable && rows == p.d.kernel * KW && lo < hi) {
          fused_rows<T, (KD > 0 ? KD : 1), K, S, IDX>(in, a.stride_d, a.stride_h, tz.start, ty.start, H, W, p.w.pad,
                                                    lo, hi, m, mi);
        } else if (lo < hi) {
          bool first = true;
          for (int64_t kz = tz.first; kz < tz.last; ++kz)
            for (int64_t ky = ty.first; ky < ty.last; ++ky) {
              const int64_t z = tz.coord(kz), y = ty.coord(ky);
              fold_row<T, KW, SW, IDX>(in + z * a.stride_d + y * a.stride_h, (z * H + y) * W, a.stride_w,
                                       p.w.kernel, p.w.stride, p.w.dilation, p.w.pad, lo, hi, first, m, mi);
              first = false;
            }
        }
        // Border columns (window partly in the padding): the shared scan, in torch's tap order.
        for (int64_t q = 0; q < Q; ++q) {
          if (q == lo) q = hi;
          if (q >= Q) break;
          const AxisTaps<int64_t> tx = max_pool_taps(q, p.w.kernel, p.w.stride, p.w.pad, p.w.dilation, W);
          const MaxPoolResult<T, int64_t> r = max_pool_window<T>(tz, ty, tx, H, W, load);
          m[q] = r.value;
          if (IDX) mi[q] = r.index;
        }
      }
    }
  }
}

// The window depth's variants of one (KW, SW) shape: 2-D (KD = 1), cubic (KD = KW), other.
template <class T, int KW, int SW, bool IDX>
void max_pool_planes_by_depth(const MaxPoolPlanes<T>& a, int64_t begin, int64_t end) {
  const PoolAxis& d = a.p.d;
  if (d.kernel == 1) return max_pool_planes_impl<T, KW, SW, 1, IDX>(a, begin, end);
  if (KW > 1 && d.kernel == KW && d.dilation == 1) return max_pool_planes_impl<T, KW, SW, KW, IDX>(a, begin, end);
  max_pool_planes_impl<T, KW, SW, 0, IDX>(a, begin, end);
}

template <class T, bool IDX>
void max_pool_planes_by_shape(const MaxPoolPlanes<T>& a, int64_t begin, int64_t end) {
  const PoolAxis& w = a.p.w;
  if (w.dilation == 1 && w.kernel == 2 && w.stride == 2) return max_pool_planes_by_depth<T, 2, 2, IDX>(a, begin, end);
  if (w.dilation == 1 && w.kernel == 3 && w.stride == 2) return max_pool_planes_by_depth<T, 3, 2, IDX>(a, begin, end);
  if (w.dilation == 1 && w.kernel == 3 && w.stride == 1) return max_pool_planes_by_depth<T, 3, 1, IDX>(a, begin, end);
  max_pool_planes_impl<T, 0, 0, 0, IDX>(a, begin, end);
}

// indices == nullptr: inference without autograd, where writing int64 indices would cost more
// memory traffic than the pooling itself.
template <class T>
void max_pool_planes_dispatch(const MaxPoolPlanes<T>& a, int64_t begin, int64_t end) {
  if (a.indices) max_pool_planes_by_shape<T, true>(a, begin, end);
  else max_pool_planes_by_shape<T, false>(a, begin, end);
}

}  // namespace

void max_pool_planes(const MaxPoolPlanes<float>& a, int64_t begin, int64_t end) { max_pool_planes_dispatch(a, begin, end); }
void max_pool_planes(const MaxPoolPlanes<double>& a, int64_t begin, int64_t end) {
  max_pool_planes_dispatch(a, begin, end);
}

}  // namespace medkern::cpu::MEDKERN_SIMD_NS
#endif
