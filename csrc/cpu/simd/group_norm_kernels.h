// cpu/simd/group_norm_kernels.h — the row passes of group norm (and of batch norm's fused
// activation): the (count, mean, M2) statistics of a row, normalize + activate, the gradient sums
// of a row, and the input gradient,
// written once as templates on the activation and compiled per instruction set
// (group_norm_avx512/avx2/scalar.cpp). A row is one (n, c) run of S elements.
#pragma once
#include "medkern/simd.h"
#include <algorithm>
#include <cstdint>

#include "common/activation_math.h"
#include "common/group_norm_math.h"

namespace medkern::cpu {

template <class T>
struct NormRow {
  const T* x;
  int64_t x_stride;
  const T* g;  // grad_output (gradient passes only)
  int64_t g_stride;
  T* out;  // dense
  int64_t S;
  T scale, shift;         // pre-activation z = x * scale + shift
  T mean, a, beta, gamma;  // input gradient: a * dz + beta * (x - mean) + gamma
  Activation activation;
  T slope;
};

#define MEDKERN_DECLARE_GROUP_NORM_KERNELS(ns)                                         \
  namespace ns {                                                                       \
  MeanM2 statistics_row(const float* x, int64_t S, int64_t stride);                    \
  MeanM2 statistics_row(const double* x, int64_t S, int64_t stride);                   \
  void normalize_row(const NormRow<float>& r);                                         \
  void normalize_row(const NormRow<double>& r);                                        \
  void grad_sums_row(const NormRow<float>& r, double* sum_dz, double* sum_dz_xmu);     \
  void grad_sums_row(const NormRow<double>& r, double* sum_dz, double* sum_dz_xmu);    \
  void input_grad_row(const NormRow<float>& r);                                        \
  void input_grad_row(const NormRow<double>& r);                                       \
  }
MEDKERN_DECLARE_GROUP_NORM_KERNELS(simd_avx512)
MEDKERN_DECLARE_GROUP_NORM_KERNELS(simd_avx2)
MEDKERN_DECLARE_GROUP_NORM_KERNELS(simd_scalar)
#undef MEDKERN_DECLARE_GROUP_NORM_KERNELS

// The row kernels at the CPU's SIMD level, for batch norm and group / instance norm alike.
template <class T>
MeanM2 run_statistics_row(SimdLevel level, const T* x, int64_t S, int64_t stride) {
  if (level == SimdLevel::AVX512) return simd_avx512::statistics_row(x, S, stride);
  if (level == SimdLevel::AVX2) return simd_avx2::statistics_row(x, S, stride);
  return simd_scalar::statistics_row(x, S, stride);
}
template <class T>
void run_normalize_row(SimdLevel level, const NormRow<T>& r) {
  if (level == SimdLevel::AVX512) simd_avx512::normalize_row(r);
  else if (level == SimdLevel::AVX2) simd_avx2::normalize_row(r);
  else simd_scalar::normalize_row(r);
}
template <class T>
void run_grad_sums_row(SimdLevel level, const NormRow<T>& r, double* a, double* b) {
  if (level == SimdLevel::AVX512) simd_avx512::grad_sums_row(r, a, b);
  else if (level == SimdLevel::AVX2) simd_avx2::grad_sums_row(r, a, b);
  else simd_scalar::grad_sums_row(r, a, b);
}
template <class T>
void run_input_grad_row(SimdLevel level, const NormRow<T>& r) {
  if (level == SimdLevel::AVX512) simd_avx512::input_grad_row(r);
  else if (level == SimdLevel::AVX2) simd_avx2::input_grad_row(r);
  else simd_scalar::input_grad_row(r);
}

}  // namespace medkern::cpu

#ifdef MEDKERN_SIMD_NS
namespace medkern::cpu::MEDKERN_SIMD_NS {
namespace {

// Two sweeps per chunk while it sits in L1 (mean, then squared deviations: no sum-of-squares
// cancellation), each lane of a 64-byte block summing on its own; chunks merge with
// mean_m2_combine. The first sweep sums offsets from the chunk's first value, so a large common
// offset (CT intensities) does not cost the mean its precision.
template <class T>
MeanM2 statistics_row_impl(const T* x, int64_t S, int64_t stride) {
  constexpr int64_t kChunk = 2048;
  constexpr int kLanes = 64 / sizeof(T);
  MeanM2 acc;
  for (int64_t s0 = 0; s0 < S; s0 += kChunk) {
    const int64_t len = std::min(kChunk, S - s0);
    const T* __restrict p = x + s0 * stride;
    const T pivot = p[0];
    T sum = 0, m2 = 0;  // sum of (x - pivot)
    if (stride == 1) {
      T lanes[kLanes] = {};
      int64_t s = 0;
      for (; s + kLanes <= len; s += kLanes) {
#pragma omp simd
        for (int k = 0; k < kLanes; ++k) lanes[k] += p[s + k] - pivot;
      }
      for (; s < len; ++s) sum += p[s] - pivot;
      for (int k = 0; k < kLanes; ++k) sum += lanes[k];
      const T mean = pivot + sum / static_cast<T>(len);
      T lanes2[kLanes] = {};
      for (s = 0; s + kLanes <= len; s += kLanes) {
#pragma omp simd
        for (int k = 0; k < kLanes; ++k) lanes2[k] += (p[s + k] - mean) * (p[s + k] - mean);
      }
      for (; s < len; ++s) m2 += (p[s] - mean) * (p[s] - mean);
      for (int k = 0; k < kLanes; ++k) m2 += lanes2[k];
    } else {
      for (int64_t s = 0; s < len; ++s) sum += p[s * stride] - pivot;
      const T mean = pivot + sum / static_cast<T>(len);
      for (int64_t s = 0; s < len; ++s) m2 += (p[s * stride] - mean) * (p[s * stride] - mean);
    }
    acc = mean_m2_combine(acc, MeanM2{static_cast<double>(len), pivot + static_cast<double>(sum) / len,
                                      static_cast<double>(m2)});
  }
  return acc;
}

template <Activation A, class T>
void normalize_row_impl(const NormRow<T>& r) {
  const T* __restrict x = r.x;
  T* __restrict y = r.out;
  const T scale = r.scale, shift = r.shift, slope = r.slope;
  if (r.x_stride == 1) {
#pragma omp simd
    for (int64_t s = 0; s < r.S; ++s) y[s] = activate<A>(x[s] * scale + shift, slope);
  } else {
    for (int64_t s = 0; s < r.S; ++s) y[s] = activate<A>(x[s * r.x_stride] * scale + shift, slope);
  }
}

// Sums in T over chunks short enough to keep T's rounding small, then in double. Each lane of a
// 64-byte block keeps its own partial sums (the reduction is reassociated explicitly): GCC folds
// a select-then-sum loop lane by lane in order otherwise, several times slower.
template <Activation A, class T>
void grad_sums_row_impl(const NormRow<T>& r, double* sum_dz, double* sum_dz_xmu) {
  constexpr int64_t kChunk = 1024;
  constexpr int kLanes = 64 / sizeof(T);
  const T scale = r.scale, shift = r.shift, slope = r.slope, mean = r.mean;
  double total_dz = 0, total_dz_xmu = 0;
  for (int64_t s0 = 0; s0 < r.S; s0 += kChunk) {
    const int64_t len = std::min(kChunk, r.S - s0);
    const T* __restrict x = r.x + s0 * r.x_stride;
    const T* __restrict g = r.g + s0 * r.g_stride;
    T a = 0, b = 0;
    if (r.x_stride == 1 && r.g_stride == 1) {
      T lane_a[kLanes] = {}, lane_b[kLanes] = {};
      int64_t s = 0;
      for (; s + kLanes <= len; s += kLanes) {
#pragma omp simd
        for (int k = 0; k < kLanes; ++k) {
          const T dz = activation_grad<A>(g[s + k], x[s + k] * scale + shift, slope);
          lane_a[k] += dz;
          lane_b[k] += dz * (x[s + k] - mean);
        }
      }
      for (; s < len; ++s) {
        const T dz = activation_grad<A>(g[s], x[s] * scale + shift, slope);
        a += dz;
        b += dz * (x[s] - mean);
      }
      for (int k = 0; k < kLanes; ++k) {
        a += lane_a[k];
        b += lane_b[k];
      }
    } else {
      for (int64_t s = 0; s < len; ++s) {
        const T xv = x[s * r.x_stride];
        const T dz = activation_grad<A>(g[s * r.g_stride], xv * scale + shift, slope);
        a += dz;
        b += dz * (xv - mean);
      }
    }
    total_dz += a;
    total_dz_xmu += b;
  }
  *sum_dz = total_dz;
  *sum_dz_xmu = total_dz_xmu;
}

template <Activation A, class T>
void input_grad_row_impl(const NormRow<T>& r) {
  const T* __restrict x = r.x;
  const T* __restrict g = r.g;
  T* __restrict dx = r.out;
  const T scale = r.scale, shift = r.shift, slope = r.slope, mean = r.mean, a = r.a, beta = r.beta, gamma = r.gamma;
  if (r.x_stride == 1 && r.g_stride == 1) {
#pragma omp simd
    for (int64_t s = 0; s < r.S; ++s)
      dx[s] = group_norm_input_grad(activation_grad<A>(g[s], x[s] * scale + shift, slope), x[s], mean, a, beta, gamma);
  } else {
    for (int64_t s = 0; s < r.S; ++s) {
      const T xv = x[s * r.x_stride];
      dx[s] = group_norm_input_grad(activation_grad<A>(g[s * r.g_stride], xv * scale + shift, slope), xv, mean, a,
                                    beta, gamma);
    }
  }
}

// Calls f.template operator()<A>() for the row's activation.
#define MEDKERN_BY_ACTIVATION(act, call)                                      \
  switch (act) {                                                              \
    case Activation::Relu: call(Activation::Relu); break;                     \
    case Activation::LeakyRelu: call(Activation::LeakyRelu); break;           \
    default: call(Activation::Identity); break;                               \
  }

template <class T>
void normalize_row_any(const NormRow<T>& r) {
#define MEDKERN_CALL(A) normalize_row_impl<A>(r)
  MEDKERN_BY_ACTIVATION(r.activation, MEDKERN_CALL)
#undef MEDKERN_CALL
}
template <class T>
void grad_sums_row_any(const NormRow<T>& r, double* a, double* b) {
#define MEDKERN_CALL(A) grad_sums_row_impl<A>(r, a, b)
  MEDKERN_BY_ACTIVATION(r.activation, MEDKERN_CALL)
#undef MEDKERN_CALL
}
template <class T>
void input_grad_row_any(const NormRow<T>& r) {
#define MEDKERN_CALL(A) input_grad_row_impl<A>(r)
  MEDKERN_BY_ACTIVATION(r.activation, MEDKERN_CALL)
#undef MEDKERN_CALL
}
#undef MEDKERN_BY_ACTIVATION

}  // namespace

MeanM2 statistics_row(const float* x, int64_t S, int64_t stride) { return statistics_row_impl(x, S, stride); }
MeanM2 statistics_row(const double* x, int64_t S, int64_t stride) { return statistics_row_impl(x, S, stride); }
void normalize_row(const NormRow<float>& r) { normalize_row_any(r); }
void normalize_row(const NormRow<double>& r) { normalize_row_any(r); }
void grad_sums_row(const NormRow<float>& r, double* a, double* b) { grad_sums_row_any(r, a, b); }
void grad_sums_row(const NormRow<double>& r, double* a, double* b) { grad_sums_row_any(r, a, b); }
void input_grad_row(const NormRow<float>& r) { input_grad_row_any(r); }
void input_grad_row(const NormRow<double>& r) { input_grad_row_any(r); }

}  // namespace medkern::cpu::MEDKERN_SIMD_NS
#endif
