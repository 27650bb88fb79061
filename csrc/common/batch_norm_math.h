// common/batch_norm_math.h — batch-norm arithmetic shared by the CPU and CUDA kernels:
// combining partial (count, mean, M2) statistics (Chan et al., stable where sum/sum-of-squares
// is not), the inverse standard deviation, the running-statistics update, and the backward
// coefficients.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/macros.h"

namespace medkern {

struct MeanM2 {
  double count = 0, mean = 0, m2 = 0;  // m2 = sum of squared deviations from mean
};

MEDKERN_HD MeanM2 mean_m2_combine(const MeanM2& a, const MeanM2& b) {
  if (a.count == 0) return b;
  if (b.count == 0) return a;
  const double n = a.count + b.count;
  const double delta = b.mean - a.mean;
  return {n, a.mean + delta * (b.count / n), a.m2 + b.m2 + delta * delta * (a.count * b.count / n)};
}

// The inverse standard deviation a channel is normalized with (saved for the backward pass):
// 1 / sqrt(var + eps), the batch's biased variance in training, the running variance in eval.
MEDKERN_HD double batch_norm_invstd(double var, double eps) { return 1.0 / sqrt(var + eps); }

// torch's rule: running = (1 - momentum) running + momentum batch, with the unbiased variance.
MEDKERN_HD void running_stats_update(double batch_mean, double batch_var_biased, double count, double momentum,
                                     double* running_mean, double* running_var) {
  const double unbiased = count > 1 ? batch_var_biased * count / (count - 1) : batch_var_biased;
  *running_mean = (1 - momentum) * *running_mean + momentum * batch_mean;
  *running_var = (1 - momentum) * *running_var + momentum * unbiased;
}

// Training-mode input gradient for one element, given per-channel sums over (N, spatial):
//   dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)),  xhat = (x - mean) * invstd
// Eval mode (statistics are constants): dx = weight * invstd * dy.
template <class T>
MEDKERN_HD T batch_norm_input_grad(T dy, T x, T mean, T invstd, T weight, T mean_dy, T mean_dy_xhat, bool training) {
  if (!training) return weight * invstd * dy;
  const T xhat = (x - mean) * invstd;
  return weight * invstd * (dy - mean_dy - xhat * mean_dy_xhat);
}

}  // namespace medkern
