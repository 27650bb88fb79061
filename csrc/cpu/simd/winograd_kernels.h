// cpu/simd/winograd_kernels.h — the transforms of the F(2x2, 3x3) Winograd convolution
// (cpu/conv2d_winograd.cpp), one row of output tiles at a time so the loops run across tiles
// and the compiler vectorizes them. Written once as templates; each instruction-set file
// (winograd_avx2.cpp, winograd_avx512.cpp) and the base build instantiate them with a tag type
// of internal linkage, so the copies never merge at link time.
#pragma once
#include <cstdint>

namespace medkern::cpu {

// Input transform V = B^T d B, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], of the `tiles`
// 4x4 patches of one tile row: patch j covers columns 2j .. 2j + 3 of the four input rows
// r[0..3] (each 2 * tiles + 2 long, padding already zero). Point xi of tile j goes to
// dst[xi * point_stride + j].
template <class IsaTag>
void winograd_input_row_body(const float* const r[4], int64_t tiles, float* dst, int64_t point_stride) {
  const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];
  float* v[16];
  for (int xi = 0; xi < 16; ++xi) v[xi] = dst + xi * point_stride;
  for (int64_t j = 0; j < tiles; ++j) {
    float t[4][4];
    for (int e = 0; e < 4; ++e) {
      const int64_t c = 2 * j + e;
      t[0][e] = r0[c] - r2[c];
      t[1][e] = r1[c] + r2[c];
      t[2][e] = r2[c] - r1[c];
      t[3][e] = r1[c] - r3[c];
    }
    for (int a = 0; a < 4; ++a) {
      v[4 * a + 0][j] = t[a][0] - t[a][2];
      v[4 * a + 1][j] = t[a][1] + t[a][2];
      v[4 * a + 2][j] = t[a][2] - t[a][1];
      v[4 * a + 3][j] = t[a][1] - t[a][3];
    }
  }
}

// Output transform Y = A^T m A, A^T = [1 1 1 0; 0 1 -1 -1], of one tile row: tile j's 16
// products are m[xi * point_stride + j]; its 2x2 outputs (+ bias, then relu) go to columns 2j,
// 2j + 1 of out0 (first output row) and out1 (second), each 2 * tiles long.
template <class IsaTag>
void winograd_output_row_body(const float* m, int64_t point_stride, int64_t tiles, float bias, bool relu, float* out0,
                              float* out1) {
  const float* p[16];
  for (int xi = 0; xi < 16; ++xi) p[xi] = m + xi * point_stride;
  for (int64_t j = 0; j < tiles; ++j) {
    float t[2][4];
    for (int b = 0; b < 4; ++b) {
      t[0][b] = p[b][j] + p[4 + b][j] + p[8 + b][j];
      t[1][b] = p[4 + b][j] - p[8 + b][j] - p[12 + b][j];
    }
    float y[4] = {t[0][0] + t[0][1] + t[0][2] + bias, t[0][1] - t[0][2] - t[0][3] + bias,
                  t[1][0] + t[1][1] + t[1][2] + bias, t[1][1] - t[1][2] - t[1][3] + bias};
    if (relu)
      for (float& value : y) value = value < 0.0f ? 0.0f : value;  // NaN stays NaN
    out0[2 * j] = y[0];
    out0[2 * j + 1] = y[1];
    out1[2 * j] = y[2];
    out1[2 * j + 1] = y[3];
  }
}

#define MEDKERN_DECLARE_WINOGRAD_KERNELS(ns)                                                                  \
  namespace ns {                                                                                             \
  void winograd_input_row(const float* const r[4], int64_t tiles, float* dst, int64_t point_stride);          \
  void winograd_output_row(const float* m, int64_t point_stride, int64_t tiles, float bias, bool relu,         \
                           float* out0, float* out1);                                                        \
  }
MEDKERN_DECLARE_WINOGRAD_KERNELS(simd_avx2)
MEDKERN_DECLARE_WINOGRAD_KERNELS(simd_avx512)
#undef MEDKERN_DECLARE_WINOGRAD_KERNELS

}  // namespace medkern::cpu

#ifdef MEDKERN_SIMD_NS
namespace medkern::cpu::MEDKERN_SIMD_NS {
namespace {
struct IsaTag {};
}  // namespace

void winograd_input_row(const float* const r[4], int64_t tiles, float* dst, int64_t point_stride) {
  winograd_input_row_body<IsaTag>(r, tiles, dst, point_stride);
}
void winograd_output_row(const float* m, int64_t point_stride, int64_t tiles, float bias, bool relu, float* out0,
                         float* out1) {
  winograd_output_row_body<IsaTag>(m, point_stride, tiles, bias, relu, out0, out1);
}

}  // namespace medkern::cpu::MEDKERN_SIMD_NS
#endif
