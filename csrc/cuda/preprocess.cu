// cuda/preprocess.cu — CUDA drivers of the fused preprocessing pass: one thread per output
// element (grid-stride, 64-bit indices) maps its index through the sample's matrix and calls the
// same sampling / intensity / Philox math as the CPU loop (csrc/common), so both devices compute
// one formula (elastic displacement and bias field included). Normalization: one block per image reduces the statistics, then rescales.
#include <cuda_runtime.h>

#include <cstdint>

#include "common/geometry_math.h"
#include "common/intensity_math.h"
#include "common/philox.h"
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

// One block per image: statistics (double sums, min/max, NaN flag) reduced in shared memory,
// then the same block writes the normalized values.
__global__ void normalize_kernel(const float* in, const uint8_t* mask, int64_t mask_channels, int64_t C, int64_t S,
                                 bool channel_wise, bool minmax, double eps, void* out, DType out_dtype) {
  const int64_t g = blockIdx.x;
  const int64_t group_size = channel_wise ? S : C * S;
  const int64_t n = channel_wise ? g / C : g;
  const int64_t first_channel = channel_wise ? g % C : 0;
  const float* x = in + g * group_size;
  double sum = 0, sumsq = 0, count = 0;
  float lo = INFINITY, hi = -INFINITY;
  int nan = 0;
  for (int64_t i = threadIdx.x; i < group_size; i += blockDim.x) {
    if (mask) {
      const int64_t c = first_channel + i / S, s = i % S;
      if (!mask[(n * mask_channels + (mask_channels == 1 ? 0 : c)) * S + s]) continue;
    }
    const float v = x[i];
    nan |= v != v;
    sum += v; sumsq += static_cast<double>(v) * v; count += 1;
    lo = v < lo ? v : lo; hi = v > hi ? v : hi;
  }
  __shared__ double s_sum[kThreads], s_sumsq[kThreads], s_count[kThreads];
  __shared__ float s_lo[kThreads], s_hi[kThreads];
  __shared__ int s_nan[kThreads];
  __shared__ float s_shift, s_scale;
  const int t = threadIdx.x;
  s_sum[t] = sum; s_sumsq[t] = sumsq; s_count[t] = count; s_lo[t] = lo; s_hi[t] = hi; s_nan[t] = nan;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (t < half) {
      s_sum[t] += s_sum[t + half]; s_sumsq[t] += s_sumsq[t + half]; s_count[t] += s_count[t + half];
      s_lo[t] = fminf(s_lo[t], s_lo[t + half]); s_hi[t] = fmaxf(s_hi[t], s_hi[t + half]);
      s_nan[t] |= s_nan[t + half];
    }
    __syncthreads();
  }
  if (t == 0) {
    // the same rules as the CPU pass (cpu/preprocess.cpp, normalize_intensity)
    if (s_count[0] == 0) { s_shift = 0.0f; s_scale = 1.0f; }
    else if (s_nan[0]) { s_shift = __int_as_float(0x7fc00000); s_scale = 1.0f; }
    else if (minmax) {
      const double range = static_cast<double>(s_hi[0]) - s_lo[0] + eps;
      s_shift = s_lo[0]; s_scale = static_cast<float>(range > 0 ? 1.0 / range : 1.0);
    } else {
      const double mean = s_sum[0] / s_count[0];
      const double var = fmax(0.0, s_sumsq[0] / s_count[0] - mean * mean);
      const double denom = sqrt(var) + eps;
      s_shift = static_cast<float>(mean); s_scale = static_cast<float>(denom > 0 ? 1.0 / denom : 1.0);
    }
  }
  __syncthreads();
  const float shift = s_shift, scale = s_scale;
  for (int64_t i = threadIdx.x; i < group_size; i += blockDim.x)
    store_out(out, out_dtype, g * group_size + i, (x[i] - shift) * scale);
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
                         const NormalizeArgs& args, Stream stream) {
  if (input.numel() == 0) return;
  const int64_t N = input.shape[0], C = input.shape[1];
  const int64_t S = input.numel() / (N * C);
  const int64_t groups = args.channel_wise ? N * C : N;
  normalize_kernel<<<static_cast<unsigned>(groups), kThreads, 0, as_cuda_stream(stream)>>>(
      input.ptr<float>(), mask ? static_cast<const uint8_t*>(mask->data) : nullptr, mask ? mask->shape[1] : 0, C, S,
      args.channel_wise, args.kind == static_cast<int>(NormalizeKind::MinMax), args.eps, output.data, output.dtype);
  MEDKERN_CUDA_CHECK_LAUNCH("normalize_kernel");
}

}  // namespace medkern::cuda
