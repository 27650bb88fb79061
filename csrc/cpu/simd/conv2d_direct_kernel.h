// cpu/simd/conv2d_direct_kernel.h — the direct convolution's inner loop nest, written once and
// compiled per ISA (the compiler vectorizes over output columns; `#pragma omp simd` asks for it).
// Reads a zero-padded copy of the input, so no tap needs a bounds test, and computes up to four
// output channels per pass so each input load feeds four FMAs.
#pragma once
#include <cstdint>

// padded: channels x (Hp x Wp) planes of `plane` elements with row length padded_w;
// w: kb consecutive filters (channels*R*S each); y: kb output planes y_plane apart.
template <class T, int KB>
void conv2d_direct_rows(const T* padded, int64_t padded_w, int64_t plane, int64_t channels, const T* w,
                        int64_t R, int64_t S, const T* bias, T* y, int64_t y_plane, int64_t P, int64_t Q,
                        int64_t sh, int64_t sw, int64_t dh, int64_t dw, bool relu) {
  const int64_t taps = channels * R * S;
  for (int64_t pp = 0; pp < P; ++pp) {
    const T* row0 = padded + pp * sh * padded_w;
    T* out[KB];
    for (int k = 0; k < KB; ++k) out[k] = y + k * y_plane + pp * Q;
#pragma omp simd
    for (int64_t q = 0; q < Q; ++q) {
      T acc[KB];
      for (int k = 0; k < KB; ++k) acc[k] = bias ? bias[k] : T(0);
      const T* base = row0 + q * sw;
      int64_t t = 0;
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t r = 0; r < R; ++r)
          for (int64_t s = 0; s < S; ++s, ++t) {
            const T xv = base[c * plane + r * dh * padded_w + s * dw];
            for (int k = 0; k < KB; ++k) acc[k] += w[k * taps + t] * xv;
          }
      for (int k = 0; k < KB; ++k) out[k][q] = relu && acc[k] < T(0) ? T(0) : acc[k];
    }
  }
}

template <class T>
void conv2d_direct_dispatch(const T* padded, int64_t padded_w, int64_t plane, int64_t channels, const T* w,
                            int64_t R, int64_t S, int64_t kb, const T* bias, T* y, int64_t y_plane, int64_t P,
                            int64_t Q, const medkern::Conv2dParams& p) {
  const int64_t sh = p.stride_h, sw = p.stride_w, dh = p.dilation_h, dw = p.dilation_w;
  if (kb == 4)
    conv2d_direct_rows<T, 4>(padded, padded_w, plane, channels, w, R, S, bias, y, y_plane, P, Q, sh, sw, dh, dw,
                             p.fuse_relu);
  else
    for (int64_t k = 0; k < kb; ++k)
      conv2d_direct_rows<T, 1>(padded, padded_w, plane, channels, w + k * channels * R * S, R, S,
                               bias ? bias + k : nullptr, y + k * y_plane, y_plane, P, Q, sh, sw, dh, dw, p.fuse_relu);
}
