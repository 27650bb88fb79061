// cpu/group_norm.cpp — group normalization (instance norm = one channel per group), optionally
// with ReLU / LeakyReLU, on the CPU. Work is split by (sample, group): its channels are contiguous
// runs, so one thread computes the statistics (statistics_row) and then normalizes + activates the
// same rows while they are still in L2 — one pass over memory forward. Backward, per (sample,
// group): one sweep for the sums of dz and dz * (x - mean) (dz = the pre-activation's gradient,
// recomputed from x), then the input gradient over the same rows; the per-(n, c) sums go to the
// caller's workspace and are reduced over n for the weight / bias gradients in a fixed order.
#include <vector>

#include "common/group_norm_math.h"
#include "cpu/row_statistics.h"
#include "cpu/simd/group_norm_kernels.h"
#include "medkern/group_norm.h"
#include "medkern/parallel.h"
#include "medkern/simd.h"

namespace medkern::cpu {
namespace {

template <class T>
T param_or(const TensorView* v, int64_t c, T fallback) {
  return v ? v->ptr<const T>()[c * v->stride(0)] : fallback;
}

// Units of (sample, group) per thread chunk: enough elements to be worth a thread.
int64_t unit_grain(int64_t elements_per_unit) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, elements_per_unit));
}

template <class T>
void group_norm_forward_typed(const TensorView& input, const TensorView* weight, const TensorView* bias,
                              const TensorView& output, const TensorView& mean, const TensorView& invstd,
                              const GroupNormParams& p) {
  const RowLayout x = row_layout(input, "input");
  const int64_t G = p.groups, Cg = x.C / G, S = x.S;
  const T* in = input.ptr<const T>();
  T* out = output.ptr<T>();
  T* mean_out = mean.ptr<T>();
  T* invstd_out = invstd.ptr<T>();
  const SimdLevel level = simd_level();
  parallel_for(0, x.N * G, unit_grain(Cg * S), [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t n = unit / G, c0 = (unit % G) * Cg;
      MeanM2 acc;
      if (x.stride_s == 1 && x.stride_c == S) {  // the group's rows are one run: one long row
        acc = run_statistics_row(level, in + n * x.stride_n + c0 * x.stride_c, Cg * S, int64_t(1));
      } else {
        for (int64_t c = c0; c < c0 + Cg; ++c)
          acc = mean_m2_combine(acc, run_statistics_row(level, in + n * x.stride_n + c * x.stride_c, S, x.stride_s));
      }
      const double mu = acc.mean, is = batch_norm_invstd(acc.m2 / acc.count, p.eps);
      mean_out[unit] = static_cast<T>(mu);
      invstd_out[unit] = static_cast<T>(is);
      for (int64_t c = c0; c < c0 + Cg; ++c) {
        const NormScaleShift ss = norm_scale_shift(mu, is, param_or(weight, c, T(1)), param_or(bias, c, T(0)));
        NormRow<T> r{};
        r.x = in + n * x.stride_n + c * x.stride_c;
        r.x_stride = x.stride_s;
        r.out = out + (n * x.C + c) * S;
        r.S = S;
        r.scale = static_cast<T>(ss.scale);
        r.shift = static_cast<T>(ss.shift);
        r.activation = p.activation;
        r.slope = static_cast<T>(p.negative_slope);
        run_normalize_row(level, r);
      }
    }
  });
}

template <class T>
void group_norm_backward_typed(const TensorView& grad_output, const TensorView& input, const TensorView& mean,
                               const TensorView& invstd, const TensorView* weight, const TensorView* bias,
                               const TensorView& channel_sums, const TensorView* grad_input,
                               const TensorView* grad_weight, const TensorView* grad_bias, const GroupNormParams& p) {
  const RowLayout x = row_layout(input, "input");
  const RowLayout gl = row_layout(grad_output, "grad_output");
  const int64_t N = x.N, C = x.C, G = p.groups, Cg = C / G, S = x.S;
  const T* in = input.ptr<const T>();
  const T* go = grad_output.ptr<const T>();
  const T* mean_in = mean.ptr<const T>();
  const T* invstd_in = invstd.ptr<const T>();
  double* sums_dz = channel_sums.ptr<double>();
  double* sums_dz_xmu = sums_dz + N * C;
  const SimdLevel level = simd_level();
  parallel_for(0, N * G, unit_grain(Cg * S), [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t n = unit / G, c0 = (unit % G) * Cg;
      const double mu = mean_in[unit], is = invstd_in[unit];
      auto row = [&](int64_t c) {
        const double w = param_or(weight, c, T(1));
        const NormScaleShift ss = norm_scale_shift(mu, is, w, param_or(bias, c, T(0)));
        NormRow<T> r{};
        r.x = in + n * x.stride_n + c * x.stride_c;
        r.x_stride = x.stride_s;
        r.g = go + n * gl.stride_n + c * gl.stride_c;
        r.g_stride = gl.stride_s;
        r.S = S;
        r.scale = static_cast<T>(ss.scale);
        r.shift = static_cast<T>(ss.shift);
        r.mean = static_cast<T>(mu);
        r.a = static_cast<T>(w * is);
        r.activation = p.activation;
        r.slope = static_cast<T>(p.negative_slope);
        return r;
      };
      double sum_w_dz = 0, sum_w_dz_xmu = 0;
      for (int64_t c = c0; c < c0 + Cg; ++c) {
        double* dz = sums_dz + n * C + c;
        double* dz_xmu = sums_dz_xmu + n * C + c;
        run_grad_sums_row(level, row(c), dz, dz_xmu);
        const double w = param_or(weight, c, T(1));
        sum_w_dz += w * *dz;
        sum_w_dz_xmu += w * *dz_xmu;
      }
      if (!grad_input) continue;
      const GroupNormGradCoefficients k =
          group_norm_grad_coefficients(is, sum_w_dz, sum_w_dz_xmu, static_cast<double>(Cg * S));
      for (int64_t c = c0; c < c0 + Cg; ++c) {
        NormRow<T> r = row(c);
        r.out = grad_input->ptr<T>() + (n * C + c) * S;
        r.beta = static_cast<T>(k.beta);
        r.gamma = static_cast<T>(k.gamma);
        run_input_grad_row(level, r);
      }
    }
  });
  // grad_weight = sum_n invstd(n, g) * sum(dz (x - mean)), grad_bias = sum_n sum(dz)
  for (int64_t c = 0; c < C; ++c) {
    double gw = 0, gb = 0;
    for (int64_t n = 0; n < N; ++n) {
      gw += sums_dz_xmu[n * C + c] * static_cast<double>(invstd_in[n * G + c / Cg]);
      gb += sums_dz[n * C + c];
    }
    if (grad_weight) grad_weight->ptr<T>()[c * grad_weight->stride(0)] = static_cast<T>(gw);
    if (grad_bias) grad_bias->ptr<T>()[c * grad_bias->stride(0)] = static_cast<T>(gb);
  }
}

}  // namespace

void group_norm_forward(const TensorView& input, const TensorView* weight, const TensorView* bias,
                        const TensorView& output, const TensorView& mean, const TensorView& invstd,
                        const GroupNormParams& p) {
  if (input.dtype == DType::Float64) group_norm_forward_typed<double>(input, weight, bias, output, mean, invstd, p);
  else group_norm_forward_typed<float>(input, weight, bias, output, mean, invstd, p);
}

void group_norm_backward(const TensorView& grad_output, const TensorView& input, const TensorView& mean,
                         const TensorView& invstd, const TensorView* weight, const TensorView* bias,
                         const TensorView& channel_sums, const TensorView* grad_input, const TensorView* grad_weight,
                         const TensorView* grad_bias, const GroupNormParams& p) {
  if (input.dtype == DType::Float64)
    group_norm_backward_typed<double>(grad_output, input, mean, invstd, weight, bias, channel_sums, grad_input,
                                      grad_weight, grad_bias, p);
  else
    group_norm_backward_typed<float>(grad_output, input, mean, invstd, weight, bias, channel_sums, grad_input,
                                     grad_weight, grad_bias, p);
}

}  // namespace medkern::cpu
