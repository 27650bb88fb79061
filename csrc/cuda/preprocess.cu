// cuda/preprocess.cu — CUDA drivers of the fused preprocessing pass: one thread per output
// element (grid-stride, 64-bit indices) maps its index through the sample's matrix and calls the
// same sampling / intensity / Philox math as the CPU loop (csrc/common), so both devices compute
// one formula (elastic displacement and bias field included). Normalization: with many images one
// block per image reduces its statistics and rescales; with few large ones (a volume) chunk blocks
// write partial statistics to the caller's workspace and a second kernel recombines them per
// block in a fixed order (bitwise reproducible, no float atomics). Percentile clip: an exact
// radix select on the float's order-preserving key, 4 passes of 8-bit digit histograms per
// chunk, summed per image.
#include <cuda_runtime.h>

#include <cstdint>

#include "common/geometry_math.h"
#include "common/intensity_math.h"
#include "common/philox.h"
#include "common/statistics_math.h"
#include "cuda/cuda_check.cuh"
#include "medkern/preprocess.h"

namespace medkern::cuda {

namespace {

constexpr int kThreads = 256;

struct ResampleGeometry {
  int64_t N, C, Di, Hi, Wi, Do, Ho, Wo;
  int64_t sn, sc, sd, sh, sw;  // input strides (elements)
  int P, Q;
  int padding;
  uint64_t seed;
  const float* field;   // elastic control grids (N, dims, *grid) or nullptr
  int64_t grid[3];      // gz (1 in 2D), gy, gx
};

__device__ __forceinline__ void store_out(void* out, DType dtype, int64_t i, float v) {
  if (dtype == DType::Float32) static_cast<float*>(out)[i] = v;
  else if (dtype == DType::Float16) static_cast<uint16_t*>(out)[i] = float_to_half_bits(v);
  else static_cast<uint16_t*>(out)[i] = float_to_bfloat16_bits(v);
}

template <class In, int Dims, bool Linear, bool General>
__device__ float resample_one(const In* in, const ResampleGeometry& g, const double* mats, const float* pre,
                              int64_t n, int64_t c, int64_t z, int64_t y, int64_t x, float scale, float shift,
                              float lo, float hi) {
  SourcePlane<In, General> src{in + n * g.sn + c * g.sc, {Dims == 3 ? g.Di : 1, g.Hi, g.Wi},
                               {Dims == 3 ? g.sd : 0, g.sh, g.sw}, pre, g.P, scale, shift, lo, hi};
  const double* m = mats + n * Dims * (Dims + 1);
  float p[3] = {static_cast<float>(z), static_cast<float>(y), static_cast<float>(x)};
  if (g.field) {  // elastic: matrix @ (p + displacement(p)), as the CPU loop
    const int64_t out[3] = {g.Do, g.Ho, g.Wo};
    const ElasticGrid grid = elastic_grid_at(g.field, n, Dims, g.grid, out);
    float d[3];
    elastic_displacement<Dims>(grid, p[0], p[1], p[2], d);
    for (int a = 0; a < Dims; ++a) p[3 - Dims + a] += d[a];
  }
  float coord[3] = {0.0f, 0.0f, 0.0f};
  for (int d = 0; d < Dims; ++d) {
    float row[4];
    for (int j = 0; j <= Dims; ++j) row[j] = static_cast<float>(m[d * (Dims + 1) + j]);
    coord[d] = affine_row(row, Dims, p[0], p[1], p[2]);
  }
  const Padding pad = static_cast<Padding>(g.padding);
  if (Dims == 3) return sample_source<SourcePlane<In, General>, 3, Linear>(src, pad, coord[0], coord[1], coord[2]);
  return sample_source<SourcePlane<In, General>, 2, Linear>(src, pad, 0.0f, coord[0], coord[1]);
}

template <class In, int Dims, bool Linear>
__global__ void resample_intensity_kernel(const In* in, ResampleGeometry g, const double* mats,
                                          const int64_t* samples, const float* pre_all, const float* post_all,
                                          void* out, DType out_dtype) {
  const int64_t plane = g.Do * g.Ho * g.Wo;
  const int64_t total = g.N * g.C * plane;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t x = i % g.Wo, y = (i / g.Wo) % g.Ho, z = (i / (g.Wo * g.Ho)) % g.Do;
    const int64_t c = (i / plane) % g.C, n = i / (plane * g.C);
    const float* pre = pre_all + n * g.P * kIntensityOpWidth;
    float scale, shift, lo, hi;
    float v;
    if (simple_pre_ops(pre, g.P, scale, shift, lo, hi))
      v = resample_one<In, Dims, Linear, false>(in, g, mats, pre, n, c, z, y, x, scale, shift, lo, hi);
    else
      v = resample_one<In, Dims, Linear, true>(in, g, mats, pre, n, c, z, y, x, 1.0f, 0.0f, 0.0f, 0.0f);
    const float* post = post_all + n * g.Q * kIntensityOpWidth;
    const int64_t element = i - n * g.C * plane;  // flat index within the sample: the noise counter
    for (int k = 0; k < g.Q; ++k) {
      const float* op = post + k * kIntensityOpWidth;
      if (is_bias_op(op)) {
        const int terms = bias_term_count(op, g.Q - k);
        v *= bias_field_value(op, terms, unit_coordinate(z, g.Do), unit_coordinate(y, g.Ho), unit_coordinate(x, g.Wo));
        k += terms;  // and the BiasApply op that closes the terms
      } else if (is_noise_op(op))
        v += op[1] * philox_normal_at(g.seed, static_cast<uint64_t>(samples[n]),
                                      kNoiseStreamBit | static_cast<uint32_t>(op[3]), static_cast<uint64_t>(element));
      else
        v = apply_intensity_op(v, op);
    }
    store_out(out, out_dtype, i, v);
  }
}

int blocks_for(int64_t total) {
  const int64_t b = (total + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 * 32 ? b : 65535 * 32);
}

template <class In>
void launch_resample(const TensorView& input, const ResampleGeometry& g, const TensorView& matrices,
                     const TensorView& sample_indices, const TensorView& pre_ops, const TensorView& post_ops,
                     const TensorView& output, bool linear, cudaStream_t stream) {
  const int64_t total = output.numel();
  const int blocks = blocks_for(total);
  const In* in = input.ptr<In>();
  auto args = [&](auto kernel) {
    kernel<<<blocks, kThreads, 0, stream>>>(in, g, matrices.ptr<double>(), sample_indices.ptr<int64_t>(),
                                            pre_ops.ptr<float>(), post_ops.ptr<float>(), output.data, output.dtype);
  };
  if (input.ndim == 4) {
    if (linear) args(resample_intensity_kernel<In, 2, true>);
    else args(resample_intensity_kernel<In, 2, false>);
  } else {
    if (linear) args(resample_intensity_kernel<In, 3, true>);
    else args(resample_intensity_kernel<In, 3, false>);
  }
  MEDKERN_CUDA_CHECK_LAUNCH("resample_intensity_kernel");
}

// The images of the normalization pass: image `group` is elements [group * group_size, +group_size)
// of the contiguous input; the mask (if any) is read per element through its channel layout.
struct NormalizeImages {
  const float* in;
  const uint8_t* mask;
  int64_t mask_channels, C, S, group_size;
  bool channel_wise;
  void* out;
  DType out_dtype;
};

__device__ __forceinline__ bool is_selected(const NormalizeImages& im, int64_t group, int64_t i) {
  if (!im.mask) return true;
  const int64_t n = im.channel_wise ? group / im.C : group;
  const int64_t c = (im.channel_wise ? group % im.C : 0) + i / im.S, s = i % im.S;
  return im.mask[(n * im.mask_channels + (im.mask_channels == 1 ? 0 : c)) * im.S + s] != 0;
}

// Tree over the block's threads in a fixed order (blockDim.x a power of two, <= kThreads); the
// result is returned to every thread.
__device__ IntensityStats block_merge_stats(IntensityStats s, IntensityStats* shared) {
  const int t = threadIdx.x;
  shared[t] = s;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (t < half) merge_stats(shared[t], shared[t + half]);
    __syncthreads();
  }
  const IntensityStats total = shared[0];
  __syncthreads();
  return total;
}

__device__ __forceinline__ void store_normalized(const NormalizeImages& im, int64_t group, int64_t begin, int64_t end,
                                                 const NormalizeMap& map) {
  const float* x = im.in + group * im.group_size;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
    store_out(im.out, im.out_dtype, group * im.group_size + i, apply_normalize_map(x[i], map));
}

// Many images: one block per image reduces its statistics, then writes it.
__global__ void normalize_kernel(NormalizeImages im, bool minmax, double eps) {
  __shared__ IntensityStats shared[kThreads];
  const int64_t group = blockIdx.x;
  const float* x = im.in + group * im.group_size;
  IntensityStats s = empty_intensity_stats();
  for (int64_t i = threadIdx.x; i < im.group_size; i += blockDim.x)
    if (is_selected(im, group, i)) add_to_stats(s, x[i]);
  s = block_merge_stats(s, shared);
  store_normalized(im, group, 0, im.group_size, moment_normalize_map(s, minmax, eps));
}

// Few images, pass 1: block b = (group, chunk) writes the statistics of its chunk.
__global__ void normalize_partial_stats_kernel(NormalizeImages im, int64_t chunks, int64_t chunk_elements,
                                               IntensityStats* partials) {
  __shared__ IntensityStats shared[kThreads];
  const int64_t group = blockIdx.x / chunks, chunk = blockIdx.x % chunks;
  const int64_t begin = chunk * chunk_elements, end = min(im.group_size, begin + chunk_elements);
  const float* x = im.in + group * im.group_size;
  IntensityStats s = empty_intensity_stats();
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
    if (is_selected(im, group, i)) add_to_stats(s, x[i]);
  s = block_merge_stats(s, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// Pass 2: every block of an image merges all its partials in the same order (so all blocks
// agree bit for bit), then writes its chunk.
__global__ void normalize_apply_stats_kernel(NormalizeImages im, int64_t chunks, int64_t chunk_elements,
                                             const IntensityStats* partials, bool minmax, double eps) {
  __shared__ IntensityStats shared[kThreads];
  const int64_t group = blockIdx.x / chunks, chunk = blockIdx.x % chunks;
  IntensityStats s = empty_intensity_stats();
  for (int64_t j = threadIdx.x; j < chunks; j += blockDim.x) merge_stats(s, partials[group * chunks + j]);
  s = block_merge_stats(s, shared);
  const int64_t begin = chunk * chunk_elements, end = min(im.group_size, begin + chunk_elements);
  store_normalized(im, group, begin, end, moment_normalize_map(s, minmax, eps));
}

// Percentile workspace: one select state per image, then per (image, chunk) the counts and the
// kPercentileTargets digit histograms of the current pass.
struct PercentileWorkspace {
  PercentileSelectState* states;
  PercentileChunkCounts* counts;
  uint32_t* histograms;
};

// Pass `pass` (0..3) of the radix select: block b = (group, chunk) histograms digit `pass`
// (from the top) of the keys of its chunk's selected non-NaN values, for each target among the
// keys that match the target's prefix found so far (pass 0: one histogram serves all targets).
__global__ void percentile_histogram_kernel(NormalizeImages im, int64_t chunks, int64_t chunk_elements,
                                            PercentileWorkspace ws, int pass) {
  __shared__ uint32_t bins[kPercentileTargets * kRadixBins];
  __shared__ uint32_t block_count, block_nan;
  const int64_t group = blockIdx.x / chunks, chunk = blockIdx.x % chunks;
  for (int j = threadIdx.x; j < kPercentileTargets * kRadixBins; j += blockDim.x) bins[j] = 0;
  if (threadIdx.x == 0) block_count = block_nan = 0;
  uint32_t prefix[kPercentileTargets] = {0, 0, 0, 0};
  if (pass > 0)
    for (int t = 0; t < kPercentileTargets; ++t) prefix[t] = ws.states[group].prefix[t];
  __syncthreads();
  const int digit_shift = 24 - 8 * pass;      // the digit this pass histograms
  const int known_shift = 32 - 8 * pass;      // bits above it are already fixed (pass >= 1)
  const int64_t begin = chunk * chunk_elements, end = min(im.group_size, begin + chunk_elements);
  const float* x = im.in + group * im.group_size;
  uint32_t count = 0, nan = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    if (!is_selected(im, group, i)) continue;
    const float v = x[i];
    if (v != v) { ++nan; continue; }
    ++count;
    const uint32_t key = float_order_key(v);
    const uint32_t digit = (key >> digit_shift) & 0xffu;
    if (pass == 0) {
      atomicAdd(&bins[digit], 1u);
    } else {
      for (int t = 0; t < kPercentileTargets; ++t)
        if ((key >> known_shift) == (prefix[t] >> known_shift)) atomicAdd(&bins[t * kRadixBins + digit], 1u);
    }
  }
  if (pass == 0) {
    atomicAdd(&block_count, count);  // integer atomics: the totals do not depend on the order
    atomicAdd(&block_nan, nan);
  }
  __syncthreads();
  uint32_t* out = ws.histograms + blockIdx.x * static_cast<int64_t>(kPercentileTargets * kRadixBins);
  for (int j = threadIdx.x; j < kPercentileTargets * kRadixBins; j += blockDim.x) out[j] = bins[j];
  if (pass == 0 && threadIdx.x == 0) ws.counts[blockIdx.x] = PercentileChunkCounts{block_count, block_nan};
}

// One block (kRadixBins threads) per image: sums the chunk histograms of this pass and narrows
// each target to the digit bin holding its rank. Pass 0 also sets the ranks from the count.
__global__ void percentile_select_kernel(int64_t chunks, PercentileWorkspace ws, int pass, double lower,
                                         double upper) {
  __shared__ PercentileSelectState st;
  __shared__ uint32_t bins[kPercentileTargets * kRadixBins];
  const int64_t group = blockIdx.x;
  if (threadIdx.x == 0) {
    if (pass == 0) {
      uint64_t count = 0;
      uint32_t nan = 0;
      for (int64_t c = 0; c < chunks; ++c) {
        count += ws.counts[group * chunks + c].count;
        nan |= ws.counts[group * chunks + c].nan != 0;
      }
      st.count = count;
      st.nan = nan;
      st.pad = 0;
      int64_t k_lo = 0, k_hi = 0;
      double w_lo = 0, w_hi = 0;
      if (count > 0) {
        percentile_position(static_cast<int64_t>(count), lower, k_lo, w_lo);
        percentile_position(static_cast<int64_t>(count), upper, k_hi, w_hi);
      }
      const int64_t last = count > 0 ? static_cast<int64_t>(count) - 1 : 0;
      st.rank[0] = k_lo; st.rank[1] = min(k_lo + 1, last);
      st.rank[2] = k_hi; st.rank[3] = min(k_hi + 1, last);
      for (int t = 0; t < kPercentileTargets; ++t) st.prefix[t] = 0;
      st.weight_lo = w_lo;
      st.weight_hi = w_hi;
    } else {
      st = ws.states[group];
    }
  }
  for (int j = threadIdx.x; j < kPercentileTargets * kRadixBins; j += blockDim.x) {
    const int t = j / kRadixBins, digit = j % kRadixBins;
    const int source = (pass == 0 ? 0 : t) * kRadixBins + digit;
    uint32_t sum = 0;
    for (int64_t c = 0; c < chunks; ++c)
      sum += ws.histograms[(group * chunks + c) * (kPercentileTargets * kRadixBins) + source];
    bins[j] = sum;
  }
  __syncthreads();
  if (threadIdx.x < kPercentileTargets && st.count > 0 && !st.nan) {
    const int t = threadIdx.x;
    uint64_t below = 0;
    int digit = 0;
    for (; digit < kRadixBins - 1; ++digit) {
      const uint64_t in_bin = bins[t * kRadixBins + digit];
      if (below + in_bin > st.rank[t]) break;
      below += in_bin;
    }
    st.rank[t] -= below;
    st.prefix[t] |= static_cast<uint32_t>(digit) << (24 - 8 * pass);
  }
  __syncthreads();
  if (threadIdx.x == 0) ws.states[group] = st;
}

// After the 4 passes each prefix is a full key: interpolate like numpy, then clip (and rescale).
__global__ void percentile_apply_kernel(NormalizeImages im, int64_t chunks, int64_t chunk_elements,
                                        PercentileWorkspace ws, bool rescale) {
  const int64_t group = blockIdx.x / chunks, chunk = blockIdx.x % chunks;
  const PercentileSelectState st = ws.states[group];
  NormalizeMap map;
  // st.count excludes NaNs, so the NaN rule goes first: selected values that are all NaN make
  // the image NaN, as on the CPU (whose count includes them)
  if (st.nan) {
    map = nan_normalize_map();
  } else if (st.count == 0) {
    map = identity_normalize_map();
  } else {
    double v[kPercentileTargets];
    for (int t = 0; t < kPercentileTargets; ++t) v[t] = float_from_order_key(st.prefix[t]);
    map = percentile_normalize_map(percentile_interpolate(v[0], v[1], st.weight_lo),
                                   percentile_interpolate(v[2], v[3], st.weight_hi), rescale);
  }
  const int64_t begin = chunk * chunk_elements, end = min(im.group_size, begin + chunk_elements);
  store_normalized(im, group, begin, end, map);
}

}  // namespace

void resample_intensity(const TensorView& input, const TensorView& matrices, const TensorView& sample_indices,
                        const TensorView& pre_ops, const TensorView& post_ops, const TensorView& output,
                        const TensorView* field, const ResampleArgs& args, Stream stream) {
  if (output.numel() == 0) return;
  const bool three_d = input.ndim == 5;
  ResampleGeometry g;
  g.N = input.shape[0]; g.C = input.shape[1];
  g.Di = three_d ? input.shape[2] : 1; g.Hi = input.size(-2); g.Wi = input.size(-1);
  g.Do = three_d ? output.shape[2] : 1; g.Ho = output.size(-2); g.Wo = output.size(-1);
  g.sn = input.strides[0]; g.sc = input.strides[1];
  g.sd = three_d ? input.strides[2] : 0; g.sh = input.stride(-2); g.sw = input.stride(-1);
  g.P = static_cast<int>(pre_ops.shape[1]); g.Q = static_cast<int>(post_ops.shape[1]);
  g.padding = args.padding; g.seed = args.seed;
  g.field = field ? field->ptr<float>() : nullptr;
  g.grid[0] = field && three_d ? field->shape[2] : 1;
  g.grid[1] = field ? field->size(-2) : 1;
  g.grid[2] = field ? field->size(-1) : 1;
  const bool linear = args.interpolation == static_cast<int>(Interpolation::Linear);
  DeviceGuard guard(input);
  cudaStream_t s = as_cuda_stream(stream);
  switch (input.dtype) {
    case DType::Int16: launch_resample<int16_t>(input, g, matrices, sample_indices, pre_ops, post_ops, output, linear, s); break;
    case DType::UInt8: launch_resample<uint8_t>(input, g, matrices, sample_indices, pre_ops, post_ops, output, linear, s); break;
    case DType::UInt16: launch_resample<uint16_t>(input, g, matrices, sample_indices, pre_ops, post_ops, output, linear, s); break;
    case DType::Float32: launch_resample<float>(input, g, matrices, sample_indices, pre_ops, post_ops, output, linear, s); break;
    default: throw TypeError(concat("argument 'input' has unsupported dtype ", dtype_name(input.dtype)));
  }
}

void normalize_intensity(const TensorView& input, const TensorView* mask, const TensorView& output,
                         const NormalizeArgs& args, const TensorView* workspace, Stream stream) {
  if (input.numel() == 0) return;
  const int64_t N = input.shape[0], C = input.shape[1];
  const int64_t S = input.numel() / (N * C);
  const NormalizePlan plan = plan_normalize_cuda(N, C, S, args.kind, args.channel_wise);
  const int64_t groups = plan.groups, group_size = plan.group_size;
  MEDKERN_CHECK_VALUE(plan.workspace_bytes == 0 ||
                      (workspace && workspace->numel() * dtype_size(workspace->dtype) >= plan.workspace_bytes),
                      "argument 'workspace' must hold ", plan.workspace_bytes, " bytes");
  const NormalizeImages im{input.ptr<float>(), mask ? static_cast<const uint8_t*>(mask->data) : nullptr,
                           mask ? mask->shape[1] : 0, C, S, group_size, args.channel_wise, output.data, output.dtype};
  const bool minmax = args.kind == static_cast<int>(NormalizeKind::MinMax);
  const unsigned blocks = static_cast<unsigned>(groups * plan.chunks);
  DeviceGuard guard(input);
  cudaStream_t s = as_cuda_stream(stream);
  if (args.kind == static_cast<int>(NormalizeKind::Percentile)) {
    char* base = static_cast<char*>(workspace->data);
    PercentileWorkspace ws;
    ws.states = reinterpret_cast<PercentileSelectState*>(base);
    ws.counts = reinterpret_cast<PercentileChunkCounts*>(ws.states + groups);
    ws.histograms = reinterpret_cast<uint32_t*>(ws.counts + groups * plan.chunks);
    for (int pass = 0; pass < 4; ++pass) {
      percentile_histogram_kernel<<<blocks, kThreads, 0, s>>>(im, plan.chunks, plan.chunk_elements, ws, pass);
      MEDKERN_CUDA_CHECK_LAUNCH("percentile_histogram_kernel");
      percentile_select_kernel<<<static_cast<unsigned>(groups), kRadixBins, 0, s>>>(plan.chunks, ws, pass,
                                                                                    args.lower, args.upper);
      MEDKERN_CUDA_CHECK_LAUNCH("percentile_select_kernel");
    }
    percentile_apply_kernel<<<blocks, kThreads, 0, s>>>(im, plan.chunks, plan.chunk_elements, ws, args.rescale);
    MEDKERN_CUDA_CHECK_LAUNCH("percentile_apply_kernel");
  } else if (plan.chunks == 1) {
    normalize_kernel<<<static_cast<unsigned>(groups), kThreads, 0, s>>>(im, minmax, args.eps);
    MEDKERN_CUDA_CHECK_LAUNCH("normalize_kernel");
  } else {
    IntensityStats* partials = static_cast<IntensityStats*>(workspace->data);
    normalize_partial_stats_kernel<<<blocks, kThreads, 0, s>>>(im, plan.chunks, plan.chunk_elements, partials);
    MEDKERN_CUDA_CHECK_LAUNCH("normalize_partial_stats_kernel");
    normalize_apply_stats_kernel<<<blocks, kThreads, 0, s>>>(im, plan.chunks, plan.chunk_elements, partials, minmax,
                                                             args.eps);
    MEDKERN_CUDA_CHECK_LAUNCH("normalize_apply_stats_kernel");
  }
}

}  // namespace medkern::cuda
