// medkern/filter.h — the separable filter stage of the preprocessing pipeline: one sparse 1-D
// linear map along one spatial axis (Gaussian blur taps, antialiased resize weights). The taps
// are computed in Python (they depend on the shape only) so one kernel serves every filter.
#pragma once
#include <cstdint>

#include "medkern/tensor_view.h"

namespace medkern {

// out[n, c, ..., i, ...] = sum_k weights[i, k] * in[n, c, ..., indices[i, k], ...] along spatial
// axis `axis` (0 = first spatial axis). Shapes:
//   input   (N, C, *spatial)                       float32, any strides
//   indices (out_len, K)                           int64, contiguous; an index outside
//                                                  [0, in_len) (by convention -1) reads zero
//   weights (out_len, K) or (N, out_len, K)        float32, contiguous; the second form gives
//                                                  each sample its own weights (random blur)
//   output  (N, C, *spatial with axis -> out_len)  float32 / float16 / bfloat16, contiguous,
//                                                  not overlapping input, indices or weights
// Validates every argument (names it in the error); shared by the CPU and CUDA entry points.
void check_filter_axis_args(const TensorView& input, const TensorView& indices, const TensorView& weights,
                            const TensorView& output, int axis);

namespace cpu {
void filter_axis(const TensorView& input, const TensorView& indices, const TensorView& weights,
                 const TensorView& output, int axis);
}  // namespace cpu

namespace cuda {
// Runs on `stream`; allocates nothing, never synchronizes.
void filter_axis(const TensorView& input, const TensorView& indices, const TensorView& weights,
                 const TensorView& output, int axis, Stream stream);
}  // namespace cuda

}  // namespace medkern
