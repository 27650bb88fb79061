// common/statistics_math.h — the per-image statistics of the normalization pass (z-score,
// min-max, percentile clip): accumulating and merging partial sums, turning them into the
// (clip, shift, scale) map, numpy's 'linear' percentile, and the order-preserving uint32 key of
// a float that the GPU radix select works on. Shared by the CPU loop and the CUDA kernels, so
// both devices apply one set of rules (constant image -> 0, empty mask -> unchanged, NaN ->
// whole image NaN).
#pragma once
#include <cmath>
#include <cstdint>

#include "common/intensity_math.h"
#include "common/macros.h"

namespace medkern {

// Running statistics of one image (or of a chunk of it). Merging partials in a fixed order
// gives the same double sums on every run.
struct IntensityStats {
  double sum, sumsq, count;
  float lo, hi;
  int nan;
};

MEDKERN_HD IntensityStats empty_intensity_stats() { return IntensityStats{0.0, 0.0, 0.0, INFINITY, -INFINITY, 0}; }

MEDKERN_HD void add_to_stats(IntensityStats& s, float v) {
  s.nan |= v != v;
  s.sum += v;
  s.sumsq += static_cast<double>(v) * v;
  s.count += 1;
  s.lo = v < s.lo ? v : s.lo;
  s.hi = v > s.hi ? v : s.hi;
}

MEDKERN_HD void merge_stats(IntensityStats& into, const IntensityStats& other) {
  into.sum += other.sum;
  into.sumsq += other.sumsq;
  into.count += other.count;
  into.lo = other.lo < into.lo ? other.lo : into.lo;
  into.hi = other.hi > into.hi ? other.hi : into.hi;
  into.nan |= other.nan;
}

// out = (clamp(x, lo, hi) - shift) * scale: every normalization kind is this one map per image
// (z-score / min-max clamp to [-inf, inf], i.e. not at all).
struct NormalizeMap {
  float lo, hi, shift, scale;
};

MEDKERN_HD NormalizeMap identity_normalize_map() { return NormalizeMap{-INFINITY, INFINITY, 0.0f, 1.0f}; }
MEDKERN_HD NormalizeMap nan_normalize_map() {
  return NormalizeMap{-INFINITY, INFINITY, bits_float(0x7fc00000u), 1.0f};  // NaN propagates to the whole image
}

MEDKERN_HD float apply_normalize_map(float x, const NormalizeMap& m) {
  return (clamp_propagating_nan(x, m.lo, m.hi) - m.shift) * m.scale;
}

// z-score ((x - mean) / (std + eps), population std) or min-max ((x - min) / (max - min + eps));
// a zero denominator divides by 1 (constant image -> 0); no selected voxel -> identity.
MEDKERN_HD NormalizeMap moment_normalize_map(const IntensityStats& s, bool minmax, double eps) {
  if (s.count == 0) return identity_normalize_map();
  if (s.nan) return nan_normalize_map();
  NormalizeMap m = identity_normalize_map();
  if (minmax) {
    const double range = static_cast<double>(s.hi) - s.lo + eps;
    m.shift = s.lo;
    m.scale = static_cast<float>(range > 0 ? 1.0 / range : 1.0);
  } else {
    const double mean = s.sum / s.count;
    const double var_raw = s.sumsq / s.count - mean * mean;
    const double var = var_raw > 0.0 ? var_raw : 0.0;
    const double denom = sqrt(var) + eps;
    m.shift = static_cast<float>(mean);
    m.scale = static_cast<float>(denom > 0 ? 1.0 / denom : 1.0);
  }
  return m;
}

// numpy's default ('linear', Hyndman & Fan 7) percentile q in [0, 100] of `count` sorted values:
// virtual index h = (count - 1) * (q / 100), result = lerp(v[k], v[k + 1], h - k) with k = floor(h)
// (v[k + 1] is v[k] when k is the last index, then the weight is 0).
MEDKERN_HD void percentile_position(int64_t count, double q, int64_t& k, double& weight) {
  const double h = static_cast<double>(count - 1) * (q / 100.0);
  double f = floor(h);
  if (f < 0) f = 0;
  if (f > static_cast<double>(count - 1)) f = static_cast<double>(count - 1);
  k = static_cast<int64_t>(f);
  weight = h - f;
}

// numpy's _lerp: from the nearer end, so weight 1 returns `above` exactly.
MEDKERN_HD double percentile_interpolate(double below, double above, double weight) {
  const double diff = above - below;
  return weight >= 0.5 ? above - diff * (1.0 - weight) : below + diff * weight;
}

// Clip to [p_lo, p_hi], and with `rescale` map that range to [0, 1] (a zero range gives 0).
MEDKERN_HD NormalizeMap percentile_normalize_map(double p_lo, double p_hi, bool rescale) {
  NormalizeMap m{static_cast<float>(p_lo), static_cast<float>(p_hi), 0.0f, 1.0f};
  if (rescale) {
    const double range = p_hi - p_lo;
    m.shift = m.lo;
    m.scale = static_cast<float>(range > 0 ? 1.0 / range : 1.0);
  }
  return m;
}

// Workspace layout of the GPU percentile select (the host plans its size, csrc/cpu/preprocess.cpp).
// Four order statistics per image: ranks k_lo, k_lo + 1, k_hi, k_hi + 1 (numpy's neighbours).
constexpr int kPercentileTargets = 4;
constexpr int kRadixBins = 256;  // one 8-bit digit of the key per pass, 4 passes
struct PercentileChunkCounts {
  uint32_t count, nan;  // selected non-NaN values, selected NaNs (of one chunk)
};
struct PercentileSelectState {
  uint32_t prefix[kPercentileTargets];  // key bits found so far (high digits first)
  uint64_t rank[kPercentileTargets];    // rank still sought among keys with that prefix
  uint64_t count;                       // selected non-NaN values of the image
  uint32_t nan;                         // any selected NaN
  uint32_t pad;
  double weight_lo, weight_hi;          // numpy's interpolation weights
};

// Order-preserving key: a < b (as floats, -0 before +0, NaN excluded by the callers) exactly
// when key(a) < key(b) as unsigned integers. Negatives have every bit inverted, positives get the
// sign bit set.
MEDKERN_HD uint32_t float_order_key(float f) {
  const uint32_t u = float_bits(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
MEDKERN_HD float float_from_order_key(uint32_t key) {
  return bits_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

}  // namespace medkern
