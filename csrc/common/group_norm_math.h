// common/group_norm_math.h — group-norm arithmetic shared by the CPU and CUDA kernels: the
// per-channel scale / shift a (sample, group)'s statistics and the affine fold into, and the
// input gradient written as one per-element formula over per-(sample, group) coefficients.
// Statistics combine with batch norm's (count, mean, M2) rule (common/batch_norm_math.h).
#pragma once
#include <cmath>

#include "common/batch_norm_math.h"
#include "common/macros.h"

namespace medkern {

// Pre-activation z = x * scale + shift, with scale = weight * invstd, shift = bias - mean * scale.
struct NormScaleShift {
  double scale, shift;
};
MEDKERN_HD NormScaleShift norm_scale_shift(double mean, double invstd, double weight, double bias) {
  const double scale = weight * invstd;
  return {scale, bias - mean * scale};
}

// Input gradient of one (sample, group) of M values, from the gradient dz of its pre-activation:
//   dx = invstd * (w_c dz - mean(w dz) - xhat * mean(w dz xhat)),  xhat = (x - mean) * invstd
//      = (w_c invstd) dz + beta (x - mean) + gamma
// with sum_w_dz = sum_c w_c sum(dz), sum_w_dz_xmu = sum_c w_c sum(dz (x - mean)) over the group.
struct GroupNormGradCoefficients {
  double beta, gamma;
};
MEDKERN_HD GroupNormGradCoefficients group_norm_grad_coefficients(double invstd, double sum_w_dz,
                                                                  double sum_w_dz_xmu, double count) {
  return {-invstd * invstd * invstd * sum_w_dz_xmu / count, -invstd * sum_w_dz / count};
}

// The per-element formula above; a = w_c * invstd.
template <class T>
MEDKERN_HD T group_norm_input_grad(T dz, T x, T mean, T a, T beta, T gamma) {
  return a * dz + beta * (x - mean) + gamma;
}

}  // namespace medkern
