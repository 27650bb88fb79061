// cpu/conv2d_winograd.h — 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3)
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 output
// tile is A^T [(G g G^T) . (B^T d B)] A for the 4x4 input patch d, so the K x C products per
// tile are 16 (one GEMM per transform point) instead of 36: 2.25x fewer multiplications than
// im2col + GEMM, with the same packed GEMM doing them.
#pragma once
#include <cstdint>

#include "medkern/conv.h"

namespace medkern::cpu {

// Whether the Winograd path serves this forward (or, with the weight's roles swapped, this
// backward-input) convolution: 3x3, stride 1, dilation 1, one group, at least 64 channels in
// and out and a 12x12 output (where it measured faster than im2col + GEMM). float32 only
// (float64 keeps the exact GEMM path).
bool conv2d_winograd_applies(int64_t C, int64_t K, int64_t P, int64_t Q, int64_t R, int64_t S,
                             const ConvParams& p);

// y[n, k] (= relu)(sum_c x[n, c] (*) w[k, c] + bias[k]) with zero padding (pad_h, pad_w).
// x: (N, C, H, W) with strides xs; w: (K, C, 3, 3) contiguous, or (C, K, 3, 3) read as the
// flipped transpose when `transposed_weight` (the backward-input convolution of a 3x3 stride-1
// layer); bias: K values or null; y: (N, K, P, Q) contiguous. `prepared`: the weights as
// conv2d_winograd_prepare_weights left them (then w is not read), or null to transform them here.
void conv2d_winograd_forward(const float* x, const int64_t shape[4], const int64_t xs[4], const float* w, int64_t K,
                             bool transposed_weight, const float* bias, float* y, int64_t P, int64_t Q, int64_t pad_h,
                             int64_t pad_w, bool relu, const float* prepared = nullptr);

// Floats that the transformed, packed weights of a K x C layer take (16 packed K x C panels).
int64_t conv2d_winograd_weight_elements(int64_t K, int64_t C);

// Transforms and packs w (as conv2d_winograd_forward reads it) into dst
// (conv2d_winograd_weight_elements floats), for forwards that reuse it.
void conv2d_winograd_prepare_weights(const float* w, int64_t K, int64_t C, bool transposed_weight, float* dst);

}  // namespace medkern::cpu
