// cpu/simd/pooling_kernels.h — the max-pooling inner loops, written once as templates and
// compiled per instruction set (pooling_avx2/scalar.cpp set MEDKERN_SIMD_NS and the -m flags;
// there is no AVX-512 build: on the pooling rows of CNNs (5-56 outputs) its masked tails ran
// 1.3-3x slower than AVX2 on Sapphire Rapids, so AVX-512 machines use the AVX2 variant). Each
// output row is built kernel-row by kernel-row with the loop over output columns innermost, so
// the compiler vectorizes across columns (masked selects carry the int64 index). The window
// bounds come from common/pooling_math.h.
#pragma once
#include <cstdint>
#include <limits>

#include "common/pooling_math.h"
#include "medkern/pooling.h"

namespace medkern::cpu {

// One call covers planes [begin, end) of an (N, C) grid; the input is read through strides,
// output and indices are dense (N*C, P, Q).
template <class T>
struct MaxPoolPlanes {
  const T* input;
  int64_t channels, stride_n, stride_c, stride_h, stride_w, height, width;
  T* output;
  int64_t* indices;  // may be null: values only
  int64_t out_h, out_w;
  Pool2dParams p;
};

#define MEDKERN_DECLARE_POOLING_KERNELS(ns)                                         \
  namespace ns {                                                                    \
  void max_pool2d_planes(const MaxPoolPlanes<float>& a, int64_t begin, int64_t end);  \
  void max_pool2d_planes(const MaxPoolPlanes<double>& a, int64_t begin, int64_t end); \
  }
MEDKERN_DECLARE_POOLING_KERNELS(simd_avx2)
MEDKERN_DECLARE_POOLING_KERNELS(simd_scalar)
#undef MEDKERN_DECLARE_POOLING_KERNELS

}  // namespace medkern::cpu

#ifdef MEDKERN_SIMD_NS
namespace medkern::cpu::MEDKERN_SIMD_NS {
namespace {

// Folds one kernel row `h` into the running maxima of output columns [q0, q1), all of whose
// windows lie inside the row. KW/SW > 0 fix kernel width and stride at compile time (the
// common 2x2 and 3x3 pools) so the column loop becomes straight vector code.
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
        const bool take = v > m[q] || v != v;  // NaN wins, as in torch
        m[q] = take ? v : m[q];
        if (IDX) mi[q] = take ? row_index + q * sw + off : mi[q];
      }
    } else {
      for (int64_t q = q0; q < q1; ++q) {
        const T v = row[(q * sw + off) * sw_elem];
        const bool take = v > m[q] || v != v;
        m[q] = take ? v : m[q];
        if (IDX) mi[q] = take ? row_index + q * sw + off : mi[q];
      }
    }
  }
}

// All K kernel rows inside the input and unit column stride: one pass per output row, every
// tap of the K x K window unrolled (the 2x2/s2 and 3x3/s2 pools of CNNs spend their time here).
template <class T, int K, int S, bool IDX>
void fused_rows(const T* in, int64_t stride_h, int64_t hs, int64_t W, int64_t pad_w, int64_t q0, int64_t q1,
                T* __restrict m, int64_t* __restrict mi) {
  const T* rows[K];
  for (int kh = 0; kh < K; ++kh) rows[kh] = in + (hs + kh) * stride_h;
#pragma omp simd
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t w = q * S - pad_w;
    T best = rows[0][w];
    int64_t best_i = hs * W + w;
    for (int kh = 0; kh < K; ++kh)
      for (int kw = 0; kw < K; ++kw) {
        if (kh == 0 && kw == 0) continue;
        const T v = rows[kh][w + kw];
        const bool take = v > best || v != v;  // NaN wins, as in torch
        best = take ? v : best;
        if (IDX) best_i = take ? (hs + kh) * W + w + kw : best_i;
      }
    m[q] = best;
    if (IDX) mi[q] = best_i;
  }
}

template <class T, int KW, int SW, bool IDX>
void max_pool2d_planes_impl(const MaxPoolPlanes<T>& a, int64_t begin, int64_t end) {
  const Pool2dParams& p = a.p;
  const int64_t H = a.height, W = a.width, P = a.out_h, Q = a.out_w;
  // Output columns whose whole window lies inside [0, W): handled by the vector loops.
  int64_t q0, q1;
  pool_interior_outputs(W, Q, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, &q0, &q1);
  for (int64_t plane = begin; plane < end; ++plane) {
    const int64_t n = plane / a.channels, c = plane % a.channels;
    const T* in = a.input + n * a.stride_n + c * a.stride_c;
    T* out = a.output + plane * P * Q;
    int64_t* idx = IDX ? a.indices + plane * P * Q : nullptr;
    for (int64_t oh = 0; oh < P; ++oh) {
      const int64_t hs = oh * p.stride_h - p.pad_h;
      int64_t kh0, kh1;
      pool_valid_taps(hs, p.kernel_h, p.dilation_h, H, &kh0, &kh1);
      T* m = out + oh * Q;
      int64_t* mi = IDX ? idx + oh * Q : nullptr;
      const bool fused = KW > 0 && p.kernel_h == KW && p.stride_h == SW && p.dilation_h == 1 &&
                         a.stride_w == 1 && kh0 == 0 && kh1 == KW;
      if (fused) {
        fused_rows<T, (KW > 0 ? KW : 1), (SW > 0 ? SW : 1), IDX>(in, a.stride_h, hs, W, p.pad_w, q0, q1, m, mi);
      }
      for (int64_t kh = kh0; kh < kh1 && !fused; ++kh) {
        const int64_t h = hs + kh * p.dilation_h;
        fold_row<T, KW, SW, IDX>(in + h * a.stride_h, h * W, a.stride_w, p.kernel_w, p.stride_w, p.dilation_w, p.pad_w,
                            q0, q1, kh == kh0, m, mi);
      }
      // Border columns (window partly in the padding): plain loops in torch's (kh, kw) order.
      for (int64_t q = 0; q < Q; ++q) {
        if (q == q0) q = q1;
        if (q >= Q) break;
        const int64_t ws = q * p.stride_w - p.pad_w;
        int64_t kw0, kw1;
        pool_valid_taps(ws, p.kernel_w, p.dilation_w, W, &kw0, &kw1);
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_i = (hs + kh0 * p.dilation_h) * W + ws + kw0 * p.dilation_w;
        for (int64_t kh = kh0; kh < kh1; ++kh) {
          const int64_t h = hs + kh * p.dilation_h;
          for (int64_t kw = kw0; kw < kw1; ++kw) {
            const int64_t w = ws + kw * p.dilation_w;
            const T v = in[h * a.stride_h + w * a.stride_w];
            if (v > best || v != v) { best = v; best_i = h * W + w; }
          }
        }
        m[q] = best;
        if (IDX) mi[q] = best_i;
      }
      if (kh0 == kh1) {  // no kernel row inside the input (only possible with large dilation)
        for (int64_t q = q0; q < q1; ++q) {
          m[q] = -std::numeric_limits<T>::infinity();
          if (IDX) mi[q] = 0;
        }
      }
    }
  }
}

template <class T, bool IDX>
void max_pool2d_planes_by_shape(const MaxPoolPlanes<T>& a, int64_t begin, int64_t end) {
  const Pool2dParams& p = a.p;
  if (p.dilation_w == 1 && p.kernel_w == 2 && p.stride_w == 2)
    return max_pool2d_planes_impl<T, 2, 2, IDX>(a, begin, end);
  if (p.dilation_w == 1 && p.kernel_w == 3 && p.stride_w == 2)
    return max_pool2d_planes_impl<T, 3, 2, IDX>(a, begin, end);
  if (p.dilation_w == 1 && p.kernel_w == 3 && p.stride_w == 1)
    return max_pool2d_planes_impl<T, 3, 1, IDX>(a, begin, end);
  max_pool2d_planes_impl<T, 0, 0, IDX>(a, begin, end);
}

// indices == nullptr: inference without autograd, where writing int64 indices would cost more
// memory traffic than the pooling itself.
template <class T>
void max_pool2d_planes_dispatch(const MaxPoolPlanes<T>& a, int64_t begin, int64_t end) {
  if (a.indices) max_pool2d_planes_by_shape<T, true>(a, begin, end);
  else max_pool2d_planes_by_shape<T, false>(a, begin, end);
}

}  // namespace

void max_pool2d_planes(const MaxPoolPlanes<float>& a, int64_t begin, int64_t end) {
  max_pool2d_planes_dispatch(a, begin, end);
}
void max_pool2d_planes(const MaxPoolPlanes<double>& a, int64_t begin, int64_t end) {
  max_pool2d_planes_dispatch(a, begin, end);
}

}  // namespace medkern::cpu::MEDKERN_SIMD_NS
#endif
