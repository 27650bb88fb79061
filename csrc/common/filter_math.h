// common/filter_math.h — the per-element arithmetic of the separable filter stage (one output
// element = a short dot product of taps along one axis), shared by the CPU loops and the CUDA
// kernel so both devices sum the same taps in the same order.
#pragma once
#include <cstdint>

#include "common/intensity_math.h"
#include "common/macros.h"
#include "medkern/tensor_view.h"

namespace medkern {

// Where one filter pass reads: the output shape and the input strides, the tensor dimension of
// the filtered axis. `source_offset` splits a flat index over output dimensions [0, last_dim]
// (last_dim = ndim - 1: an element, ndim - 2: a row of the last axis) into the input offset of
// its unfiltered coordinates and its coordinate along the filtered axis (the taps add that one).
struct FilterAxisGeometry {
  int ndim = 0, filtered = 0;
  int64_t out_shape[kMaxDims] = {};
  int64_t in_strides[kMaxDims] = {};

  MEDKERN_HD int64_t source_offset(int64_t index, int last_dim, int64_t* axis_coordinate) const {
    int64_t offset = 0;
    for (int d = last_dim; d >= 0; --d) {
      const int64_t coordinate = index % out_shape[d];
      index /= out_shape[d];
      if (d == filtered) *axis_coordinate = coordinate;
      else offset += coordinate * in_strides[d];
    }
    return offset;
  }
};

// The geometry of filtering spatial axis `axis` of input into output (host side).
inline FilterAxisGeometry filter_axis_geometry(const TensorView& input, const TensorView& output, int axis) {
  FilterAxisGeometry g;
  g.ndim = input.ndim;
  g.filtered = 2 + axis;
  for (int d = 0; d < input.ndim; ++d) {
    g.out_shape[d] = output.shape[d];
    g.in_strides[d] = input.strides[d];
  }
  return g;
}

// An index outside [0, length) is a zero-padding tap: it contributes nothing (and is never read,
// so a bad index cannot read out of bounds on either device).
MEDKERN_HD bool filter_tap_inside(int64_t index, int64_t length) { return index >= 0 && index < length; }

// The value a tap reads: the sample, or 0 for a padding tap (which reads no memory).
MEDKERN_HD float filter_tap_value(const float* line, int64_t stride, int64_t length, int64_t index) {
  return filter_tap_inside(index, length) ? line[index * stride] : 0.0f;
}

// One tap added to a running sum. The CPU row loop calls this per element of a row, the dot
// product below per output element; both start from 0 and add taps in k order.
MEDKERN_HD float filter_accumulate(float sum, float weight, float value) { return sum + weight * value; }

// sum_k weights[k] * line[indices[k] * stride], padding taps reading 0 (weights are finite).
MEDKERN_HD float filter_dot(const float* line, int64_t stride, int64_t length, const int64_t* indices,
                            const float* weights, int64_t taps) {
  float sum = 0.0f;
  for (int64_t k = 0; k < taps; ++k) {
    sum = filter_accumulate(sum, weights[k], filter_tap_value(line, stride, length, indices[k]));
  }
  return sum;
}

// Stores a float as the output dtype (float32 / float16 / bfloat16, round to nearest even).
MEDKERN_HD void filter_store(void* out, DType dtype, int64_t i, float v) {
  if (dtype == DType::Float32) static_cast<float*>(out)[i] = v;
  else if (dtype == DType::Float16) static_cast<uint16_t*>(out)[i] = float_to_half_bits(v);
  else static_cast<uint16_t*>(out)[i] = float_to_bfloat16_bits(v);
}

}  // namespace medkern
