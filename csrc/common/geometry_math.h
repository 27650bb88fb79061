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
#include <cstdint>

#include "common/macros.h"

namespace medkern {

enum class Interpolation : int { Nearest = 0, Linear = 1 };
enum class Padding : int { Zeros = 0, Border = 1, Reflect = 2 };

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

}  // namespace medkern
