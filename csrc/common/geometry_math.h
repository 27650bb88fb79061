// common/geometry_math.h — the per-output-element geometry of the fused resampler: map an
// output index through the sample's composed affine matrix to a source coordinate, resolve
// out-of-range taps by the padding mode, and weight the taps (nearest / linear).
// Coordinates are array indices with sample centres at integers (align_corners=False in torch's
// terms once the matrix is built; the matrix itself is composed once per sample in Python).
//
// Padding modes, on the taps (scipy.ndimage's extension of the input):
//   zeros   (scipy 'grid-constant', torch 'zeros'):        0 0 0 | a b c d | 0 0 0
//   border  (scipy 'nearest',       torch 'border'):       a a a | a b c d | d d d
//   reflect (scipy 'reflect',       torch 'reflection'):   c b a | a b c d | d c b
#pragma once
#include <cmath>
#include <cstdint>

#include "common/intensity_math.h"
#include "common/macros.h"

namespace medkern {

enum class Interpolation : int { Nearest = 0, Linear = 1 };
enum class Padding : int { Zeros = 0, Border = 1, Reflect = 2 };

// Python's names of the modes (_C.INTERPOLATION_CODES, _C.PADDING_CODES); nullptr past the last
// (see medkern/enum_names.h: no default, so a mode added without a name fails the build).
constexpr const char* interpolation_name(Interpolation mode) {
  switch (mode) {
    case Interpolation::Nearest: return "nearest";
    case Interpolation::Linear: return "linear";
  }
  return nullptr;
}

constexpr const char* padding_name(Padding mode) {
  switch (mode) {
    case Padding::Zeros: return "zeros";
    case Padding::Border: return "border";
    case Padding::Reflect: return "reflect";
  }
  return nullptr;
}

MEDKERN_HD int64_t floor_to_int(float x) {
  const int64_t i = static_cast<int64_t>(x);
  return i - (static_cast<float>(i) > x ? 1 : 0);
}

// Half-sample symmetric reflection, periodic with period 2n, so any far-out tap folds back.
MEDKERN_HD int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * n;
  int64_t r = i % period;
  if (r < 0) r += period;
  return r < n ? r : period - 1 - r;
}

// Resolves tap index i along an axis of size n; returns -1 when the tap reads padding zeros.
template <Padding P>
MEDKERN_HD int64_t resolve_tap(int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  if (P == Padding::Zeros) return -1;
  if (P == Padding::Border) return i < 0 ? 0 : n - 1;
  return reflect_index(i, n);
}

// Source coordinate along row r of a (dims+1)-column affine matrix (row-major, last column =
// translation) for the output index (z, y, x); for 2D the caller passes z = 0 and a 2x3 part.
MEDKERN_HD float affine_row(const float* row, int dims, float z, float y, float x) {
  return dims == 3 ? row[0] * z + row[1] * y + row[2] * x + row[3] : row[0] * y + row[1] * x + row[2];
}

// Linear interpolation along one axis: the two taps (resolved, -1 = zero padding) and weights.
struct AxisTaps {
  int64_t index[2];
  float weight[2];
};

template <Padding P>
MEDKERN_HD AxisTaps linear_taps(float coord, int64_t n) {
  const int64_t i0 = floor_to_int(coord);
  const float frac = coord - static_cast<float>(i0);
  AxisTaps t;
  t.index[0] = resolve_tap<P>(i0, n);
  t.index[1] = resolve_tap<P>(i0 + 1, n);
  t.weight[0] = 1.0f - frac;
  t.weight[1] = frac;
  return t;
}

// Nearest: rounds half up (floor(x + 0.5)), i.e. torch's 'nearest-exact' once the matrix holds
// the half-pixel-centre resize mapping.
template <Padding P>
MEDKERN_HD int64_t nearest_tap(float coord, int64_t n) {
  return resolve_tap<P>(floor_to_int(coord + 0.5f), n);
}

MEDKERN_HD int64_t resolve_tap_mode(int64_t i, int64_t n, Padding pad) {
  switch (pad) {
    case Padding::Zeros: return resolve_tap<Padding::Zeros>(i, n);
    case Padding::Border: return resolve_tap<Padding::Border>(i, n);
    default: return resolve_tap<Padding::Reflect>(i, n);
  }
}

// One (n, c) plane of the source with the pre ops applied to each tap. The common forms (none,
// Rescale, Rescale+Window = one folded affine then a clamp) run as a branch-free affine+clamp;
// other lists go through the general op loop (General = true).
template <class In, bool General>
struct SourcePlane {
  using value_type = In;
  const In* base;
  int64_t size[3], stride[3];  // z, y, x (2D: size[0] = 1, stride[0] = 0)
  const float* pre;
  int pre_count;
  float scale, shift, lo, hi;

  MEDKERN_HD float map(In raw) const {
    const float v = static_cast<float>(raw);
    if (General) return apply_intensity_ops(v, pre, pre_count);
    return clamp_propagating_nan(v * scale + shift, lo, hi);
  }
  MEDKERN_HD float tap(int64_t z, int64_t y, int64_t x) const {
    return map(base[z * stride[0] + y * stride[1] + x * stride[2]]);
  }
};

// Whether the pre ops are [Affine]? [Clamp]? (after the planner folded affines), and their
// constants if so.
MEDKERN_HD bool simple_pre_ops(const float* ops, int count, float& scale, float& shift, float& lo, float& hi) {
  scale = 1.0f; shift = 0.0f; lo = -INFINITY; hi = INFINITY;
  int i = 0;
  if (i < count && static_cast<int>(ops[0]) == static_cast<int>(IntensityOp::Affine)) {
    scale = ops[1]; shift = ops[2]; ++i;
  }
  if (i < count && static_cast<int>(ops[i * kIntensityOpWidth]) == static_cast<int>(IntensityOp::Clamp)) {
    lo = ops[i * kIntensityOpWidth + 1]; hi = ops[i * kIntensityOpWidth + 2]; ++i;
  }
  return i == count;
}

// The value at source coordinate (cz, cy, cx): nearest or (bi/tri)linear over the intensity-
// mapped taps; zero padding contributes 0 in the mapped space, as the unfused chain's padding.
// Fast path when every tap is inside (no index resolution).
template <class Src, int Dims, bool Linear>
MEDKERN_HD float sample_source(const Src& s, Padding pad, float cz, float cy, float cx) {
  if (!Linear) {
    const int64_t iz = Dims == 3 ? resolve_tap_mode(floor_to_int(cz + 0.5f), s.size[0], pad) : 0;
    const int64_t iy = resolve_tap_mode(floor_to_int(cy + 0.5f), s.size[1], pad);
    const int64_t ix = resolve_tap_mode(floor_to_int(cx + 0.5f), s.size[2], pad);
    if (iz < 0 || iy < 0 || ix < 0) return 0.0f;
    return s.tap(iz, iy, ix);
  }
  const int64_t y0 = floor_to_int(cy), x0 = floor_to_int(cx);
  const float fy = cy - static_cast<float>(y0), fx = cx - static_cast<float>(x0);
  const int64_t z0 = Dims == 3 ? floor_to_int(cz) : 0;
  const float fz = Dims == 3 ? cz - static_cast<float>(z0) : 0.0f;
  const bool inside = y0 >= 0 && y0 + 1 < s.size[1] && x0 >= 0 && x0 + 1 < s.size[2] &&
                      (Dims == 2 || (z0 >= 0 && z0 + 1 < s.size[0]));
  if (inside) {
    // one corner pointer, the other taps at fixed offsets: no per-tap index arithmetic
    const int64_t sy = s.stride[1], sx = s.stride[2];
    const typename Src::value_type* p = s.base + z0 * s.stride[0] + y0 * sy + x0 * sx;
    float acc = 0.0f;
    for (int a = 0; a < (Dims == 3 ? 2 : 1); ++a) {
      const typename Src::value_type* q = p + a * s.stride[0];
      const float top = (1.0f - fx) * s.map(q[0]) + fx * s.map(q[sx]);
      const float bottom = (1.0f - fx) * s.map(q[sy]) + fx * s.map(q[sy + sx]);
      const float plane = (1.0f - fy) * top + fy * bottom;
      acc += Dims == 3 ? (a == 0 ? 1.0f - fz : fz) * plane : plane;
    }
    return acc;
  }
  int64_t zi[2] = {0, 0}, yi[2], xi[2];
  for (int k = 0; k < 2; ++k) {
    yi[k] = resolve_tap_mode(y0 + k, s.size[1], pad);
    xi[k] = resolve_tap_mode(x0 + k, s.size[2], pad);
    if (Dims == 3) zi[k] = resolve_tap_mode(z0 + k, s.size[0], pad);
  }
  const float wy[2] = {1.0f - fy, fy}, wx[2] = {1.0f - fx, fx}, wz[2] = {1.0f - fz, fz};
  float acc = 0.0f;
  for (int a = 0; a < (Dims == 3 ? 2 : 1); ++a) {
    if (zi[a] < 0) continue;
    float plane = 0.0f;
    for (int b = 0; b < 2; ++b) {
      if (yi[b] < 0) continue;
      float row = 0.0f;
      for (int c = 0; c < 2; ++c)
        if (xi[c] >= 0) row += wx[c] * s.tap(zi[a], yi[b], xi[c]);
      plane += wy[b] * row;
    }
    acc += (Dims == 3 ? wz[a] : 1.0f) * plane;
  }
  return acc;
}

// ---- elastic deformation: a displacement field from a coarse control grid -------------------
// Uniform cubic B-spline weights of the four control points around fractional position t.
MEDKERN_HD void cubic_bspline_weights(float t, float w[4]) {
  const float t2 = t * t, t3 = t2 * t, s = 1.0f - t;
  w[0] = s * s * s / 6.0f;
  w[1] = (3.0f * t3 - 6.0f * t2 + 4.0f) / 6.0f;
  w[2] = (-3.0f * t3 + 3.0f * t2 + 3.0f * t + 1.0f) / 6.0f;
  w[3] = t3 / 6.0f;
}

// One sample's control grid: `dims` displacement components (output voxels, axis order z, y, x)
// on a (gz, gy, gx) grid whose corner points sit on the corners of the output array;
// to_grid[a] = (g_a - 1) / (size_a - 1) maps an output index to grid units. The field at a point
// is the cubic B-spline of the control values with clamped indices (scipy.ndimage.map_coordinates
// with order=3, prefilter=False, mode='nearest'), so it is smooth (C2) and bounded by the
// largest control displacement.
struct ElasticGrid {
  const float* values;  // (dims, gz, gy, gx) contiguous; 2D: (2, gy, gx) with gz = 1
  int64_t size[3];      // gz, gy, gx
  float to_grid[3];
};

// Sample n's grid in a (N, dims, *grid) array; grid/out sizes as (z, y, x) with z = 1 in 2D.
MEDKERN_HD ElasticGrid elastic_grid_at(const float* all, int64_t n, int dims, const int64_t grid[3],
                                       const int64_t out[3]) {
  ElasticGrid g;
  g.values = all + n * dims * grid[0] * grid[1] * grid[2];
  for (int a = 0; a < 3; ++a) {
    g.size[a] = grid[a];
    g.to_grid[a] = out[a] > 1 ? static_cast<float>(grid[a] - 1) / static_cast<float>(out[a] - 1) : 0.0f;
  }
  return g;
}

// The four control indices (clamped) and B-spline weights around output index p along axis a.
MEDKERN_HD void elastic_axis_taps(const ElasticGrid& g, int a, float p, int64_t index[4], float w[4]) {
  const float u = p * g.to_grid[a];
  const int64_t base = floor_to_int(u);
  cubic_bspline_weights(u - static_cast<float>(base), w);
  for (int k = 0; k < 4; ++k) index[k] = resolve_tap<Padding::Border>(base - 1 + k, g.size[a]);
}

// Component c of the field summed over the z and y taps at control column ix (2D: y taps only).
template <int Dims>
MEDKERN_HD float elastic_column(const ElasticGrid& g, int c, const int64_t iz[4], const float wz[4],
                                const int64_t iy[4], const float wy[4], int64_t ix) {
  const float* values = g.values + c * g.size[0] * g.size[1] * g.size[2] + ix;
  float acc = 0.0f;
  for (int i = 0; i < (Dims == 3 ? 4 : 1); ++i) {
    const float* plane = values + (Dims == 3 ? iz[i] : 0) * g.size[1] * g.size[2];
    float col = 0.0f;
    for (int j = 0; j < 4; ++j) col += wy[j] * plane[iy[j] * g.size[2]];
    acc += (Dims == 3 ? wz[i] : 1.0f) * col;
  }
  return acc;
}

// Taps of output row (z, y); 2D ignores z.
template <int Dims>
MEDKERN_HD void elastic_row_taps(const ElasticGrid& g, float z, float y, int64_t iz[4], float wz[4], int64_t iy[4],
                                 float wy[4]) {
  if (Dims == 3) elastic_axis_taps(g, 0, z, iz, wz);
  else for (int k = 0; k < 4; ++k) { iz[k] = 0; wz[k] = 0.0f; }
  elastic_axis_taps(g, 1, y, iy, wy);
}

// Displacement d (one component per spatial axis) at output index (z, y, x).
template <int Dims>
MEDKERN_HD void elastic_displacement(const ElasticGrid& g, float z, float y, float x, float d[3]) {
  int64_t iz[4], iy[4], ix[4];
  float wz[4], wy[4], wx[4];
  elastic_row_taps<Dims>(g, z, y, iz, wz, iy, wy);
  elastic_axis_taps(g, 2, x, ix, wx);
  for (int c = 0; c < Dims; ++c) {
    float acc = 0.0f;
    for (int k = 0; k < 4; ++k) acc += wx[k] * elastic_column<Dims>(g, c, iz, wz, iy, wy, ix[k]);
    d[c] = acc;
  }
}

}  // namespace medkern
