// cpu/batch_norm.cpp — batch normalization over (N, C, *) on the CPU. Training statistics are
// per-channel (count, mean, M2) partials, each row (or row segment) reduced while it sits in
// L1 and merged with mean_m2_combine (stable, one streaming pass over memory); then one
// read+write pass normalizes. Backward: one reduction pass (sum dy, sum dy*(x-mean)) and one
// pass for grad_input; those two element-wise passes live in simd/batch_norm_kernels.h.
// Rows are (n, c) runs of the collapsed spatial axes, read through strides. With a fused
// activation the element-wise passes are group norm's row passes (simd/group_norm_kernels.h):
// the same per-element formulas, with per-channel coefficients.
#include <algorithm>
#include <vector>

#include "common/batch_norm_math.h"
#include "cpu/row_statistics.h"
#include "cpu/simd/batch_norm_kernels.h"
#include "cpu/simd/group_norm_kernels.h"
#include "medkern/batch_norm.h"
#include "medkern/checks.h"
#include "medkern/parallel.h"
#include "medkern/simd.h"

namespace medkern::cpu {
namespace {

// Reductions are split into units of (block of n) x (segment of the spatial run), walked in
// memory order (n, c, s) so reads stream; each unit keeps per-channel partials, merged per
// channel afterwards in a fixed order (the result does not depend on thread timing).
struct ReductionUnits {
  int64_t n_blocks, s_segments;
  int64_t count() const { return n_blocks * s_segments; }
};

ReductionUnits reduction_units(int64_t N, int64_t S) {
  const int64_t wanted = 4 * static_cast<int64_t>(num_threads());
  const int64_t n_blocks = std::min<int64_t>(N, wanted);
  int64_t segments = n_blocks >= wanted ? 1 : (wanted + n_blocks - 1) / n_blocks;
  segments = std::max<int64_t>(1, std::min<int64_t>(segments, S / 1024));  // segments stay long
  return {n_blocks, segments};
}

// Calls f(unit, n0, n1, s0, s1) for every unit, in parallel.
template <class F>
void for_each_unit(const ReductionUnits& u, int64_t N, int64_t S, const F& f) {
  parallel_for(0, u.count(), 1, [&](int64_t b, int64_t e) {
    for (int64_t unit = b; unit < e; ++unit) {
      const int64_t blk = unit / u.s_segments, seg = unit % u.s_segments;
      f(unit, N * blk / u.n_blocks, N * (blk + 1) / u.n_blocks, S * seg / u.s_segments,
        S * (seg + 1) / u.s_segments);
    }
  });
}

template <class T>
void run_normalize_rows(const BatchNormRows<T>& a, int64_t rows) {
  const SimdLevel level = simd_level();
  parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(a.S, 1)), [&](int64_t b, int64_t e) {
    if (level == SimdLevel::AVX512) simd_avx512::normalize_rows(a, b, e);
    else if (level == SimdLevel::AVX2) simd_avx2::normalize_rows(a, b, e);
    else simd_scalar::normalize_rows(a, b, e);
  });
}

template <class T>
void run_input_grad_rows(const BatchNormRows<T>& a, int64_t rows) {
  const SimdLevel level = simd_level();
  parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(a.S, 1)), [&](int64_t b, int64_t e) {
    if (level == SimdLevel::AVX512) simd_avx512::input_grad_rows(a, b, e);
    else if (level == SimdLevel::AVX2) simd_avx2::input_grad_rows(a, b, e);
    else simd_scalar::input_grad_rows(a, b, e);
  });
}

template <class T>
void batch_norm_forward_typed(const TensorView& input, const TensorView* weight, const TensorView* bias,
                              const TensorView* running_mean, const TensorView* running_var, const TensorView& output,
                              const TensorView& save_mean, const TensorView& save_invstd, const BatchNormParams& p) {
  const RowLayout x = row_layout(input, "input");
  const int64_t N = x.N, C = x.C, S = x.S;
  const T* in = input.ptr<const T>();
  T* out = output.ptr<T>();
  T* smean = save_mean.ptr<T>();
  T* sinvstd = save_invstd.ptr<T>();
  auto param = [](const TensorView* v, int64_t c, T fallback) { return v ? v->ptr<const T>()[c * v->stride(0)] : fallback; };

  if (p.training) {
    const ReductionUnits units = reduction_units(N, S);
    std::vector<MeanM2> partial(units.count() * C);
    for_each_unit(units, N, S, [&](int64_t unit, int64_t n0, int64_t n1, int64_t s0, int64_t s1) {
      MeanM2* acc = partial.data() + unit * C;
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t c = 0; c < C; ++c)
          acc[c] = mean_m2_combine(acc[c], row_mean_m2(in + n * x.stride_n + c * x.stride_c + s0 * x.stride_s,
                                                       s1 - s0, x.stride_s));
    });
    for (int64_t c = 0; c < C; ++c) {
      MeanM2 acc;
      for (int64_t unit = 0; unit < units.count(); ++unit) acc = mean_m2_combine(acc, partial[unit * C + c]);
      const double var = acc.m2 / acc.count;
      smean[c * save_mean.stride(0)] = static_cast<T>(acc.mean);
      sinvstd[c * save_invstd.stride(0)] = static_cast<T>(batch_norm_invstd(var, p.eps));
      if (running_mean && running_var) {
        T* rm = running_mean->ptr<T>() + c * running_mean->stride(0);
        T* rv = running_var->ptr<T>() + c * running_var->stride(0);
        double m = *rm, v = *rv;
        running_stats_update(acc.mean, var, acc.count, p.momentum, &m, &v);
        *rm = static_cast<T>(m);
        *rv = static_cast<T>(v);
      }
    }
  } else {
    for (int64_t c = 0; c < C; ++c) {
      const T rm = running_mean->ptr<const T>()[c * running_mean->stride(0)];
      const T rv = running_var->ptr<const T>()[c * running_var->stride(0)];
      smean[c * save_mean.stride(0)] = rm;
      sinvstd[c * save_invstd.stride(0)] = static_cast<T>(batch_norm_invstd(static_cast<double>(rv), p.eps));
    }
  }

  // y = x * scale + shift with per-channel scale = weight * invstd, shift = bias - mean * scale
  std::vector<T> scale(C), shift(C);
  for (int64_t c = 0; c < C; ++c) {
    scale[c] = param(weight, c, T(1)) * sinvstd[c * save_invstd.stride(0)];
    shift[c] = param(bias, c, T(0)) - smean[c * save_mean.stride(0)] * scale[c];
  }
  if (p.activation != Activation::Identity) {
    const SimdLevel level = simd_level();
    parallel_for(0, N * C, std::max<int64_t>(1, 16384 / std::max<int64_t>(S, 1)), [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) {
        const int64_t n = row / C, c = row % C;
        NormRow<T> r{};
        r.x = in + n * x.stride_n + c * x.stride_c;
        r.x_stride = x.stride_s;
        r.out = out + row * S;
        r.S = S;
        r.scale = scale[c];
        r.shift = shift[c];
        r.activation = p.activation;
        r.slope = static_cast<T>(p.negative_slope);
        run_normalize_row(level, r);
      }
    });
    return;
  }
  BatchNormRows<T> rows{C, S, in, x.stride_n, x.stride_c, x.stride_s, nullptr, 0, 0, 0, out,
                        scale.data(), shift.data(), nullptr, nullptr, nullptr, nullptr, nullptr, p.training};
  run_normalize_rows(rows, N * C);
}

// Backward with a fused activation: per (n, c) row the sums of dz and dz * (x - mean) (dz
// recomputed from x: the pre-activation x * scale + shift through the activation's gradient),
// reduced over n per channel in a fixed order, then the input gradient of every row.
//   training: dx = w invstd (dz - mean(dz) - xhat mean(dz xhat))
//             = a dz + beta (x - mean) + gamma,  a = w invstd, beta = -a invstd mean(dz xhat),
//               gamma = -a mean(dz)   (group_norm_input_grad with per-channel coefficients)
//   eval:     dx = a dz
template <class T>
void batch_norm_act_backward(const RowLayout& x, const RowLayout& g, const T* in, const T* go,
                             const std::vector<T>& mean, const std::vector<T>& invstd, const std::vector<T>& w,
                             const TensorView* bias, const TensorView* grad_input, const TensorView* grad_weight,
                             const TensorView* grad_bias, const BatchNormParams& p) {
  const int64_t N = x.N, C = x.C, S = x.S;
  const SimdLevel level = simd_level();
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(S, 1));
  auto row = [&](int64_t n, int64_t c) {
    const double b = bias ? bias->ptr<const T>()[c * bias->stride(0)] : 0.0;
    const NormScaleShift ss = norm_scale_shift(mean[c], invstd[c], w[c], b);
    NormRow<T> r{};
    r.x = in + n * x.stride_n + c * x.stride_c;
    r.x_stride = x.stride_s;
    r.g = go + n * g.stride_n + c * g.stride_c;
    r.g_stride = g.stride_s;
    r.S = S;
    r.scale = static_cast<T>(ss.scale);
    r.shift = static_cast<T>(ss.shift);
    r.mean = mean[c];
    r.a = w[c] * invstd[c];
    r.activation = p.activation;
    r.slope = static_cast<T>(p.negative_slope);
    return r;
  };
  std::vector<double> row_dz(N * C), row_dz_xmu(N * C);
  parallel_for(0, N * C, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) run_grad_sums_row(level, row(i / C, i % C), &row_dz[i], &row_dz_xmu[i]);
  });
  std::vector<double> sum_dz(C, 0.0), sum_dz_xmu(C, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      sum_dz[c] += row_dz[n * C + c];
      sum_dz_xmu[c] += row_dz_xmu[n * C + c];
    }
  for (int64_t c = 0; c < C; ++c) {
    if (grad_weight) grad_weight->ptr<T>()[c] = static_cast<T>(sum_dz_xmu[c] * invstd[c]);
    if (grad_bias) grad_bias->ptr<T>()[c] = static_cast<T>(sum_dz[c]);
  }
  if (!grad_input) return;
  const double count = static_cast<double>(N) * S;
  parallel_for(0, N * C, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t c = i % C;
      NormRow<T> r = row(i / C, c);
      r.out = grad_input->ptr<T>() + i * S;
      if (p.training) {
        const double a = static_cast<double>(w[c]) * invstd[c];
        r.beta = static_cast<T>(-a * invstd[c] * sum_dz_xmu[c] * invstd[c] / count);
        r.gamma = static_cast<T>(-a * sum_dz[c] / count);
      }
      run_input_grad_row(level, r);
    }
  });
}

template <class T>
void batch_norm_backward_typed(const TensorView& grad_output, const TensorView& input, const TensorView* weight,
                               const TensorView* bias, const TensorView& save_mean, const TensorView& save_invstd,
                               const TensorView* grad_input, const TensorView* grad_weight,
                               const TensorView* grad_bias, const BatchNormParams& p) {
  const RowLayout x = row_layout(input, "input");
  const RowLayout g = row_layout(grad_output, "grad_output");
  const int64_t N = x.N, C = x.C, S = x.S;
  const T* in = input.ptr<const T>();
  const T* go = grad_output.ptr<const T>();
  std::vector<T> mean(C), invstd(C), w(C);
  for (int64_t c = 0; c < C; ++c) {
    mean[c] = save_mean.ptr<const T>()[c * save_mean.stride(0)];
    invstd[c] = save_invstd.ptr<const T>()[c * save_invstd.stride(0)];
    w[c] = weight ? weight->ptr<const T>()[c * weight->stride(0)] : T(1);
  }
  if (p.activation != Activation::Identity) {
    batch_norm_act_backward(x, g, in, go, mean, invstd, w, bias, grad_input, grad_weight, grad_bias, p);
    return;
  }

  // Reduction pass: sum(dy) and sum(dy * (x - mean)) per channel, partials per block of n.
  const bool need_sums = grad_weight || grad_bias || (grad_input && p.training);
  std::vector<double> sum_dy(C, 0.0), sum_dy_xmu(C, 0.0);
  if (need_sums) {
    const ReductionUnits units = reduction_units(N, S);
    std::vector<double> part_dy(units.count() * C, 0.0), part_dy_xmu(units.count() * C, 0.0);
    for_each_unit(units, N, S, [&](int64_t unit, int64_t n0, int64_t n1, int64_t s0, int64_t s1) {
      double* acc_dy = part_dy.data() + unit * C;
      double* acc_dy_xmu = part_dy_xmu.data() + unit * C;
      const int64_t len = s1 - s0;
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t c = 0; c < C; ++c) {
          const T* xp = in + n * x.stride_n + c * x.stride_c + s0 * x.stride_s;
          const T* gp = go + n * g.stride_n + c * g.stride_c + s0 * g.stride_s;
          const T m = mean[c];
          T s_dy = 0, s_dy_xmu = 0;
          if (x.stride_s == 1 && g.stride_s == 1) {
#pragma omp simd reduction(+ : s_dy, s_dy_xmu)
            for (int64_t s = 0; s < len; ++s) {
              s_dy += gp[s];
              s_dy_xmu += gp[s] * (xp[s] - m);
            }
          } else {
            for (int64_t s = 0; s < len; ++s) {
              s_dy += gp[s * g.stride_s];
              s_dy_xmu += gp[s * g.stride_s] * (xp[s * x.stride_s] - m);
            }
          }
          acc_dy[c] += s_dy;
          acc_dy_xmu[c] += s_dy_xmu;
        }
    });
    for (int64_t unit = 0; unit < units.count(); ++unit)
      for (int64_t c = 0; c < C; ++c) {
        sum_dy[c] += part_dy[unit * C + c];
        sum_dy_xmu[c] += part_dy_xmu[unit * C + c];
      }
  }
  for (int64_t c = 0; c < C; ++c) {
    if (grad_weight) grad_weight->ptr<T>()[c] = static_cast<T>(sum_dy_xmu[c] * invstd[c]);
    if (grad_bias) grad_bias->ptr<T>()[c] = static_cast<T>(sum_dy[c]);
  }
  if (!grad_input) return;

  const double count = static_cast<double>(N) * S;
  std::vector<T> mean_dy(C), mean_dy_xhat(C);
  for (int64_t c = 0; c < C; ++c) {
    mean_dy[c] = static_cast<T>(sum_dy[c] / count);
    mean_dy_xhat[c] = static_cast<T>(sum_dy_xmu[c] * invstd[c] / count);
  }
  BatchNormRows<T> rows{C, S, in, x.stride_n, x.stride_c, x.stride_s, go, g.stride_n, g.stride_c, g.stride_s,
                        grad_input->ptr<T>(), nullptr, nullptr, mean.data(), invstd.data(), w.data(), mean_dy.data(),
                        mean_dy_xhat.data(), p.training};
  run_input_grad_rows(rows, N * C);
}

}  // namespace

void batch_norm_forward(const TensorView& input, const TensorView* weight, const TensorView* bias,
                        const TensorView* running_mean, const TensorView* running_var, const TensorView& output,
                        const TensorView& save_mean, const TensorView& save_invstd, const BatchNormParams& p) {
  if (input.dtype == DType::Float64)
    batch_norm_forward_typed<double>(input, weight, bias, running_mean, running_var, output, save_mean, save_invstd, p);
  else
    batch_norm_forward_typed<float>(input, weight, bias, running_mean, running_var, output, save_mean, save_invstd, p);
}

void batch_norm_backward(const TensorView& grad_output, const TensorView& input, const TensorView* weight,
                         const TensorView* bias, const TensorView& save_mean, const TensorView& save_invstd, const TensorView* grad_input,
                         const TensorView* grad_weight, const TensorView* grad_bias, const BatchNormParams& p) {
  if (input.dtype == DType::Float64)
    batch_norm_backward_typed<double>(grad_output, input, weight, bias, save_mean, save_invstd, grad_input, grad_weight,
                                      grad_bias, p);
  else
    batch_norm_backward_typed<float>(grad_output, input, weight, bias, save_mean, save_invstd, grad_input, grad_weight,
                                     grad_bias, p);
}

}  // namespace medkern::cpu
