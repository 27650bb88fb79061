// cpu/simd/conv2d_direct_kernel.h — the direct convolution's inner loop nest, written once and
// compiled per ISA (included inside an anonymous namespace by each simd/conv2d_direct_*.cpp).
// Reads a zero-padded copy of the input, so no tap needs a bounds test. For unit column stride
// (the common case) it holds one vector of output columns for up to kDirectBlock output channels
// in registers, so each input vector loaded feeds that many FMAs; other strides use a plain loop.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
constexpr int kDirectVectorBytes = 64;
#elif defined(__AVX2__)
constexpr int kDirectVectorBytes = 32;
#else
constexpr int kDirectVectorBytes = 16;
#endif

// Generic loop: any stride, one output column at a time.
template <class T, int KB>
void conv2d_direct_rows_strided(const T* padded, int64_t padded_w, int64_t plane, int64_t channels, const T* w,
                                int64_t R, int64_t S, const T* bias, T* y, int64_t y_plane, int64_t P, int64_t Q,
                                int64_t sh, int64_t sw, int64_t dh, int64_t dw, bool relu) {
  const int64_t taps = channels * R * S;
  for (int64_t pp = 0; pp < P; ++pp) {
    const T* row0 = padded + pp * sh * padded_w;
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
      for (int k = 0; k < KB; ++k) y[k * y_plane + pp * Q + q] = relu && acc[k] < T(0) ? T(0) : acc[k];
    }
  }
}

// Unit column stride: a vector of consecutive output columns per step. The last step of a row
// reads past its end (into the next row or the buffer's slack; the driver pads the buffer by
// one vector) and stores only the columns that exist.
template <class T, int KB>
void conv2d_direct_rows_unit_stride(const T* padded, int64_t padded_w, int64_t plane, int64_t channels,
                                    const T* w, int64_t R, int64_t S, const T* bias, T* y, int64_t y_plane,
                                    int64_t P, int64_t Q, int64_t sh, int64_t dh, int64_t dw, bool relu) {
  constexpr int VL = kDirectVectorBytes / int(sizeof(T));
  typedef T V __attribute__((vector_size(kDirectVectorBytes)));
  // unaligned, aliasing-safe view for loads/stores (a fixed-size memcpy of a 64-byte vector
  // was left as a library call inside the tap loop, spilling every accumulator around it)
  typedef T VU __attribute__((vector_size(kDirectVectorBytes), aligned(sizeof(T)), may_alias));
  const int64_t taps = channels * R * S;
  for (int64_t pp = 0; pp < P; ++pp) {
    const T* row0 = padded + pp * sh * padded_w;
    for (int64_t q = 0; q < Q; q += VL) {
      V acc[KB];
      for (int k = 0; k < KB; ++k) acc[k] = V{} + (bias ? bias[k] : T(0));
      const T* base = row0 + q;
      int64_t t = 0;
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t r = 0; r < R; ++r) {
          const T* tap_row = base + c * plane + r * dh * padded_w;
          for (int64_t s = 0; s < S; ++s, ++t) {
            const V xv = *reinterpret_cast<const VU*>(tap_row + s * dw);
            for (int k = 0; k < KB; ++k) acc[k] += w[k * taps + t] * xv;
          }
        }
      const int64_t n = Q - q < VL ? Q - q : VL;
      for (int k = 0; k < KB; ++k) {
        V v = acc[k];
        if (relu) v = v < V{} ? V{} : v;
        T* dst = y + k * y_plane + pp * Q + q;
        if (n == VL) {
          *reinterpret_cast<VU*>(dst) = v;
        } else {
          for (int64_t i = 0; i < n; ++i) dst[i] = v[i];  // lane by lane: no library call per row
        }
      }
    }
  }
}

template <class T, int KB>
void conv2d_direct_rows(const T* padded, int64_t padded_w, int64_t plane, int64_t channels, const T* w, int64_t R,
                        int64_t S, const T* bias, T* y, int64_t y_plane, int64_t P, int64_t Q,
                        const medkern::ConvParams& p) {
  if (p.stride_w == 1)
    conv2d_direct_rows_unit_stride<T, KB>(padded, padded_w, plane, channels, w, R, S, bias, y, y_plane, P, Q,
                                          p.stride_h, p.dilation_h, p.dilation_w, p.fuse_relu);
  else
    conv2d_direct_rows_strided<T, KB>(padded, padded_w, plane, channels, w, R, S, bias, y, y_plane, P, Q,
                                      p.stride_h, p.stride_w, p.dilation_h, p.dilation_w, p.fuse_relu);
}

// kb output channels (<= kDirectBlock, set by the driver) starting at w / bias / y.
template <class T>
void conv2d_direct_dispatch(const T* padded, int64_t padded_w, int64_t plane, int64_t channels, const T* w,
                            int64_t R, int64_t S, int64_t kb, const T* bias, T* y, int64_t y_plane, int64_t P,
                            int64_t Q, const medkern::ConvParams& p) {
  if (kb == 8) {
    conv2d_direct_rows<T, 8>(padded, padded_w, plane, channels, w, R, S, bias, y, y_plane, P, Q, p);
    return;
  }
  const int64_t taps = channels * R * S;
  int64_t k = 0;
  for (; k + 4 <= kb; k += 4)
    conv2d_direct_rows<T, 4>(padded, padded_w, plane, channels, w + k * taps, R, S, bias ? bias + k : nullptr,
                             y + k * y_plane, y_plane, P, Q, p);
  for (; k < kb; ++k)
    conv2d_direct_rows<T, 1>(padded, padded_w, plane, channels, w + k * taps, R, S, bias ? bias + k : nullptr,
                             y + k * y_plane, y_plane, P, Q, p);
}

// Weight gradient of one (sample, group[, output depth]) for unit column stride, few taps
// (Cg*T*R*S <= 36; the driver folds depth taps into the offsets):
//   dw[k][t] += sum_{p,q} dy[k][p][q] * padded[off[t] + p*sh*padded_w + q]
// One vector of output columns of dy is loaded once and multiplied into every tap's
// accumulator; the tail vector of a row is zero-filled so columns past Q add nothing.
template <class T, int TAPS>
void conv2d_direct_weight_grad_taps(const T* padded, int64_t padded_w, const int64_t* off, int64_t taps,
                                    const T* dy, int64_t dy_channel, int64_t kn, int64_t P, int64_t Q, int64_t sh,
                                    T* dw) {
  constexpr int VL = kDirectVectorBytes / int(sizeof(T));
  typedef T V __attribute__((vector_size(kDirectVectorBytes)));
  typedef T VU __attribute__((vector_size(kDirectVectorBytes), aligned(sizeof(T)), may_alias));
  constexpr int kMax = TAPS > 0 ? TAPS : 36;
  const int64_t nt = TAPS > 0 ? TAPS : taps;
  for (int64_t k = 0; k < kn; ++k) {
    V acc[kMax];
    for (int64_t t = 0; t < nt; ++t) acc[t] = V{};
    const T* g = dy + k * dy_channel;
    for (int64_t pp = 0; pp < P; ++pp) {
      const T* grow = g + pp * Q;
      const T* xrow = padded + pp * sh * padded_w;
      for (int64_t q = 0; q < Q; q += VL) {
        V gv;
        if (Q - q >= VL) {
          gv = *reinterpret_cast<const VU*>(grow + q);
        } else {
          gv = V{};
          for (int64_t i = 0; i < Q - q; ++i) gv[i] = grow[q + i];  // lane by lane: no library call per row
        }
        for (int64_t t = 0; t < nt; ++t) acc[t] += gv * *reinterpret_cast<const VU*>(xrow + off[t] + q);
      }
    }
    for (int64_t t = 0; t < nt; ++t) {
      T sum = T(0);
      for (int i = 0; i < VL; ++i) sum += acc[t][i];
      dw[k * taps + t] += sum;
    }
  }
}

template <class T>
void conv2d_direct_weight_grad(const T* padded, int64_t padded_w, const int64_t* off, int64_t taps, const T* dy,
                               int64_t dy_channel, int64_t kn, int64_t P, int64_t Q, int64_t sh, T* dw) {
  if (taps == 9)  // 3x3 on one channel
    conv2d_direct_weight_grad_taps<T, 9>(padded, padded_w, off, taps, dy, dy_channel, kn, P, Q, sh, dw);
  else if (taps == 27)  // 3x3x3 on one channel
    conv2d_direct_weight_grad_taps<T, 27>(padded, padded_w, off, taps, dy, dy_channel, kn, P, Q, sh, dw);
  else
    conv2d_direct_weight_grad_taps<T, 0>(padded, padded_w, off, taps, dy, dy_channel, kn, P, Q, sh, dw);
}
