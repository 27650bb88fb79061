// cpu/conv_direct.h — the direct convolution used where im2col + GEMM wastes the register
// tile: few input channels per group (the single-channel first layer of medical CNNs, depthwise
// convs). The loop nest lives once in simd/conv2d_direct_kernel.h, compiled per ISA.
#pragma once
#include <cstdint>

#include "medkern/conv.h"

namespace medkern::cpu {

inline bool conv_direct_applies(int64_t channels_per_group, int64_t out_per_group, int64_t out_width) {
  return channels_per_group <= 4 && out_width >= 4;
}

// Sizes of one direct convolution: input (N, C, D, H, W) with element strides xs, weight
// (K, C/groups, T, R, S), output (N, K, OD, P, Q).
struct DirectShape {
  int64_t N, C, D, H, W, K, T, R, S, OD, P, Q;
  int64_t xs[5];
};

// x: input; w: dense weight; bias: dense (K,) or null; y: dense output.
template <class T>
void conv_direct_forward(const T* x, const DirectShape& sh, const T* w, const T* bias, T* y, const ConvParams& p);

// Weight gradient for unit column stride and at most kDirectMaxTaps taps per filter
// (C/groups*T*R*S): dw (K, C/groups, T, R, S) dense, overwritten. dy has dense (OD, P, Q) volumes.
constexpr int64_t kDirectMaxTaps = 36;
inline bool conv_direct_weight_grad_applies(int64_t taps, int64_t stride_w) {
  return taps <= kDirectMaxTaps && stride_w == 1;
}
template <class T>
void conv_direct_backward_weight(const T* x, const DirectShape& sh, const T* dy, int64_t dy_sample,
                                 int64_t dy_channel, T* dw, const ConvParams& p);

// Per-ISA row kernels (simd/conv2d_direct_*.cpp): kb (<= 8) output channels of one sample.
template <class T>
using DirectRowsFn = void (*)(const T* padded, int64_t padded_w, int64_t plane, int64_t channels, const T* w,
                              int64_t R, int64_t S, int64_t kb, const T* bias, T* y, int64_t y_plane, int64_t P,
                              int64_t Q, const ConvParams& p);
template <class T>
using DirectWeightGradFn = void (*)(const T* padded, int64_t padded_w, const int64_t* tap_offsets, int64_t taps,
                                    const T* dy, int64_t dy_channel, int64_t kn, int64_t P, int64_t Q, int64_t sh,
                                    T* dw);
DirectWeightGradFn<float> conv2d_direct_weight_grad_f32_avx512();
DirectWeightGradFn<double> conv2d_direct_weight_grad_f64_avx512();
DirectWeightGradFn<float> conv2d_direct_weight_grad_f32_avx2();
DirectWeightGradFn<double> conv2d_direct_weight_grad_f64_avx2();
DirectWeightGradFn<float> conv2d_direct_weight_grad_f32_scalar();
DirectWeightGradFn<double> conv2d_direct_weight_grad_f64_scalar();
DirectRowsFn<float> conv2d_direct_rows_f32_avx512();
DirectRowsFn<double> conv2d_direct_rows_f64_avx512();
DirectRowsFn<float> conv2d_direct_rows_f32_avx2();
DirectRowsFn<double> conv2d_direct_rows_f64_avx2();
DirectRowsFn<float> conv2d_direct_rows_f32_scalar();
DirectRowsFn<double> conv2d_direct_rows_f64_scalar();

}  // namespace medkern::cpu
