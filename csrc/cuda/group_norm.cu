// cuda/group_norm.cu — group normalization (instance norm: one channel per group), optionally
// with ReLU / LeakyReLU, on the GPU. Large problems take three passes that each fill the GPU:
// forward: (count, mean, M2) of slices of every (sample, group) into scratch, combined per group
// in a fixed order (deterministic), then normalize + activate on a (row, chunk) grid; backward:
// sums of dz and dz (x - mean) per slice of every (sample, channel) row (dz recomputed through the
// activation), combined per row into the caller's (2, N, C) workspace, then the input gradient on
// a (row, chunk) grid. The scratch is the output (or the input gradient) before it is written, as
// in batch_norm.cu: the op allocates nothing. Small problems, and outputs that cannot hold the
// scratch, take one block per (sample, group) for the whole pass. A last kernel reduces the
// workspace over n for the weight / bias gradients. The per-element formulas are
// common/group_norm_math.h's, as on the CPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/activation_math.h"
#include "common/group_norm_math.h"
#include "cuda/block_reduce.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/dtype_dispatch.cuh"
#include "cuda/fast_divmod.cuh"
#include "cuda/gemm_tiles.cuh"  // multiprocessor_count
#include "medkern/checks.h"
#include "medkern/group_norm.h"

namespace medkern::cuda {
namespace {

constexpr int kThreads = 512;

// (N, C, S) strides of an (N, C, *) view whose spatial axes collapse to one stride.
struct GroupLayout {
  int64_t n, c, s;
};

GroupLayout group_layout(const TensorView& v, const char* name) {
  GroupLayout l{v.strides[0], v.strides[1], 1};
  int64_t expected = -1;
  for (int d = v.ndim - 1; d >= 2; --d) {
    if (v.shape[d] == 1) continue;
    if (expected < 0) l.s = v.strides[d];
    else if (v.strides[d] != expected)
      throw NotImplementedError(concat("group_norm (CUDA): the spatial axes of '", name, "' (shape ",
                                       v.shape_string(), ") cannot be addressed with one stride; pass a "
                                       "contiguous tensor"));
    expected = v.strides[d] * v.shape[d];
  }
  return l;
}

struct GroupDims {
  int64_t N, C, S, G, Cg;
};

struct GroupArgs {
  ParamRef weight, bias, mean, invstd;
  Activation act;
  double slope, eps;
};

// (count, mean, M2) of a unit's values [begin, end) (flat index i = c * S + s, from xb), Welford per
// thread combined over the block; valid in thread 0. The whole-unit and the sliced passes share it.
template <class Acc, class T>
__device__ MeanM2 block_stats(const T* xb, const GroupLayout& lx, const FastDivmod& by_s, int64_t begin,
                              int64_t end) {
  Acc k = 0, mean = 0, m2 = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    uint32_t c, s;
    by_s.divmod(static_cast<uint32_t>(i), c, s);
    const Acc v = to_acc<Acc>(xb[c * lx.c + s * lx.s]);
    k += Acc(1);
    const Acc delta = v - mean;
    mean += delta / k;
    m2 += delta * (v - mean);
  }
  return block_mean_m2(MeanM2{double(k), double(mean), double(m2)});
}

template <class T>
__global__ void group_norm_forward_kernel(const T* x, GroupLayout lx, T* y, GroupDims d, FastDivmod by_s,
                                          GroupArgs a) {
  using Acc = acc_t<T>;
  __shared__ double stats[2];
  const int64_t unit = blockIdx.x, n = unit / d.G, c0 = (unit % d.G) * d.Cg;
  const int64_t count = d.Cg * d.S;
  const T* xb = x + n * lx.n + c0 * lx.c;
  const MeanM2 total = block_stats<Acc>(xb, lx, by_s, 0, count);
  if (threadIdx.x == 0) {
    stats[0] = total.mean;
    stats[1] = batch_norm_invstd(total.m2 / total.count, a.eps);
    a.mean.store(unit, stats[0]);
    a.invstd.store(unit, stats[1]);
  }
  __syncthreads();
  T* yb = y + (n * d.C + c0) * d.S;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    uint32_t c, s;
    by_s.divmod(static_cast<uint32_t>(i), c, s);
    const int64_t ch = c0 + c;
    const NormScaleShift ss = norm_scale_shift(stats[0], stats[1], a.weight.valid() ? a.weight.load(ch) : 1.0,
                                               a.bias.valid() ? a.bias.load(ch) : 0.0);
    const Acc z = to_acc<Acc>(xb[c * lx.c + s * lx.s]) * Acc(ss.scale) + Acc(ss.shift);
    yb[i] = from_acc<T>(activate(z, a.act, Acc(a.slope)));
  }
}

template <class T>
__global__ void group_norm_backward_kernel(const T* dy, GroupLayout ldy, const T* x, GroupLayout lx, T* dx,
                                           GroupDims d, GroupArgs a, double* channel_sums) {
  using Acc = acc_t<T>;
  __shared__ double scratch[32];
  __shared__ double group_sums[2];
  const int64_t unit = blockIdx.x, n = unit / d.G, c0 = (unit % d.G) * d.Cg;
  const double mu = a.mean.load(unit), is = a.invstd.load(unit);
  if (threadIdx.x == 0) group_sums[0] = group_sums[1] = 0;
  for (int64_t ch = c0; ch < c0 + d.Cg; ++ch) {
    const double w = a.weight.valid() ? a.weight.load(ch) : 1.0;
    const NormScaleShift ss = norm_scale_shift(mu, is, w, a.bias.valid() ? a.bias.load(ch) : 0.0);
    const T* xr = x + n * lx.n + ch * lx.c;
    const T* gr = dy + n * ldy.n + ch * ldy.c;
    Acc s_dz = 0, s_dz_xmu = 0;
    for (int64_t s = threadIdx.x; s < d.S; s += blockDim.x) {
      const Acc v = to_acc<Acc>(xr[s * lx.s]);
      const Acc dz = activation_grad(to_acc<Acc>(gr[s * ldy.s]), v * Acc(ss.scale) + Acc(ss.shift), a.act,
                                     Acc(a.slope));
      s_dz += dz;
      s_dz_xmu += dz * (v - Acc(mu));
    }
    const double t_dz = block_sum(double(s_dz), scratch);
    const double t_dz_xmu = block_sum(double(s_dz_xmu), scratch);
    if (threadIdx.x == 0) {
      channel_sums[n * d.C + ch] = t_dz;
      channel_sums[d.N * d.C + n * d.C + ch] = t_dz_xmu;
      group_sums[0] += w * t_dz;
      group_sums[1] += w * t_dz_xmu;
    }
  }
  __syncthreads();
  if (dx == nullptr) return;
  const GroupNormGradCoefficients k =
      group_norm_grad_coefficients(is, group_sums[0], group_sums[1], double(d.Cg * d.S));
  for (int64_t ch = c0; ch < c0 + d.Cg; ++ch) {
    const double w = a.weight.valid() ? a.weight.load(ch) : 1.0;
    const NormScaleShift ss = norm_scale_shift(mu, is, w, a.bias.valid() ? a.bias.load(ch) : 0.0);
    const T* xr = x + n * lx.n + ch * lx.c;
    const T* gr = dy + n * ldy.n + ch * ldy.c;
    T* dxr = dx + (n * d.C + ch) * d.S;
    for (int64_t s = threadIdx.x; s < d.S; s += blockDim.x) {
      const Acc v = to_acc<Acc>(xr[s * lx.s]);
      const Acc dz = activation_grad(to_acc<Acc>(gr[s * ldy.s]), v * Acc(ss.scale) + Acc(ss.shift), a.act,
                                     Acc(a.slope));
      dxr[s] = from_acc<T>(group_norm_input_grad(dz, v, Acc(mu), Acc(w * is), Acc(k.beta), Acc(k.gamma)));
    }
  }
}

// ---- the sliced passes ----------------------------------------------------------------------
// (count, mean, M2) of slice blockIdx.y of unit blockIdx.x's Cg*S values -> partial[unit][slice].
template <class T>
__global__ void group_norm_stats_slices_kernel(const T* x, GroupLayout lx, GroupDims d, FastDivmod by_s,
                                               int64_t chunk, MeanM2* partial) {
  using Acc = acc_t<T>;
  const int64_t unit = blockIdx.x, n = unit / d.G, c0 = (unit % d.G) * d.Cg;
  const int64_t count = d.Cg * d.S, begin = blockIdx.y * chunk, end = begin + chunk < count ? begin + chunk : count;
  const T* xb = x + n * lx.n + c0 * lx.c;
  const MeanM2 total = block_stats<Acc>(xb, lx, by_s, begin, end);
  if (threadIdx.x == 0) partial[unit * gridDim.y + blockIdx.y] = total;
}

// One thread per unit: the slices combined in order -> mean, invstd.
__global__ void group_norm_stats_combine_kernel(const MeanM2* partial, int64_t units, int64_t slices, GroupArgs a) {
  const int64_t unit = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (unit >= units) return;
  MeanM2 total = partial[unit * slices];
  for (int64_t z = 1; z < slices; ++z) total = mean_m2_combine(total, partial[unit * slices + z]);
  a.mean.store(unit, total.mean);
  a.invstd.store(unit, batch_norm_invstd(total.m2 / total.count, a.eps));
}

// Row (n, c) = blockIdx.x, its values [blockIdx.y * chunk, ...) normalized and activated.
template <class T>
__global__ void group_norm_normalize_kernel(const T* x, GroupLayout lx, T* y, GroupDims d, int64_t chunk,
                                            GroupArgs a) {
  using Acc = acc_t<T>;
  const int64_t row = blockIdx.x, n = row / d.C, c = row - n * d.C, unit = n * d.G + c / d.Cg;
  const NormScaleShift ss = norm_scale_shift(a.mean.load(unit), a.invstd.load(unit),
                                             a.weight.valid() ? a.weight.load(c) : 1.0,
                                             a.bias.valid() ? a.bias.load(c) : 0.0);
  const Acc scale = Acc(ss.scale), shift = Acc(ss.shift), slope = Acc(a.slope);
  const T* xr = x + n * lx.n + c * lx.c;
  T* yr = y + row * d.S;
  const int64_t begin = blockIdx.y * chunk, end = begin + chunk < d.S ? begin + chunk : d.S;
  for (int64_t s = begin + threadIdx.x; s < end; s += blockDim.x)
    yr[s] = from_acc<T>(activate(to_acc<Acc>(xr[s * lx.s]) * scale + shift, a.act, slope));
}

struct GradSums {
  double dz, dz_xmu;
};

// Sums of dz and dz (x - mean) over slice blockIdx.y of row (n, c) = blockIdx.x -> partial[row][slice].
template <class T>
__global__ void group_norm_grad_slices_kernel(const T* dy, GroupLayout ldy, const T* x, GroupLayout lx, GroupDims d,
                                              int64_t chunk, GroupArgs a, GradSums* partial) {
  using Acc = acc_t<T>;
  __shared__ double scratch[32];
  const int64_t row = blockIdx.x, n = row / d.C, c = row - n * d.C, unit = n * d.G + c / d.Cg;
  const double mu = a.mean.load(unit);
  const NormScaleShift ss = norm_scale_shift(mu, a.invstd.load(unit), a.weight.valid() ? a.weight.load(c) : 1.0,
                                             a.bias.valid() ? a.bias.load(c) : 0.0);
  const Acc scale = Acc(ss.scale), shift = Acc(ss.shift), slope = Acc(a.slope), mean = Acc(mu);
  const T* xr = x + n * lx.n + c * lx.c;
  const T* gr = dy + n * ldy.n + c * ldy.c;
  const int64_t begin = blockIdx.y * chunk, end = begin + chunk < d.S ? begin + chunk : d.S;
  Acc s_dz = 0, s_dz_xmu = 0;
  for (int64_t s = begin + threadIdx.x; s < end; s += blockDim.x) {
    const Acc v = to_acc<Acc>(xr[s * lx.s]);
    const Acc dz = activation_grad(to_acc<Acc>(gr[s * ldy.s]), v * scale + shift, a.act, slope);
    s_dz += dz;
    s_dz_xmu += dz * (v - mean);
  }
  const double t_dz = block_sum(double(s_dz), scratch);
  const double t_dz_xmu = block_sum(double(s_dz_xmu), scratch);
  if (threadIdx.x == 0) partial[row * gridDim.y + blockIdx.y] = GradSums{t_dz, t_dz_xmu};
}

// One thread per row: the slices added in order -> channel_sums[0][n][c], channel_sums[1][n][c].
__global__ void group_norm_grad_combine_kernel(const GradSums* partial, int64_t rows, int64_t slices,
                                               double* channel_sums) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  double dz = 0, dz_xmu = 0;
  for (int64_t z = 0; z < slices; ++z) {
    dz += partial[row * slices + z].dz;
    dz_xmu += partial[row * slices + z].dz_xmu;
  }
  channel_sums[row] = dz;
  channel_sums[rows + row] = dz_xmu;
}

// Row (n, c) = blockIdx.x: the input gradient of its values [blockIdx.y * chunk, ...), with the
// group's coefficients from the channel sums of its Cg channels.
template <class T>
__global__ void group_norm_input_grad_kernel(const T* dy, GroupLayout ldy, const T* x, GroupLayout lx, T* dx,
                                             GroupDims d, int64_t chunk, GroupArgs a, const double* channel_sums) {
  using Acc = acc_t<T>;
  const int64_t row = blockIdx.x, n = row / d.C, c = row - n * d.C, g = c / d.Cg, unit = n * d.G + g;
  const double mu = a.mean.load(unit), is = a.invstd.load(unit);
  double sum_w_dz = 0, sum_w_dz_xmu = 0;
  for (int64_t ch = g * d.Cg; ch < (g + 1) * d.Cg; ++ch) {
    const double w = a.weight.valid() ? a.weight.load(ch) : 1.0;
    sum_w_dz += w * channel_sums[n * d.C + ch];
    sum_w_dz_xmu += w * channel_sums[d.N * d.C + n * d.C + ch];
  }
  const GroupNormGradCoefficients k = group_norm_grad_coefficients(is, sum_w_dz, sum_w_dz_xmu, double(d.Cg * d.S));
  const double w = a.weight.valid() ? a.weight.load(c) : 1.0;
  const NormScaleShift ss = norm_scale_shift(mu, is, w, a.bias.valid() ? a.bias.load(c) : 0.0);
  const Acc scale = Acc(ss.scale), shift = Acc(ss.shift), slope = Acc(a.slope), mean = Acc(mu), wis = Acc(w * is),
            beta = Acc(k.beta), gamma = Acc(k.gamma);
  const T* xr = x + n * lx.n + c * lx.c;
  const T* gr = dy + n * ldy.n + c * ldy.c;
  T* dxr = dx + row * d.S;
  const int64_t begin = blockIdx.y * chunk, end = begin + chunk < d.S ? begin + chunk : d.S;
  for (int64_t s = begin + threadIdx.x; s < end; s += blockDim.x) {
    const Acc v = to_acc<Acc>(xr[s * lx.s]);
    const Acc dz = activation_grad(to_acc<Acc>(gr[s * ldy.s]), v * scale + shift, a.act, slope);
    dxr[s] = from_acc<T>(group_norm_input_grad(dz, v, mean, wis, beta, gamma));
  }
}

// grad_weight[c] = sum_n invstd(n, g) sum(dz (x - mean)), grad_bias[c] = sum_n sum(dz).
__global__ void group_norm_param_grad_kernel(const double* channel_sums, GroupDims d, ParamRef invstd,
                                             ParamRef grad_weight, ParamRef grad_bias) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= d.C) return;
  double gw = 0, gb = 0;
  for (int64_t n = 0; n < d.N; ++n) {
    gb += channel_sums[n * d.C + c];
    gw += channel_sums[d.N * d.C + n * d.C + c] * invstd.load(n * d.G + c / d.Cg);
  }
  if (grad_weight.valid()) grad_weight.store(c, gw);
  if (grad_bias.valid()) grad_bias.store(c, gb);
}

// The (N, G) statistics, indexed by (sample, group) unit: a flat, contiguous array (param_ref
// would step by the first axis' stride, which is G here).
ParamRef stats_ref(const TensorView& v, const char* name) {
  MEDKERN_CHECK_VALUE(v.is_contiguous(), "group_norm (CUDA): '", name, "' must be contiguous");
  ParamRef r = param_ref(&v);
  r.stride = 1;
  return r;
}

GroupDims group_dims(const TensorView& x, int64_t groups) {
  GroupDims d{x.shape[0], x.shape[1], 1, groups, x.shape[1] / groups};
  for (int i = 2; i < x.ndim; ++i) d.S *= x.shape[i];
  MEDKERN_CHECK_VALUE(d.Cg * d.S < (int64_t{1} << 31) && d.N * d.G < (int64_t{1} << 31), "group_norm (CUDA): ",
                      d.Cg * d.S, " values per group and ", d.N * d.G,
                      " (sample, group) pairs exceed the kernel's limits (2^31 - 1)");
  return d;
}

constexpr int kSliceThreads = 256, kMapThreads = 256;
constexpr int64_t kMapChunk = 8 * kMapThreads;  // values per block of the elementwise passes
constexpr int64_t kMaxGridY = 65535;

// Slices of `per` values for `items` independent reductions: about four blocks per SM in all,
// each slice at least 4096 values; 1 when the items alone fill the GPU.
int64_t choose_slices(int64_t items, int64_t per) {
  const int64_t target = 4 * int64_t(multiprocessor_count());
  int64_t slices = (target + items - 1) / items;
  slices = std::min(slices, (per + 4095) / 4096);
  return std::max<int64_t>(1, std::min<int64_t>(slices, 1024));
}

// The sliced passes apply when there is work to spread and `out` (written last) can hold the
// partial results first: dense, 8-byte aligned, large enough, sharing no memory with the inputs.
bool sliced_passes_apply(const GroupDims& d, const TensorView& out, int64_t scratch_bytes, const TensorView& in1,
                         const TensorView* in2) {
  if (d.N * d.C > (int64_t{1} << 31) - 1 || (d.S + kMapChunk - 1) / kMapChunk > kMaxGridY) return false;
  if (d.N * d.G >= 4 * int64_t(multiprocessor_count()) && d.Cg * d.S <= 16 * 4096) return false;  // one block each is enough
  return out.is_contiguous() && reinterpret_cast<std::uintptr_t>(out.data) % 8 == 0 &&
         out.numel() * int64_t(dtype_size(out.dtype)) >= scratch_bytes && !views_overlap(out, in1) &&
         !(in2 && views_overlap(out, *in2));
}

dim3 map_grid(const GroupDims& d) {
  return dim3(static_cast<unsigned>(d.N * d.C), static_cast<unsigned>((d.S + kMapChunk - 1) / kMapChunk));
}

}  // namespace

void group_norm_forward(const TensorView& input, const TensorView* weight, const TensorView* bias,
                        const TensorView& output, const TensorView& mean, const TensorView& invstd,
                        const GroupNormParams& p, Stream stream) {
  if (input.numel() == 0) return;
  DeviceGuard guard(output);
  const GroupDims d = group_dims(input, p.groups);
  const GroupLayout lx = group_layout(input, "input");
  const GroupArgs a{param_ref(weight), param_ref(bias), stats_ref(mean, "mean"), stats_ref(invstd, "invstd"),
                    p.activation, p.negative_slope, p.eps};
  const cudaStream_t s = as_cuda_stream(stream);
  const int64_t units = d.N * d.G, slices = choose_slices(units, d.Cg * d.S);
  const bool sliced = sliced_passes_apply(d, output, units * slices * int64_t(sizeof(MeanM2)), input, nullptr);
  dispatch_floating(input.dtype, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (!sliced) {
      group_norm_forward_kernel<T><<<static_cast<unsigned>(units), kThreads, 0, s>>>(
          input.ptr<const T>(), lx, output.ptr<T>(), d, FastDivmod(d.S), a);
      MEDKERN_CUDA_CHECK_LAUNCH("group_norm_forward_kernel");
      return;
    }
    MeanM2* partial = static_cast<MeanM2*>(output.data);  // scratch until the normalize pass writes y
    const int64_t chunk = (d.Cg * d.S + slices - 1) / slices;
    group_norm_stats_slices_kernel<T><<<dim3(static_cast<unsigned>(units), static_cast<unsigned>(slices)),
                                        kSliceThreads, 0, s>>>(input.ptr<const T>(), lx, d, FastDivmod(d.S), chunk,
                                                               partial);
    MEDKERN_CUDA_CHECK_LAUNCH("group_norm_stats_slices_kernel");
    group_norm_stats_combine_kernel<<<grid_for(units, 128), 128, 0, s>>>(partial, units, slices, a);
    MEDKERN_CUDA_CHECK_LAUNCH("group_norm_stats_combine_kernel");
    group_norm_normalize_kernel<T><<<map_grid(d), kMapThreads, 0, s>>>(input.ptr<const T>(), lx, output.ptr<T>(), d,
                                                                        kMapChunk, a);
    MEDKERN_CUDA_CHECK_LAUNCH("group_norm_normalize_kernel");
  });
}

void group_norm_backward(const TensorView& grad_output, const TensorView& input, const TensorView& mean,
                         const TensorView& invstd, const TensorView* weight, const TensorView* bias,
                         const TensorView& channel_sums, const TensorView* grad_input, const TensorView* grad_weight,
                         const TensorView* grad_bias, const GroupNormParams& p, Stream stream) {
  if (input.numel() == 0) return;
  DeviceGuard guard(input);
  const GroupDims d = group_dims(input, p.groups);
  const GroupLayout lx = group_layout(input, "input"), ldy = group_layout(grad_output, "grad_output");
  const GroupArgs a{param_ref(weight), param_ref(bias), stats_ref(mean, "mean"), stats_ref(invstd, "invstd"),
                    p.activation, p.negative_slope, p.eps};
  const cudaStream_t s = as_cuda_stream(stream);
  double* sums = channel_sums.ptr<double>();
  const int64_t rows = d.N * d.C, slices = choose_slices(rows, d.S);
  const bool sliced = grad_input != nullptr &&
                      sliced_passes_apply(d, *grad_input, rows * slices * int64_t(sizeof(GradSums)), input, &grad_output);
  dispatch_floating(input.dtype, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (!sliced) {
      group_norm_backward_kernel<T><<<static_cast<unsigned>(d.N * d.G), kThreads, 0, s>>>(
          grad_output.ptr<const T>(), ldy, input.ptr<const T>(), lx, grad_input ? grad_input->ptr<T>() : nullptr, d,
          a, sums);
      MEDKERN_CUDA_CHECK_LAUNCH("group_norm_backward_kernel");
      return;
    }
    GradSums* partial = static_cast<GradSums*>(grad_input->data);  // scratch until the input-gradient pass
    const int64_t chunk = (d.S + slices - 1) / slices;
    group_norm_grad_slices_kernel<T><<<dim3(static_cast<unsigned>(rows), static_cast<unsigned>(slices)),
                                       kSliceThreads, 0, s>>>(grad_output.ptr<const T>(), ldy, input.ptr<const T>(),
                                                              lx, d, chunk, a, partial);
    MEDKERN_CUDA_CHECK_LAUNCH("group_norm_grad_slices_kernel");
    group_norm_grad_combine_kernel<<<grid_for(rows, 128), 128, 0, s>>>(partial, rows, slices, sums);
    MEDKERN_CUDA_CHECK_LAUNCH("group_norm_grad_combine_kernel");
    group_norm_input_grad_kernel<T><<<map_grid(d), kMapThreads, 0, s>>>(
        grad_output.ptr<const T>(), ldy, input.ptr<const T>(), lx, grad_input->ptr<T>(), d, kMapChunk, a, sums);
    MEDKERN_CUDA_CHECK_LAUNCH("group_norm_input_grad_kernel");
  });
  if (grad_weight || grad_bias) {
    group_norm_param_grad_kernel<<<grid_for(d.C, 128), 128, 0, s>>>(sums, d, a.invstd,
                                                                   param_ref(grad_weight), param_ref(grad_bias));
    MEDKERN_CUDA_CHECK_LAUNCH("group_norm_param_grad_kernel");
  }
}

}  // namespace medkern::cuda
