// medkern/preprocess.h — the fused preprocessing kernels: one resampling pass per output element
// (composed affine geometry + point-wise intensity on the source taps + interpolation + post
// intensity ops and Philox noise), and a light normalization pass (z-score / min-max /
// percentile clip per image). The caller (medkern.transforms.Pipeline) plans the stages and
// allocates every buffer, the GPU normalization's workspace included (normalize_workspace_bytes).
#pragma once
#include <cstdint>

#include "medkern/tensor_view.h"

namespace medkern {

// Arguments of one resampling stage. Shapes (dims = 2 or 3 spatial axes):
//   input          (N, C, *in_spatial)  int16 / uint8 / uint16 / float32, any strides
//   matrices       (N, dims, dims + 1)  float64, output index -> source index (row-major, contiguous)
//   sample_indices (N,)                 int64, the Philox sample key of each batch row
//   pre_ops        (N, P, 4)            float32 intensity ops on source taps (before interpolation)
//   post_ops       (N, Q, 4)            float32 ops on the interpolated value (incl. Noise)
//   output         (N, C, *out_spatial) float32 / float16 / bfloat16, contiguous
//   field          optional (N, dims, *grid) float32 contiguous: elastic control grid (output voxels,
//                  see ElasticGrid in common/geometry_math.h); the source coordinate of output
//                  index p is then matrix @ (p + displacement(p))
struct ResampleArgs {
  int interpolation = 1;  // medkern::Interpolation
  int padding = 0;        // medkern::Padding
  uint64_t seed = 0;
};

// Normalization kinds of the second pass.
enum class NormalizeKind : int { ZScore = 0, MinMax = 1, Percentile = 2 };

// Python's names of the kinds (_C.NORMALIZE_KIND_CODES); nullptr past the last (see
// medkern/enum_names.h: no default, so a kind added without a name fails the build).
constexpr const char* normalize_kind_name(NormalizeKind kind) {
  switch (kind) {
    case NormalizeKind::ZScore: return "zscore";
    case NormalizeKind::MinMax: return "minmax";
    case NormalizeKind::Percentile: return "percentile";
  }
  return nullptr;
}

// input (N, C, *spatial) float32 contiguous; mask optional (N, 1 or C, *spatial) uint8/bool
// contiguous selecting the voxels whose statistics are used; output like input in float32 /
// float16 / bfloat16 (may be the input itself when float32, must not overlap it otherwise).
// Statistics per sample, or per (sample, channel) when channel_wise. A constant image maps to 0
// (z-score: std 0 -> divide by 1).
// Percentile: clamp to [percentile(lower), percentile(upper)] (numpy's 'linear' definition,
// 0 <= lower < upper <= 100), and with `rescale` map that range to [0, 1]. The rules (NaN, empty
// mask, constant image) live in csrc/common/statistics_math.h.
struct NormalizeArgs {
  int kind = 0;
  bool channel_wise = false;
  double eps = 0.0;
  double lower = 0.0;   // percentiles of kind Percentile
  double upper = 100.0;
  bool rescale = false;
};

// How the CUDA pass splits the work: `groups` images of `group_size` elements (per sample, or
// per (sample, channel) when channel_wise), `chunks` blocks of `chunk_elements` per image (1 = the
// one-block-per-image kernel), and the workspace bytes it needs (0 on the CPU, which uses its
// per-thread scratch). Depends on shapes and kind only, so Python can size the buffer first.
struct NormalizePlan {
  int64_t groups = 0, group_size = 0, chunks = 1, chunk_elements = 0;
  int64_t workspace_bytes = 0;
};
// For an input (samples, channels, *spatial) with `spatial` elements per channel (all >= 1).
NormalizePlan plan_normalize_cuda(int64_t samples, int64_t channels, int64_t spatial, int kind, bool channel_wise);

// Validates the views of a resampling stage (shared by the CPU and CUDA entry points); the output
// must not overlap any input.
void check_resample_args(const TensorView& input, const TensorView& matrices, const TensorView& sample_indices,
                         const TensorView& pre_ops, const TensorView& post_ops, const TensorView& output,
                         const TensorView* field, const ResampleArgs& args);
// `workspace` (any dtype, contiguous, on the input's device) must hold the plan's bytes on CUDA.
void check_normalize_args(const TensorView& input, const TensorView* mask, const TensorView& output,
                          const NormalizeArgs& args, const TensorView* workspace = nullptr);

// Fills out (count,) float64 with uniforms in [0, 1): draw k of (seed, sample, stream) for k in
// [first, first + count). Parameter draws of random transforms go through this, on the host
// whatever device the data lives on.
void philox_uniform(uint64_t seed, uint64_t sample, uint32_t stream, uint64_t first, int64_t count, double* out);

namespace cpu {
void resample_intensity(const TensorView& input, const TensorView& matrices, const TensorView& sample_indices,
                        const TensorView& pre_ops, const TensorView& post_ops, const TensorView& output,
                        const TensorView* field, const ResampleArgs& args);
void normalize_intensity(const TensorView& input, const TensorView* mask, const TensorView& output,
                         const NormalizeArgs& args);
}  // namespace cpu

namespace cuda {
void resample_intensity(const TensorView& input, const TensorView& matrices, const TensorView& sample_indices,
                        const TensorView& pre_ops, const TensorView& post_ops, const TensorView& output,
                        const TensorView* field, const ResampleArgs& args, Stream stream);
void normalize_intensity(const TensorView& input, const TensorView* mask, const TensorView& output,
                         const NormalizeArgs& args, const TensorView* workspace, Stream stream);
}  // namespace cuda

}  // namespace medkern
