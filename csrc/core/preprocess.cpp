// core/preprocess.cpp — the device-neutral part of the fused preprocessing pass: argument checks
// of the resampling and normalization stages (run once by the bindings before the CPU or CUDA
// kernel), the GPU normalization's plan (whose workspace size Python asks for before it
// allocates), and the host's Philox uniforms that random transforms draw their parameters from.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "common/geometry_math.h"
#include "common/intensity_math.h"
#include "common/philox.h"
#include "common/statistics_math.h"
#include "medkern/checks.h"
#include "medkern/enum_names.h"
#include "medkern/preprocess.h"

namespace medkern {

void check_resample_args(const TensorView& input, const TensorView& matrices, const TensorView& sample_indices,
                         const TensorView& pre_ops, const TensorView& post_ops, const TensorView& output,
                         const TensorView* field, const ResampleArgs& args) {
  MEDKERN_CHECK_VALUE(input.ndim == 4 || input.ndim == 5, "argument 'input' must be 4-D (N, C, H, W) or 5-D "
                      "(N, C, D, H, W), got shape ", input.shape_string());
  check_dtype(input, "input", {DType::Int16, DType::UInt8, DType::UInt16, DType::Float32});
  check_dtype(output, "output", {DType::Float32, DType::Float16, DType::BFloat16});
  const int dims = input.ndim - 2;
  const int64_t n = input.shape[0], c = input.shape[1];
  MEDKERN_CHECK_VALUE(output.ndim == input.ndim, "argument 'output' must have the rank of 'input' (", input.ndim,
                      "), got shape ", output.shape_string());
  MEDKERN_CHECK_VALUE(output.shape[0] == n && output.shape[1] == c, "argument 'output' has shape ",
                      output.shape_string(), " but 'input' has (N, C) = (", n, ", ", c, ")");
  check_contiguous(output, "output");
  for (int d = 2; d < input.ndim; ++d)
    if (output.shape[d] > 0)
      MEDKERN_CHECK_VALUE(input.shape[d] > 0, "argument 'input' has an empty spatial axis: shape ",
                          input.shape_string());
  check_dtype(matrices, "matrices", {DType::Float64});
  check_shape(matrices, "matrices", {n, dims, dims + 1});
  check_contiguous(matrices, "matrices");
  check_dtype(sample_indices, "sample_indices", {DType::Int64});
  check_shape(sample_indices, "sample_indices", {n});
  check_contiguous(sample_indices, "sample_indices");
  for (const auto* ops : {&pre_ops, &post_ops}) {
    const char* name = ops == &pre_ops ? "pre_ops" : "post_ops";
    check_dtype(*ops, name, {DType::Float32});
    check_ndim(*ops, name, 3, "(N, ops, 4)");
    MEDKERN_CHECK_VALUE(ops->shape[0] == n && ops->shape[2] == kIntensityOpWidth, "argument '", name,
                        "' has shape ", ops->shape_string(), "; expected (", n, ", ops, 4)");
    if (ops->numel() > 0) check_contiguous(*ops, name);  // an empty list has arbitrary strides
  }
  if (field) {
    check_dtype(*field, "field", {DType::Float32});
    MEDKERN_CHECK_VALUE(field->ndim == input.ndim && field->shape[0] == n && field->shape[1] == dims,
                        "argument 'field' has shape ", field->shape_string(), "; expected (", n, ", ", dims,
                        ", *control_grid) with ", dims, " grid axes");
    for (int d = 2; d < field->ndim; ++d)
      MEDKERN_CHECK_VALUE(field->shape[d] >= 1, "argument 'field' has an empty control-grid axis: shape ",
                          field->shape_string());
    check_contiguous(*field, "field");
  }
  check_enum_code(args.interpolation, "interpolation", interpolation_name);
  check_enum_code(args.padding, "padding", padding_name);
  check_same_device(input, "input", output, "output");
  // the kernel gathers from anywhere in the source and reads the ops and matrices throughout
  const std::pair<const TensorView*, const char*> read[] = {{&input, "input"}, {&matrices, "matrices"},
      {&sample_indices, "sample_indices"}, {&pre_ops, "pre_ops"}, {&post_ops, "post_ops"}, {field, "field"}};
  for (const auto& [view, name] : read) {
    if (!view) continue;
    check_same_device(input, "input", *view, name);
    check_no_overlap(output, "output", *view, name);
  }
}

NormalizePlan plan_normalize_cuda(int64_t samples, int64_t channels, int64_t spatial, int kind, bool channel_wise) {
  // Chunks of 32K (moments) / 16K (histograms) elements: a 128^3 volume fills an H100 with 64 /
  // 128 blocks; at most 1024 chunks per image so the combining loops stay short.
  const bool percentile = kind == static_cast<int>(NormalizeKind::Percentile);
  NormalizePlan plan;
  const int64_t groups = channel_wise ? samples * channels : samples;
  const int64_t group_size = channel_wise ? spatial : channels * spatial;
  plan.groups = groups;
  plan.group_size = group_size;
  int64_t chunk = percentile ? 16384 : 32768;
  constexpr int64_t kMaxChunks = 1024;
  if ((group_size + chunk - 1) / chunk > kMaxChunks) chunk = ((group_size + kMaxChunks - 1) / kMaxChunks + 255) / 256 * 256;
  plan.chunk_elements = chunk;
  plan.chunks = std::max<int64_t>(1, (group_size + chunk - 1) / chunk);
  if (percentile) {
    plan.workspace_bytes = groups * static_cast<int64_t>(sizeof(PercentileSelectState)) +
                           groups * plan.chunks * static_cast<int64_t>(sizeof(PercentileChunkCounts)) +
                           groups * plan.chunks * kPercentileTargets * kRadixBins * static_cast<int64_t>(sizeof(uint32_t));
  } else if (groups >= 128 || plan.chunks == 1) {
    plan.chunks = 1;  // enough images to fill the GPU with one block each: no workspace
    plan.chunk_elements = group_size;
  } else {
    plan.workspace_bytes = groups * plan.chunks * static_cast<int64_t>(sizeof(IntensityStats));
  }
  MEDKERN_CHECK_VALUE(groups * plan.chunks < (int64_t{1} << 31), "argument 'input' has too many images for one "
                      "launch (", groups, " images of ", group_size, " elements)");
  return plan;
}

void check_normalize_args(const TensorView& input, const TensorView* mask, const TensorView& output,
                          const NormalizeArgs& args, const TensorView* workspace) {
  MEDKERN_CHECK_VALUE(input.ndim >= 3, "argument 'input' must be (N, C, *spatial), got shape ", input.shape_string());
  check_dtype(input, "input", {DType::Float32});
  check_contiguous(input, "input");
  check_dtype(output, "output", {DType::Float32, DType::Float16, DType::BFloat16});
  check_same_device(input, "input", output, "output");
  std::vector<int64_t> shape(input.shape.begin(), input.shape.begin() + input.ndim);
  check_shape(output, "output", shape);
  check_contiguous(output, "output");
  // in place is fine (each element is read, then overwritten by its own map); a partial overlap
  // would overwrite inputs before their statistics or their store read them
  check_in_place_or_no_overlap(output, "output", input, "input");
  check_enum_code(args.kind, "kind", normalize_kind_name);
  MEDKERN_CHECK_VALUE(args.eps >= 0, "argument 'eps' must be >= 0, got ", args.eps);
  if (args.kind == static_cast<int>(NormalizeKind::Percentile)) {
    MEDKERN_CHECK_VALUE(std::isfinite(args.lower) && args.lower >= 0 && args.lower < 100,
                        "argument 'lower' must be a percentile in [0, 100), got ", args.lower);
    MEDKERN_CHECK_VALUE(std::isfinite(args.upper) && args.upper > args.lower && args.upper <= 100,
                        "argument 'upper' must be a percentile in (lower, 100] = (", args.lower, ", 100], got ",
                        args.upper);
  }
  if (mask) {
    check_dtype(*mask, "mask", {DType::UInt8, DType::Bool});
    check_same_device(input, "input", *mask, "mask");
    check_contiguous(*mask, "mask");
    bool ok = mask->ndim == input.ndim && mask->shape[0] == input.shape[0] &&
              (mask->shape[1] == 1 || mask->shape[1] == input.shape[1]);
    for (int d = 2; ok && d < input.ndim; ++d) ok = mask->shape[d] == input.shape[d];
    MEDKERN_CHECK_VALUE(ok, "argument 'mask' has shape ", mask->shape_string(), "; expected (N, 1 or C, *spatial) "
                        "matching 'input' ", input.shape_string());
    check_no_overlap(output, "output", *mask, "mask");
  }
  if (workspace) {
    check_same_device(input, "input", *workspace, "workspace");
    check_contiguous(*workspace, "workspace");
    // the GPU pass writes its partial statistics there while it reads the input and mask
    check_no_overlap(*workspace, "workspace", input, "input");
    check_no_overlap(*workspace, "workspace", output, "output");
    if (mask) check_no_overlap(*workspace, "workspace", *mask, "mask");
  }
  if (input.is_cuda() && input.numel() > 0) {
    const int64_t N = input.shape[0], C = input.shape[1];
    const NormalizePlan plan = plan_normalize_cuda(N, C, input.numel() / (N * C), args.kind, args.channel_wise);
    const int64_t have = workspace ? workspace->numel() * dtype_size(workspace->dtype) : 0;
    MEDKERN_CHECK_VALUE(have >= plan.workspace_bytes, "argument 'workspace' holds ", have, " bytes; this "
                        "normalization needs ", plan.workspace_bytes, " (see normalize_workspace_bytes)");
  }
}

void philox_uniform(uint64_t seed, uint64_t sample, uint32_t stream, uint64_t first, int64_t count, double* out) {
  for (int64_t k = 0; k < count; ++k) {
    const uint64_t draw = first + static_cast<uint64_t>(k);
    const Philox4x32 r = philox_block(seed, sample, stream, draw >> 1);
    out[k] = (draw & 1) ? uniform_double_from_bits(r.v[2], r.v[3]) : uniform_double_from_bits(r.v[0], r.v[1]);
  }
}

}  // namespace medkern
