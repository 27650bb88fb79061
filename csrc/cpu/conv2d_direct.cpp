// cpu/conv2d_direct.cpp — driver of the direct convolution: per (sample, group) it copies the
// few input channels into a zero-padded buffer (cheap: the input is small next to the output
// for these layers), then runs the per-ISA row kernel over blocks of four output channels.
#include <algorithm>
#include <vector>

#include "cpu/conv2d_direct.h"
#include "medkern/parallel.h"
#include "medkern/simd.h"
#include "medkern/workspace.h"

namespace medkern::cpu {
namespace {

constexpr int kSlotPadded = 4;
constexpr int64_t kDirectBlock = 8;   // output channels per row-kernel call (see the kernel header)
constexpr int64_t kReadSlack = 64;    // elements the unit-stride kernel may read past a row's end

template <class T> DirectRowsFn<T> row_kernel();
template <> DirectRowsFn<float> row_kernel<float>() {
  switch (simd_level()) {
    case SimdLevel::AVX512: return conv2d_direct_rows_f32_avx512();
    case SimdLevel::AVX2: return conv2d_direct_rows_f32_avx2();
    default: return conv2d_direct_rows_f32_scalar();
  }
}
template <> DirectRowsFn<double> row_kernel<double>() {
  switch (simd_level()) {
    case SimdLevel::AVX512: return conv2d_direct_rows_f64_avx512();
    case SimdLevel::AVX2: return conv2d_direct_rows_f64_avx2();
    default: return conv2d_direct_rows_f64_scalar();
  }
}

template <class T> DirectWeightGradFn<T> weight_grad_kernel();
template <> DirectWeightGradFn<float> weight_grad_kernel<float>() {
  switch (simd_level()) {
    case SimdLevel::AVX512: return conv2d_direct_weight_grad_f32_avx512();
    case SimdLevel::AVX2: return conv2d_direct_weight_grad_f32_avx2();
    default: return conv2d_direct_weight_grad_f32_scalar();
  }
}
template <> DirectWeightGradFn<double> weight_grad_kernel<double>() {
  switch (simd_level()) {
    case SimdLevel::AVX512: return conv2d_direct_weight_grad_f64_avx512();
    case SimdLevel::AVX2: return conv2d_direct_weight_grad_f64_avx2();
    default: return conv2d_direct_weight_grad_f64_scalar();
  }
}

// Channels [c0, c0 + count) of sample n into zero-padded (H + 2 pad_h) x (W + 2 pad_w) planes.
template <class T>
void copy_padded(const T* x, const int64_t* shape, const int64_t* xs, int64_t n, int64_t c0, int64_t count,
                 const Conv2dParams& p, T* padded) {
  const int64_t H = shape[2], W = shape[3], Wp = W + 2 * p.pad_w, plane = (H + 2 * p.pad_h) * Wp;
  for (int64_t c = 0; c < count; ++c) {
    T* dst = padded + c * plane;
    std::fill(dst, dst + p.pad_h * Wp, T(0));
    std::fill(dst + (p.pad_h + H) * Wp, dst + plane, T(0));
    for (int64_t h = 0; h < H; ++h) {
      T* d = dst + (h + p.pad_h) * Wp;
      const T* src = x + n * xs[0] + (c0 + c) * xs[1] + h * xs[2];
      std::fill(d, d + p.pad_w, T(0));
      for (int64_t ww = 0; ww < W; ++ww) d[p.pad_w + ww] = src[ww * xs[3]];
      std::fill(d + p.pad_w + W, d + Wp, T(0));
    }
  }
}

}  // namespace

template <class T>
void conv2d_direct_backward_weight(const T* x, const int64_t* shape, const int64_t* xs, const T* dy,
                                   int64_t dy_sample, int64_t dy_channel, T* dw, int64_t K, int64_t R, int64_t S,
                                   int64_t P, int64_t Q, const Conv2dParams& p) {
  const int64_t N = shape[0], C = shape[1], H = shape[2], W = shape[3];
  const int64_t G = p.groups, Cg = C / G, Kg = K / G, taps = Cg * R * S;
  const int64_t Wp = W + 2 * p.pad_w, plane = (H + 2 * p.pad_h) * Wp;
  int64_t offsets[kDirectMaxTaps];
  for (int64_t c = 0, t = 0; c < Cg; ++c)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s, ++t) offsets[t] = c * plane + r * p.dilation_h * Wp + s * p.dilation_w;
  const DirectWeightGradFn<T> kernel = weight_grad_kernel<T>();
  // Each thread sums whole samples into its own copy of dw; copies are added in thread order.
  const int threads = static_cast<int>(std::min<int64_t>(num_threads(), N));
  std::vector<std::vector<T>> partial(static_cast<size_t>(threads), std::vector<T>(static_cast<size_t>(K * taps)));
  parallel_for(0, threads, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      T* padded = thread_workspace_as<T>(static_cast<size_t>(Cg * plane + kReadSlack), kSlotPadded);
      // the tail vectors read into the slack and multiply it by zero: it must hold no NaN
      std::fill(padded + Cg * plane, padded + Cg * plane + kReadSlack, T(0));
      T* out = partial[static_cast<size_t>(t)].data();
      const int64_t per = (N + threads - 1) / threads, n0 = t * per, n1 = std::min(N, n0 + per);
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t g = 0; g < G; ++g) {
          copy_padded(x, shape, xs, n, g * Cg, Cg, p, padded);
          kernel(padded, Wp, offsets, taps, dy + n * dy_sample + g * Kg * dy_channel, dy_channel, Kg, P, Q,
                 p.stride_h, out + g * Kg * taps);
        }
    }
  });
  for (int64_t i = 0; i < K * taps; ++i) {
    T sum = T(0);
    for (int t = 0; t < threads; ++t) sum += partial[static_cast<size_t>(t)][static_cast<size_t>(i)];
    dw[i] = sum;
  }
}

template <class T>
void conv2d_direct_forward(const T* x, const int64_t* shape, const int64_t* xs, const T* w, int64_t K, int64_t R,
                           int64_t S, const T* bias, T* y, int64_t P, int64_t Q, const Conv2dParams& p) {
  const int64_t N = shape[0], C = shape[1], H = shape[2], W = shape[3];
  const int64_t G = p.groups, Cg = C / G, Kg = K / G;
  const int64_t Hp = H + 2 * p.pad_h, Wp = W + 2 * p.pad_w, plane = Hp * Wp;
  const int64_t k_blocks = (Kg + kDirectBlock - 1) / kDirectBlock;
  const DirectRowsFn<T> rows = row_kernel<T>();
  const int64_t items = N * G * k_blocks;
  const int64_t work_per_item = kDirectBlock * P * Q * Cg * R * S;  // multiply-adds
  parallel_for(0, items, std::max<int64_t>(1, (int64_t(1) << 18) / work_per_item), [&](int64_t b, int64_t e) {
    T* padded = thread_workspace_as<T>(static_cast<size_t>(Cg * plane + kReadSlack), kSlotPadded);
    int64_t cached = -1;  // (sample, group) whose padded copy is in the buffer
    for (int64_t item = b; item < e; ++item) {
      const int64_t ng = item / k_blocks, kb = item % k_blocks;
      const int64_t n = ng / G, g = ng % G;
      if (ng != cached) {
        copy_padded(x, shape, xs, n, g * Cg, Cg, p, padded);
        cached = ng;
      }
      const int64_t k0 = g * Kg + kb * kDirectBlock, kn = std::min<int64_t>(kDirectBlock, Kg - kb * kDirectBlock);
      rows(padded, Wp, plane, Cg, w + k0 * Cg * R * S, R, S, kn, bias ? bias + k0 : nullptr,
           y + (n * K + k0) * P * Q, P * Q, P, Q, p);
    }
  });
}

template void conv2d_direct_backward_weight<float>(const float*, const int64_t*, const int64_t*, const float*,
                                                   int64_t, int64_t, float*, int64_t, int64_t, int64_t, int64_t,
                                                   int64_t, const Conv2dParams&);
template void conv2d_direct_backward_weight<double>(const double*, const int64_t*, const int64_t*, const double*,
                                                    int64_t, int64_t, double*, int64_t, int64_t, int64_t, int64_t,
                                                    int64_t, const Conv2dParams&);
template void conv2d_direct_forward<float>(const float*, const int64_t*, const int64_t*, const float*, int64_t,
                                           int64_t, int64_t, const float*, float*, int64_t, int64_t,
                                           const Conv2dParams&);
template void conv2d_direct_forward<double>(const double*, const int64_t*, const int64_t*, const double*, int64_t,
                                            int64_t, int64_t, const double*, double*, int64_t, int64_t,
                                            const Conv2dParams&);

}  // namespace medkern::cpu
