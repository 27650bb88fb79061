// cpu/simd/batch_norm_kernels.h — the two element-wise passes of batch norm (normalize with a
// per-channel scale/shift; training/eval input gradient), written once as templates and
// compiled per instruction set (batch_norm_avx512/avx2/scalar.cpp). Rows are (n, c) runs of
// S elements; with S = 16..49 in late CNN layers, wide vectors matter more than in a long loop.
#pragma once
#include <cstdint>

#include "common/batch_norm_math.h"

namespace medkern::cpu {

template <class T>
struct BatchNormRows {
  int64_t C, S;
  const T* x;
  int64_t x_stride_n, x_stride_c, x_stride_s;
  const T* g;  // grad_output (input_grad_rows only)
  int64_t g_stride_n, g_stride_c, g_stride_s;
  T* out;      // dense (N, C, S)
  // per channel: normalize uses scale/shift; input_grad uses the rest
  const T *scale, *shift, *mean, *invstd, *weight, *mean_dy, *mean_dy_xhat;
  bool training;
};

#define MEDKERN_DECLARE_BATCH_NORM_KERNELS(ns)                                      \
  namespace ns {                                                                    \
  void normalize_rows(const BatchNormRows<float>& a, int64_t begin, int64_t end);   \
  void normalize_rows(const BatchNormRows<double>& a, int64_t begin, int64_t end);  \
  void input_grad_rows(const BatchNormRows<float>& a, int64_t begin, int64_t end);  \
  void input_grad_rows(const BatchNormRows<double>& a, int64_t begin, int64_t end); \
  }
MEDKERN_DECLARE_BATCH_NORM_KERNELS(simd_avx512)
MEDKERN_DECLARE_BATCH_NORM_KERNELS(simd_avx2)
MEDKERN_DECLARE_BATCH_NORM_KERNELS(simd_scalar)
#undef MEDKERN_DECLARE_BATCH_NORM_KERNELS

}  // namespace medkern::cpu

#ifdef MEDKERN_SIMD_NS
namespace medkern::cpu::MEDKERN_SIMD_NS {
namespace {

template <class T>
void normalize_rows_impl(const BatchNormRows<T>& a, int64_t begin, int64_t end) {
  int64_t n = begin / a.C, c = begin % a.C;
  for (int64_t row = begin; row < end; ++row) {
    const T* __restrict xp = a.x + n * a.x_stride_n + c * a.x_stride_c;
    T* __restrict yp = a.out + row * a.S;
    const T scale = a.scale[c], shift = a.shift[c];
    if (a.x_stride_s == 1) {
#pragma omp simd
      for (int64_t s = 0; s < a.S; ++s) yp[s] = xp[s] * scale + shift;
    } else {
      for (int64_t s = 0; s < a.S; ++s) yp[s] = xp[s * a.x_stride_s] * scale + shift;
    }
    if (++c == a.C) { c = 0; ++n; }
  }
}

template <class T>
void input_grad_rows_impl(const BatchNormRows<T>& a, int64_t begin, int64_t end) {
  int64_t n = begin / a.C, c = begin % a.C;
  const bool training = a.training;
  for (int64_t row = begin; row < end; ++row) {
    const T* __restrict xp = a.x + n * a.x_stride_n + c * a.x_stride_c;
    const T* __restrict gp = a.g + n * a.g_stride_n + c * a.g_stride_c;
    T* __restrict dx = a.out + row * a.S;
    const T m = a.mean[c], is = a.invstd[c], w = a.weight[c], mdy = a.mean_dy[c], mdyx = a.mean_dy_xhat[c];
    if (a.x_stride_s == 1 && a.g_stride_s == 1) {
#pragma omp simd
      for (int64_t s = 0; s < a.S; ++s) dx[s] = batch_norm_input_grad(gp[s], xp[s], m, is, w, mdy, mdyx, training);
    } else {
      for (int64_t s = 0; s < a.S; ++s)
        dx[s] = batch_norm_input_grad(gp[s * a.g_stride_s], xp[s * a.x_stride_s], m, is, w, mdy, mdyx, training);
    }
    if (++c == a.C) { c = 0; ++n; }
  }
}

}  // namespace

void normalize_rows(const BatchNormRows<float>& a, int64_t b, int64_t e) { normalize_rows_impl(a, b, e); }
void normalize_rows(const BatchNormRows<double>& a, int64_t b, int64_t e) { normalize_rows_impl(a, b, e); }
void input_grad_rows(const BatchNormRows<float>& a, int64_t b, int64_t e) { input_grad_rows_impl(a, b, e); }
void input_grad_rows(const BatchNormRows<double>& a, int64_t b, int64_t e) { input_grad_rows_impl(a, b, e); }

}  // namespace medkern::cpu::MEDKERN_SIMD_NS
#endif
