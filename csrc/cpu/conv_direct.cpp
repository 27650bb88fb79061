// cpu/conv_direct.cpp — driver of the direct convolution: per (sample, group[, output depth]) it
// copies the few input planes into a zero-padded buffer (cheap: the input is small next to the
// output for these layers), then runs the per-ISA row kernel over blocks of output channels.
#include <algorithm>
#include <vector>

#include "common/conv_math.h"
#include "cpu/conv_direct.h"
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

// One zero-padded (H + 2 pad_h) x (W + 2 pad_w) plane: input depth `id` of channel c of sample n,
// or zeros when `id` falls in the depth padding.
template <class T>
void copy_padded_plane(const T* x, const DirectShape& sh, int64_t n, int64_t c, int64_t id, const ConvParams& p,
                       T* dst) {
  const int64_t H = sh.H, W = sh.W, Wp = W + 2 * p.pad_w, plane = (H + 2 * p.pad_h) * Wp;
  if (id < 0 || id >= sh.D) {
    std::fill(dst, dst + plane, T(0));
    return;
  }
  std::fill(dst, dst + p.pad_h * Wp, T(0));
  std::fill(dst + (p.pad_h + H) * Wp, dst + plane, T(0));
  for (int64_t h = 0; h < H; ++h) {
    T* d = dst + (h + p.pad_h) * Wp;
    const T* src = x + n * sh.xs[0] + c * sh.xs[1] + id * sh.xs[2] + h * sh.xs[3];
    std::fill(d, d + p.pad_w, T(0));
    for (int64_t ww = 0; ww < W; ++ww) d[p.pad_w + ww] = src[ww * sh.xs[4]];
    std::fill(d + p.pad_w + W, d + Wp, T(0));
  }
}

}  // namespace

template <class T>
void conv_direct_backward_weight(const T* x, const DirectShape& sh, const T* dy, int64_t dy_sample,
                                 int64_t dy_channel, T* dw, const ConvParams& p) {
  const int64_t N = sh.N, C = sh.C, K = sh.K, R = sh.R, S = sh.S, P = sh.P, Q = sh.Q;
  const int64_t G = p.groups, Cg = C / G, Kg = K / G, taps = Cg * sh.T * R * S;
  const int64_t Wp = sh.W + 2 * p.pad_w, plane = (sh.H + 2 * p.pad_h) * Wp;
  const int64_t Dp = sh.D + 2 * p.pad_d, volume = Dp * plane;  // the padded depth, 1 for 2-D
  int64_t offsets[kDirectMaxTaps];
  for (int64_t c = 0, t = 0; c < Cg; ++c)
    for (int64_t dt = 0; dt < sh.T; ++dt)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s, ++t)
          offsets[t] = c * volume + dt * p.dilation_d * plane + r * p.dilation_h * Wp + s * p.dilation_w;
  const DirectWeightGradFn<T> kernel = weight_grad_kernel<T>();
  // Each thread sums whole samples into its own copy of dw; copies are added in thread order.
  const int threads = static_cast<int>(std::min<int64_t>(num_threads(), N));
  std::vector<std::vector<T>> partial(static_cast<size_t>(threads), std::vector<T>(static_cast<size_t>(K * taps)));
  parallel_for(0, threads, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      T* padded = thread_workspace_as<T>(static_cast<size_t>(Cg * volume + kReadSlack), kSlotPadded);
      // the tail vectors read into the slack and multiply it by zero: it must hold no NaN
      std::fill(padded + Cg * volume, padded + Cg * volume + kReadSlack, T(0));
      T* out = partial[static_cast<size_t>(t)].data();
      const int64_t per = (N + threads - 1) / threads, n0 = t * per, n1 = std::min(N, n0 + per);
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t g = 0; g < G; ++g) {
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t z = 0; z < Dp; ++z)
              copy_padded_plane(x, sh, n, g * Cg + c, z - p.pad_d, p, padded + c * volume + z * plane);
          for (int64_t od = 0; od < sh.OD; ++od)
            kernel(padded + od * p.stride_d * plane, Wp, offsets, taps,
                   dy + n * dy_sample + g * Kg * dy_channel + od * P * Q, dy_channel, Kg, P, Q, p.stride_h,
                   out + g * Kg * taps);
        }
    }
  });
  for (int64_t i = 0; i < K * taps; ++i) {
    T sum = T(0);
    for (int t = 0; t < threads; ++t) sum += partial[static_cast<size_t>(t)][static_cast<size_t>(i)];
    dw[i] = sum;
  }
}

// Per (sample, group, output depth): the Cg * T input planes that output depth reads (zeros for
// depth padding) go into the padded buffer as Cg * T "channels", which matches the weight's
// (c, t, r, s) layout, and the 2-D row kernel runs over blocks of output channels.
template <class T>
void conv_direct_forward(const T* x, const DirectShape& sh, const T* w, const T* bias, T* y, const ConvParams& p) {
  const int64_t N = sh.N, C = sh.C, K = sh.K, R = sh.R, S = sh.S, P = sh.P, Q = sh.Q, OD = sh.OD;
  const int64_t G = p.groups, Cg = C / G, Kg = K / G, planes = Cg * sh.T;
  const int64_t Hp = sh.H + 2 * p.pad_h, Wp = sh.W + 2 * p.pad_w, plane = Hp * Wp;
  const int64_t k_blocks = (Kg + kDirectBlock - 1) / kDirectBlock;
  const DirectRowsFn<T> rows = row_kernel<T>();
  const int64_t items = N * G * OD * k_blocks;
  const int64_t work_per_item = kDirectBlock * P * Q * planes * R * S;  // multiply-adds
  parallel_for(0, items, std::max<int64_t>(1, (int64_t(1) << 18) / work_per_item), [&](int64_t b, int64_t e) {
    T* padded = thread_workspace_as<T>(static_cast<size_t>(planes * plane + kReadSlack), kSlotPadded);
    int64_t cached = -1;  // (sample, group, output depth) whose planes are in the buffer
    for (int64_t item = b; item < e; ++item) {
      const int64_t ngd = item / k_blocks, kb = item % k_blocks;
      const int64_t od = ngd % OD, ng = ngd / OD, n = ng / G, g = ng % G;
      if (ngd != cached) {
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t dt = 0; dt < sh.T; ++dt)
            copy_padded_plane(x, sh, n, g * Cg + c, conv_input_coord(od, dt, p.stride_d, p.pad_d, p.dilation_d), p,
                              padded + (c * sh.T + dt) * plane);
        cached = ngd;
      }
      const int64_t k0 = g * Kg + kb * kDirectBlock, kn = std::min<int64_t>(kDirectBlock, Kg - kb * kDirectBlock);
      rows(padded, Wp, plane, planes, w + k0 * planes * R * S, R, S, kn, bias ? bias + k0 : nullptr,
           y + (n * K + k0) * OD * P * Q + od * P * Q, OD * P * Q, P, Q, p);
    }
  });
}

template void conv_direct_backward_weight<float>(const float*, const DirectShape&, const float*, int64_t, int64_t,
                                                 float*, const ConvParams&);
template void conv_direct_backward_weight<double>(const double*, const DirectShape&, const double*, int64_t,
                                                  int64_t, double*, const ConvParams&);
template void conv_direct_forward<float>(const float*, const DirectShape&, const float*, const float*, float*,
                                         const ConvParams&);
template void conv_direct_forward<double>(const double*, const DirectShape&, const double*, const double*, double*,
                                          const ConvParams&);

}  // namespace medkern::cpu
