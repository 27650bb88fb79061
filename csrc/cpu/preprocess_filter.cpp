// cpu/preprocess_filter.cpp — CPU driver of the separable filter stage (filter.h): OpenMP over
// output rows. Filtering along a non-last axis adds whole rows of the contiguous last axis, tap
// by tap (a loop the compiler vectorizes); along the last axis the row is also built tap by tap,
// over taps transposed once per call. Both use the tap arithmetic of common/filter_math.h, shared
// with the CUDA kernel.
#include "medkern/filter.h"

#include <algorithm>
#include <vector>

#include "common/filter_math.h"
#include "medkern/parallel.h"
#include "medkern/workspace.h"

namespace medkern::cpu {

void filter_axis(const TensorView& input, const TensorView& indices, const TensorView& weights,
                 const TensorView& output, int axis) {
  if (output.numel() == 0) return;
  const FilterAxisGeometry g = filter_axis_geometry(input, output, axis);
  const float* in = input.ptr<float>();
  const int64_t* taps_index = indices.ptr<int64_t>();
  const float* all_weights = weights.ptr<float>();
  const int64_t taps = indices.shape[1];
  // per-sample weights: sample n's (out_len, K) block; shared weights: stride 0
  const int64_t sample_weights = weights.ndim == 3 ? indices.shape[0] * taps : 0;
  const int64_t samples = input.shape[0];
  const int64_t in_len = input.shape[g.filtered], axis_stride = input.strides[g.filtered];
  const int64_t width = output.shape[input.ndim - 1], last_stride = input.strides[input.ndim - 1];
  const int64_t rows = output.numel() / width;
  const bool last_axis = g.filtered == input.ndim - 1;
  const bool direct = output.dtype == DType::Float32;
  void* out = output.data;
  const int64_t weight_sets = sample_weights ? samples : 1;
  std::vector<int64_t> index_by_tap;
  std::vector<float> weight_by_tap;  // per weight set
  if (last_axis) {
    index_by_tap.resize(static_cast<size_t>(width * taps));
    weight_by_tap.resize(static_cast<size_t>(weight_sets * width * taps));
    for (int64_t x = 0; x < width; ++x)
      for (int64_t k = 0; k < taps; ++k) index_by_tap[k * width + x] = taps_index[x * taps + k];
    for (int64_t set = 0; set < weight_sets; ++set)
      for (int64_t x = 0; x < width; ++x)
        for (int64_t k = 0; k < taps; ++k)
          weight_by_tap[(set * taps + k) * width + x] = all_weights[set * sample_weights + x * taps + k];
  }
  const int64_t rows_per_sample = rows / samples;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, width * taps));

  parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    float* scratch = direct ? nullptr : thread_workspace_as<float>(static_cast<size_t>(width), 0);
    for (int64_t row = begin; row < end; ++row) {
      int64_t i = 0;
      const float* base = in + g.source_offset(row, g.ndim - 2, &i);  // rows: all but the last axis
      const int64_t set = sample_weights ? row / rows_per_sample : 0;
      const float* taps_weight = all_weights + set * sample_weights;
      float* sum = direct ? static_cast<float*>(out) + row * width : scratch;
      if (last_axis) {
        // tap-major over the row (taps transposed once below): no short inner dot product per x
        std::fill(sum, sum + width, 0.0f);
        for (int64_t k = 0; k < taps; ++k) {
          const int64_t* index_k = index_by_tap.data() + k * width;
          const float* weight_k = weight_by_tap.data() + (set * taps + k) * width;
          for (int64_t x = 0; x < width; ++x)
            sum[x] = filter_accumulate(sum[x], weight_k[x], filter_tap_value(base, axis_stride, in_len, index_k[x]));
        }
      } else {
        std::fill(sum, sum + width, 0.0f);
        for (int64_t k = 0; k < taps; ++k) {
          const int64_t j = taps_index[i * taps + k];
          if (!filter_tap_inside(j, in_len)) continue;
          const float w = taps_weight[i * taps + k];
          const float* line = base + j * axis_stride;
          if (last_stride == 1) {
            for (int64_t x = 0; x < width; ++x) sum[x] = filter_accumulate(sum[x], w, line[x]);
          } else {
            for (int64_t x = 0; x < width; ++x) sum[x] = filter_accumulate(sum[x], w, line[x * last_stride]);
          }
        }
      }
      if (!direct)
        for (int64_t x = 0; x < width; ++x) filter_store(out, output.dtype, row * width + x, sum[x]);
    }
  });
}

}  // namespace medkern::cpu
