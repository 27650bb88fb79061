// core/preprocess_filter.cpp — the device-neutral part of the separable filter stage (filter.h):
// its argument checks, run once by the bindings before the CPU or CUDA kernel.
#include <vector>

#include "medkern/checks.h"
#include "medkern/filter.h"

namespace medkern {

void check_filter_axis_args(const TensorView& input, const TensorView& indices, const TensorView& weights,
                            const TensorView& output, int axis) {
  MEDKERN_CHECK_VALUE(input.ndim >= 3, "argument 'input' must be (N, C, *spatial) with at least one spatial "
                      "axis, got shape ", input.shape_string());
  check_dtype(input, "input", {DType::Float32});
  check_dtype(output, "output", {DType::Float32, DType::Float16, DType::BFloat16});
  check_dtype(indices, "indices", {DType::Int64});
  check_dtype(weights, "weights", {DType::Float32});
  const int spatial = input.ndim - 2;
  MEDKERN_CHECK_VALUE(axis >= 0 && axis < spatial, "argument 'axis' must be a spatial axis in [0, ", spatial,
                      ") of 'input' with shape ", input.shape_string(), ", got ", axis);
  check_ndim(indices, "indices", 2, "(out_len, taps)");
  MEDKERN_CHECK_VALUE(indices.shape[1] >= 1, "argument 'indices' needs at least one tap per output, got shape ",
                      indices.shape_string());
  if (weights.ndim == 3)  // one set of weights per sample (a random blur's own sigma)
    check_shape(weights, "weights", {input.shape[0], indices.shape[0], indices.shape[1]});
  else
    check_shape(weights, "weights", {indices.shape[0], indices.shape[1]});
  check_contiguous(indices, "indices");
  check_contiguous(weights, "weights");
  std::vector<int64_t> expected(input.shape.begin(), input.shape.begin() + input.ndim);
  expected[2 + axis] = indices.shape[0];
  check_shape(output, "output", expected);
  check_contiguous(output, "output");
  check_same_device(input, "input", indices, "indices");
  check_same_device(input, "input", weights, "weights");
  check_same_device(input, "input", output, "output");
  // each output element reads its neighbours along the axis, and every one reads the taps
  check_no_overlap(output, "output", input, "input");
  check_no_overlap(output, "output", indices, "indices");
  check_no_overlap(output, "output", weights, "weights");
}

}  // namespace medkern
