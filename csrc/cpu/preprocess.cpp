// cpu/preprocess.cpp — CPU drivers of the fused preprocessing pass: OpenMP over output rows
// (sample, channel, z, y); along a row the source coordinate is base + x * step, the taps are
// read straight through the input's strides (fast path when all taps are inside), intensity ops
// apply to each tap, then post ops and Philox noise, then one store. Math is in csrc/common.
// Normalization: per-image statistics (moments, or for a percentile clip numpy's four order
// statistics: a 12-bit key histogram, then std::nth_element inside the few bins that hold them),
// then one store loop of the shared map.
#include "medkern/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/geometry_math.h"
#include "common/intensity_math.h"
#include "common/philox.h"
#include "common/statistics_math.h"
#include "cpu/simd/resample_kernels.h"
#include "medkern/parallel.h"
#include "medkern/simd.h"
#include "medkern/workspace.h"

namespace medkern::cpu {

namespace {

// The noise generator at the machine's SIMD level (the same bits at every level: see
// fill_normals_body); the base build's copy serves machines without AVX2.
struct BaseIsaTag {};
using FillNormals = void (*)(uint64_t, uint64_t, uint32_t, int64_t, int, float*);
FillNormals fill_normals_for_machine() {
  switch (simd_level()) {
    case SimdLevel::AVX512: return &simd_avx512::fill_normals;
    case SimdLevel::AVX2: return &simd_avx2::fill_normals;
    default: return &fill_normals_body<BaseIsaTag>;
  }
}

inline void store_value(void* out, DType dtype, int64_t i, float v) {
  if (dtype == DType::Float32) static_cast<float*>(out)[i] = v;
  else if (dtype == DType::Float16) static_cast<uint16_t*>(out)[i] = float_to_half_bits(v);
  else static_cast<uint16_t*>(out)[i] = float_to_bfloat16_bits(v);
}

// The post ops of one row chunk, op by op over the chunk (tight loops the CPU overlaps and the
// compiler can vectorize); noise: one Philox block per aligned group of four elements.
struct PostOps {
  const float* ops;
  int count;
  uint64_t seed, sample;
  int64_t out_size[3];  // Do (1 for 2D), Ho, Wo: the bias field's unit coordinates
  FillNormals fill_normals;
};

constexpr int kChunk = 256;

inline void apply_post_ops(const PostOps& post, float* vals, int64_t first_element, int n, int64_t zz, int64_t yy,
                           int64_t x0) {
  float normals[kChunk + 8];
  for (int k = 0; k < post.count; ++k) {
    const float* op = post.ops + k * kIntensityOpWidth;
    if (is_bias_op(op)) {
      const int terms = bias_term_count(op, post.count - k);
      float a[kBiasFieldMaxOrder + 1];  // the row's cubic in x: one polynomial and an exp per element
      bias_row_polynomial(op, terms, unit_coordinate(zz, post.out_size[0]), unit_coordinate(yy, post.out_size[1]), a);
      for (int i = 0; i < n; ++i) vals[i] *= bias_from_polynomial(a, unit_coordinate(x0 + i, post.out_size[2]));
      k += terms;  // and the BiasApply op that closes the terms
    } else if (is_noise_op(op)) {
      const int64_t g0 = first_element >> 2, g1 = (first_element + n - 1) >> 2;
      const uint32_t stream = kNoiseStreamBit | static_cast<uint32_t>(op[3]);
      post.fill_normals(post.seed, post.sample, stream, g0, static_cast<int>(g1 - g0 + 1), normals);
      const float* z = normals + (first_element - 4 * g0);
      const float std = op[1];
      for (int i = 0; i < n; ++i) vals[i] += std * z[i];
    } else {
      for (int i = 0; i < n; ++i) vals[i] = apply_intensity_op(vals[i], op);
    }
  }
}

// The vector row kernel for this source type at the machine's SIMD level, or null (then the
// scalar loop runs): linear sampling, simple pre ops, unit column stride, 32-bit offsets.
template <class In>
using RowKernel = void (*)(const SourcePlane<In, false>&, Padding, int, const RowSegment&, float*);

template <class In>
RowKernel<In> row_kernel_for(const TensorView& input, bool linear) {
  if constexpr (std::is_same_v<In, int16_t> || std::is_same_v<In, uint16_t> || std::is_same_v<In, float>) {
    int64_t extent = 1;  // one (n, c) plane's element span either way from its first element
    for (int d = 2; d < input.ndim; ++d) extent += (input.shape[d] - 1) * std::abs(input.strides[d]);
    if (!linear || input.stride(-1) != 1 || extent + std::abs(input.stride(-2)) >= (int64_t{1} << 31)) return nullptr;
    switch (simd_level()) {
      case SimdLevel::AVX512: return static_cast<RowKernel<In>>(&simd_avx512::sample_row_linear);
      case SimdLevel::AVX2: return static_cast<RowKernel<In>>(&simd_avx2::sample_row_linear);
      default: return nullptr;
    }
  } else {
    return nullptr;
  }
}

// Samples a row chunk with the vector row kernel when it applies (linear, simple pre ops, a
// kernel for this source); false when the caller's scalar loop must run.
template <int Dims, bool Linear, class In, bool General>
bool vector_row(RowKernel<In> row_kernel, const SourcePlane<In, General>& src, Padding pad, const float* base,
                const float* step, int64_t x0, int n_chunk, float* vals) {
  if constexpr (Linear && !General) {
    if (!row_kernel) return false;
    const RowSegment seg{{base[0], Dims == 3 ? base[1] : base[0], Dims == 3 ? base[2] : base[1]},
                         {step[0], Dims == 3 ? step[1] : step[0], Dims == 3 ? step[2] : step[1]}, x0, n_chunk};
    row_kernel(src, pad, Dims, seg, vals);
    return true;
  } else {
    return false;
  }
}

template <class In, int Dims, bool Linear, bool General>
void resample_plane_rows(const TensorView& input, const TensorView& output, const SourcePlane<In, General>& src,
                         const PostOps& post, const float (&m)[3][4], const ElasticGrid* field, int64_t n,
                         int64_t c, int64_t row_begin, int64_t row_end, Padding pad, RowKernel<In> row_kernel) {
  const int64_t C = input.shape[1];
  const int64_t Do = Dims == 3 ? output.shape[2] : 1, Ho = output.size(-2), Wo = output.size(-1);
  const int64_t out_plane = Do * Ho * Wo;
  std::vector<float> columns(field ? Dims * field->size[2] : 0);  // elastic: per-row control columns
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t yy = r % Ho, zz = (r / Ho) % Do;
    float base[3], step[3];
    for (int d = 0; d < Dims; ++d) {
      if constexpr (Dims == 3) {
        base[d] = m[d][0] * static_cast<float>(zz) + m[d][1] * static_cast<float>(yy) + m[d][3];
        step[d] = m[d][2];
      } else {
        base[d] = m[d][0] * static_cast<float>(yy) + m[d][2];
        step[d] = m[d][1];
      }
    }
    const int64_t out_row = (n * C + c) * out_plane + (zz * Ho + yy) * Wo;
    const int64_t element_row = c * out_plane + (zz * Ho + yy) * Wo;
    float vals[kChunk];
    int64_t iz[4], iy[4];
    float wz[4], wy[4];
    for (int64_t x0 = 0; x0 < Wo; x0 += kChunk) {
      const int n_chunk = static_cast<int>(std::min<int64_t>(kChunk, Wo - x0));
      if (field) {
        // elastic: the source coordinate is matrix @ (p + displacement(p)); the z/y spline sums
        // of this row are collapsed once per control column, leaving 4 x taps per element
        if (x0 == 0) {
          elastic_row_taps<Dims>(*field, static_cast<float>(zz), static_cast<float>(yy), iz, wz, iy, wy);
          for (int c = 0; c < Dims; ++c)
            for (int64_t ix = 0; ix < field->size[2]; ++ix)
              columns[c * field->size[2] + ix] = elastic_column<Dims>(*field, c, iz, wz, iy, wy, ix);
        }
        for (int i = 0; i < n_chunk; ++i) {
          float p[3] = {static_cast<float>(zz), static_cast<float>(yy), static_cast<float>(x0 + i)}, d[3];
          int64_t ix[4];
          float wx[4];
          elastic_axis_taps(*field, 2, p[2], ix, wx);
          for (int c = 0; c < Dims; ++c) {
            const float* col = columns.data() + c * field->size[2];
            d[c] = wx[0] * col[ix[0]] + wx[1] * col[ix[1]] + wx[2] * col[ix[2]] + wx[3] * col[ix[3]];
          }
          for (int a = 0; a < Dims; ++a) p[3 - Dims + a] += d[a];
          float coord[3];
          for (int a = 0; a < Dims; ++a) coord[a] = affine_row(m[a], Dims, p[0], p[1], p[2]);
          vals[i] = Dims == 3 ? sample_source<SourcePlane<In, General>, 3, Linear>(src, pad, coord[0], coord[1], coord[2])
                              : sample_source<SourcePlane<In, General>, 2, Linear>(src, pad, 0.0f, coord[0], coord[1]);
        }
      } else if (!vector_row<Dims, Linear>(row_kernel, src, pad, base, step, x0, n_chunk, vals)) {
        for (int i = 0; i < n_chunk; ++i) {
          const float fx = static_cast<float>(x0 + i);
          if constexpr (Dims == 3)
            vals[i] = sample_source<SourcePlane<In, General>, 3, Linear>(
                src, pad, base[0] + step[0] * fx, base[1] + step[1] * fx, base[2] + step[2] * fx);
          else
            vals[i] = sample_source<SourcePlane<In, General>, 2, Linear>(src, pad, 0.0f, base[0] + step[0] * fx,
                                                                         base[1] + step[1] * fx);
        }
      }
      if (post.count > 0) apply_post_ops(post, vals, element_row + x0, n_chunk, zz, yy, x0);
      if (output.dtype == DType::Float32) {
        float* out = static_cast<float*>(output.data) + out_row + x0;
        for (int i = 0; i < n_chunk; ++i) out[i] = vals[i];
      } else {
        for (int i = 0; i < n_chunk; ++i) store_value(output.data, output.dtype, out_row + x0 + i, vals[i]);
      }
    }
  }
}

ElasticGrid elastic_grid_of(const TensorView& field, int64_t n, const TensorView& output) {
  const int dims = field.ndim - 2;
  const int64_t grid[3] = {dims == 3 ? field.shape[2] : 1, field.size(-2), field.size(-1)};
  const int64_t out[3] = {dims == 3 ? output.shape[2] : 1, output.size(-2), output.size(-1)};
  return elastic_grid_at(field.ptr<float>(), n, dims, grid, out);
}

template <class In, int Dims, bool Linear>
void resample_typed(const TensorView& input, const TensorView& matrices, const TensorView& sample_indices,
                    const TensorView& pre_ops, const TensorView& post_ops, const TensorView& output,
                    const TensorView* field, const ResampleArgs& args) {
  const int64_t N = input.shape[0], C = input.shape[1];
  const int64_t Do = Dims == 3 ? output.shape[2] : 1, Ho = output.size(-2), Wo = output.size(-1);
  const int64_t rows = N * C * Do * Ho;
  (void)N;
  const In* in = input.ptr<In>();
  const double* mats = matrices.ptr<double>();
  const int64_t* samples = sample_indices.ptr<int64_t>();
  const float* pre_all = pre_ops.ptr<float>();
  const float* post_all = post_ops.ptr<float>();
  const int P = static_cast<int>(pre_ops.shape[1]), Q = static_cast<int>(post_ops.shape[1]);
  const Padding pad = static_cast<Padding>(args.padding);
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(Wo, 1));
  const RowKernel<In> row_kernel = row_kernel_for<In>(input, Linear);
  const FillNormals fill_normals = fill_normals_for_machine();
  parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end;) {
      const int64_t c = (r / (Ho * Do)) % C, n = r / (Ho * Do * C);
      // the rows of one (n, c) plane share the source view, matrix and ops
      const int64_t plane_end = std::min(end, (n * C + c + 1) * Do * Ho);
      int64_t size[3], stride[3];
      if constexpr (Dims == 3) {
        size[0] = input.shape[2]; stride[0] = input.strides[2];
      } else {
        size[0] = 1; stride[0] = 0;
      }
      size[1] = input.size(-2); stride[1] = input.stride(-2);
      size[2] = input.size(-1); stride[2] = input.stride(-1);
      const In* base = in + n * input.strides[0] + c * input.strides[1];
      const float* pre = pre_all + n * P * kIntensityOpWidth;
      const PostOps post{post_all + n * Q * kIntensityOpWidth, Q, args.seed, static_cast<uint64_t>(samples[n]),
                         {Do, Ho, Wo}, fill_normals};
      ElasticGrid grid{};
      if (field) grid = elastic_grid_of(*field, n, output);
      float m[3][4] = {};
      const double* mn = mats + n * Dims * (Dims + 1);
      for (int i = 0; i < Dims; ++i)
        for (int j = 0; j <= Dims; ++j) m[i][j] = static_cast<float>(mn[i * (Dims + 1) + j]);
      float scale, shift, lo, hi;
      if (simple_pre_ops(pre, P, scale, shift, lo, hi)) {
        SourcePlane<In, false> src{base, {size[0], size[1], size[2]}, {stride[0], stride[1], stride[2]}, pre, P,
                              scale, shift, lo, hi};
        resample_plane_rows<In, Dims, Linear, false>(input, output, src, post, m, field ? &grid : nullptr, n, c, r,
                                                     plane_end, pad, row_kernel);
      } else {
        SourcePlane<In, true> src{base, {size[0], size[1], size[2]}, {stride[0], stride[1], stride[2]}, pre, P,
                                  1.0f, 0.0f, 0.0f, 0.0f};
        resample_plane_rows<In, Dims, Linear, true>(input, output, src, post, m, field ? &grid : nullptr, n, c, r,
                                                    plane_end, pad, row_kernel);
      }
      r = plane_end;
    }
  });
}

template <class In>
void resample_dispatch(const TensorView& input, const TensorView& matrices, const TensorView& sample_indices,
                       const TensorView& pre_ops, const TensorView& post_ops, const TensorView& output,
                       const TensorView* field, const ResampleArgs& args) {
  const bool linear = args.interpolation == static_cast<int>(Interpolation::Linear);
  if (input.ndim == 4) {
    if (linear) resample_typed<In, 2, true>(input, matrices, sample_indices, pre_ops, post_ops, output, field, args);
    else resample_typed<In, 2, false>(input, matrices, sample_indices, pre_ops, post_ops, output, field, args);
  } else {
    if (linear) resample_typed<In, 3, true>(input, matrices, sample_indices, pre_ops, post_ops, output, field, args);
    else resample_typed<In, 3, false>(input, matrices, sample_indices, pre_ops, post_ops, output, field, args);
  }
}

}  // namespace

void resample_intensity(const TensorView& input, const TensorView& matrices, const TensorView& sample_indices,
                        const TensorView& pre_ops, const TensorView& post_ops, const TensorView& output,
                        const TensorView* field, const ResampleArgs& args) {
  if (output.numel() == 0) return;
  switch (input.dtype) {
    case DType::Int16: resample_dispatch<int16_t>(input, matrices, sample_indices, pre_ops, post_ops, output, field, args); break;
    case DType::UInt8: resample_dispatch<uint8_t>(input, matrices, sample_indices, pre_ops, post_ops, output, field, args); break;
    case DType::UInt16: resample_dispatch<uint16_t>(input, matrices, sample_indices, pre_ops, post_ops, output, field, args); break;
    case DType::Float32: resample_dispatch<float>(input, matrices, sample_indices, pre_ops, post_ops, output, field, args); break;
    default: throw TypeError(concat("argument 'input' has unsupported dtype ", dtype_name(input.dtype)));
  }
}

// Percentile selection scratch of each thread (slot 8: conv/gemm own 0-7, see workspace.h): the
// values of the bins holding the wanted ranks; the key histogram shares slot 1 (unused elsewhere).
constexpr int kSlotPercentileValues = 8;
constexpr int kSlotPercentileHistogram = 1;

void normalize_intensity(const TensorView& input, const TensorView* mask, const TensorView& output,
                         const NormalizeArgs& args) {
  if (input.numel() == 0) return;
  const int64_t N = input.shape[0], C = input.shape[1];
  const int64_t S = input.numel() / (N * C);
  const int64_t groups = args.channel_wise ? N * C : N;
  const int64_t group_size = args.channel_wise ? S : C * S;
  const float* in = input.ptr<float>();
  const uint8_t* m = mask ? static_cast<const uint8_t*>(mask->data) : nullptr;
  const int64_t mask_channels = mask ? mask->shape[1] : 0;
  const bool minmax = args.kind == static_cast<int>(NormalizeKind::MinMax);
  const bool percentile = args.kind == static_cast<int>(NormalizeKind::Percentile);
  auto selected = [&](int64_t g, int64_t i) {
    if (!m) return true;
    const int64_t n = args.channel_wise ? g / C : g;
    const int64_t c = (args.channel_wise ? g % C : 0) + i / S, s = i % S;
    return m[(n * mask_channels + (mask_channels == 1 ? 0 : c)) * S + s] != 0;
  };
  // one group: statistics over [b, e) of its elements
  auto accumulate = [&](int64_t g, int64_t b, int64_t e, IntensityStats& result) {
    // a local accumulator: `result` may be a vector element, whose float fields could alias x
    // for the compiler and force a store + reload per element
    IntensityStats st = result;
    const float* x = in + g * group_size;
    if (!m) {
      for (int64_t i = b; i < e; ++i) add_to_stats(st, x[i]);
    } else {
      for (int64_t i = b; i < e; ++i)
        if (selected(g, i)) add_to_stats(st, x[i]);
    }
    result = st;
  };
  // percentile: a histogram of the top kPercentileBinBits of each selected value's order key
  // (one pass) locates the bins holding numpy's four neighbours (ranks k_lo, k_lo + 1, k_hi,
  // k_hi + 1); a second pass copies only those bins' values, where nth_element finds the ranks
  auto percentile_map = [&](int64_t g) {
    constexpr int kBinBits = 12, kBins = 1 << kBinBits;
    uint32_t* histogram = thread_workspace_as<uint32_t>(kBins, kSlotPercentileHistogram);
    std::fill(histogram, histogram + kBins, 0u);
    const float* x = in + g * group_size;
    int64_t count = 0;
    bool nan = false;
    for (int64_t i = 0; i < group_size; ++i) {
      if (!selected(g, i)) continue;
      const float v = x[i];
      nan = nan || v != v;
      ++histogram[float_order_key(v) >> (32 - kBinBits)];
      ++count;
    }
    if (count == 0) return identity_normalize_map();
    if (nan) return nan_normalize_map();
    int64_t ranks[4];
    double weights[2];
    for (int t = 0; t < 2; ++t) {
      percentile_position(count, t == 0 ? args.lower : args.upper, ranks[2 * t], weights[t]);
      ranks[2 * t + 1] = std::min(ranks[2 * t] + 1, count - 1);
    }
    // the bin of each rank, and the rank's offset inside its bin
    int64_t bin_of[4], offset_in_bin[4], first_bin = kBins, last_bin = -1;
    int64_t below = 0;
    int r = 0;
    for (int64_t b = 0; b < kBins && r < 4; ++b) {
      while (r < 4 && ranks[r] < below + histogram[b]) {
        bin_of[r] = b;
        offset_in_bin[r] = ranks[r] - below;
        first_bin = std::min(first_bin, b);
        last_bin = b;
        ++r;
      }
      below += histogram[b];
    }
    // values of the bins in [first_bin, last_bin] that hold a rank, bin after bin
    int64_t start[kBins > 0 ? 4 : 1], total = 0;
    int64_t wanted[4], distinct = 0;
    for (int q = 0; q < 4; ++q)
      if (distinct == 0 || wanted[distinct - 1] != bin_of[q]) wanted[distinct++] = bin_of[q];
    for (int64_t d = 0; d < distinct; ++d) {
      start[d] = total;
      total += histogram[wanted[d]];
    }
    float* values = thread_workspace_as<float>(static_cast<size_t>(total), kSlotPercentileValues);
    int64_t fill[4];
    for (int64_t d = 0; d < distinct; ++d) fill[d] = start[d];
    for (int64_t i = 0; i < group_size; ++i) {
      if (!selected(g, i)) continue;
      const int64_t b = float_order_key(x[i]) >> (32 - kBinBits);
      if (b < first_bin || b > last_bin) continue;
      for (int64_t d = 0; d < distinct; ++d)
        if (wanted[d] == b) { values[fill[d]++] = x[i]; break; }
    }
    double order_stat[4];
    for (int q = 0; q < 4; ++q) {
      int64_t d = 0;
      while (wanted[d] != bin_of[q]) ++d;
      float* lo = values + start[d];
      float* hi = lo + histogram[wanted[d]];
      std::nth_element(lo, lo + offset_in_bin[q], hi);
      order_stat[q] = lo[offset_in_bin[q]];
    }
    return percentile_normalize_map(percentile_interpolate(order_stat[0], order_stat[1], weights[0]),
                                    percentile_interpolate(order_stat[2], order_stat[3], weights[1]), args.rescale);
  };
  auto store = [&](int64_t g, const NormalizeMap& map, int64_t b, int64_t e) {
    const float* x = in + g * group_size;
    const int64_t offset = g * group_size;
    if (output.dtype == DType::Float32) {
      float* out = static_cast<float*>(output.data) + offset;
      for (int64_t i = b; i < e; ++i) out[i] = apply_normalize_map(x[i], map);
    } else {
      for (int64_t i = b; i < e; ++i) store_value(output.data, output.dtype, offset + i, apply_normalize_map(x[i], map));
    }
  };
  auto group_map = [&](int64_t g) {
    if (percentile) return percentile_map(g);
    IntensityStats st = empty_intensity_stats();
    accumulate(g, 0, group_size, st);
    return moment_normalize_map(st, minmax, args.eps);
  };
  if (groups >= num_threads()) {
    // each thread takes whole images: statistics and store while the image is in cache
    parallel_for(0, groups, 1, [&](int64_t gb, int64_t ge) {
      for (int64_t g = gb; g < ge; ++g) store(g, group_map(g), 0, group_size);
    });
    return;
  }
  // few large images (a volume): split each image over the threads
  std::vector<NormalizeMap> maps(static_cast<size_t>(groups));
  if (percentile) {
    parallel_for(0, groups, 1, [&](int64_t gb, int64_t ge) {
      for (int64_t g = gb; g < ge; ++g) maps[g] = percentile_map(g);
    });
  } else {
    for (int64_t g = 0; g < groups; ++g) {
      const int parts = num_threads();
      std::vector<IntensityStats> partial(parts, empty_intensity_stats());
      const int64_t chunk = (group_size + parts - 1) / parts;
      parallel_for(0, parts, 1, [&](int64_t pb, int64_t pe) {
        for (int64_t p = pb; p < pe; ++p) accumulate(g, p * chunk, std::min(group_size, (p + 1) * chunk), partial[p]);
      });
      IntensityStats st = empty_intensity_stats();
      for (const IntensityStats& p : partial) merge_stats(st, p);
      maps[g] = moment_normalize_map(st, minmax, args.eps);
    }
  }
  for (int64_t g = 0; g < groups; ++g)
    parallel_for(0, group_size, 32768, [&](int64_t b, int64_t e) { store(g, maps[g], b, e); });
}

}  // namespace medkern::cpu
