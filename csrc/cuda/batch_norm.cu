// cuda/batch_norm.cu — batch normalization over (N, C, *) on the GPU. Statistics are a two-level
// reduction: each block folds its slice of a channel into (count, mean, M2) with Welford's update
// and combines threads with mean_m2_combine (Chan et al.: no sum-of-squares cancellation), then a
// second kernel combines the blocks' partials. The partials live in the output buffer before it
// is written (the op allocates nothing, so CUDA-graph capture works); where that scratch is not
// available (small, aliased or strided outputs) one block per channel does everything instead.
// A fused ReLU / LeakyReLU is applied by the normalizing pass; the backward recomputes the
// pre-activation from the input and takes the activation's gradient first (common/activation_math.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/activation_math.h"
#include "common/batch_norm_math.h"
#include "cuda/block_reduce.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/dtype_dispatch.cuh"
#include "cuda/gemm_tiles.cuh"
#include "medkern/batch_norm.h"
#include "medkern/checks.h"

namespace medkern::cuda {
namespace {

// (n, c, s) addressing with the spatial axes collapsed to one stride.
struct ChannelLayout {
  int64_t n, c, s;
};

ChannelLayout channel_layout(const TensorView& v, const char* name) {
  ChannelLayout l{v.strides[0], v.ndim > 1 ? v.strides[1] : 0, 1};
  int64_t expected = -1;
  for (int d = v.ndim - 1; d >= 2; --d) {
    if (v.shape[d] == 1) continue;
    if (expected < 0) l.s = v.strides[d];
    else if (v.strides[d] != expected)
      throw NotImplementedError(concat("batch_norm (CUDA): the spatial axes of '", name, "' (shape ",
                                       v.shape_string(), ") cannot be addressed with one stride; pass a "
                                       "contiguous tensor"));
    expected = v.strides[d] * v.shape[d];
    if (expected == 0) expected = -1;
  }
  return l;
}

struct BnDims {
  int64_t N, C, HW, count;  // count = N * HW values per channel
};

BnDims bn_dims(const TensorView& x) {
  BnDims d{x.shape[0], x.ndim > 1 ? x.shape[1] : 1, 1, 0};
  for (int i = 2; i < x.ndim; ++i) d.HW *= x.shape[i];
  d.count = d.N * d.HW;
  return d;
}

// Welford over elements [begin, end) of channel c (flat index i = n * HW + s).
template <class T>
__device__ MeanM2 thread_mean_m2(const T* x, ChannelLayout lx, int64_t c, FastDivmod by_hw, int64_t begin,
                                 int64_t end) {
  using Acc = acc_t<T>;
  Acc count = 0, mean = 0, m2 = 0;
  const T* base = x + c * lx.c;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    uint32_t n, s;
    by_hw.divmod(static_cast<uint32_t>(i), n, s);
    const Acc v = to_acc<Acc>(base[n * lx.n + s * lx.s]);
    count += Acc(1);
    const Acc delta = v - mean;
    mean += delta / count;
    m2 += delta * (v - mean);
  }
  return {double(count), double(mean), double(m2)};
}

struct StatsOut {
  ParamRef save_mean, save_invstd, running_mean, running_var;
  double eps, momentum;
  bool update_running;
};

// Batch mean / inverse std of one channel from its combined statistics; updates running stats.
__device__ void finalize_channel(int64_t c, const MeanM2& total, const StatsOut& o, double* mean_out,
                                 double* invstd_out) {
  const double var = total.count > 0 ? total.m2 / total.count : 0.0;
  const double invstd = batch_norm_invstd(var, o.eps);
  o.save_mean.store(c, total.mean);
  o.save_invstd.store(c, invstd);
  if (o.update_running && total.count > 0) {
    double rm = o.running_mean.load(c), rv = o.running_var.load(c);
    running_stats_update(total.mean, var, total.count, o.momentum, &rm, &rv);
    o.running_mean.store(c, rm);
    o.running_var.store(c, rv);
  }
  *mean_out = total.mean;
  *invstd_out = invstd;
}

struct Affine {
  ParamRef weight, bias;
  Activation act;
  double slope;
};

// y = (x - mean) * invstd * weight + bias over elements [begin, end) of channel c.
template <class T>
__device__ void normalize_range(const T* x, ChannelLayout lx, T* y, ChannelLayout ly, int64_t c, FastDivmod by_hw,
                                int64_t begin, int64_t end, int64_t step, double mean, double invstd, Affine af) {
  using Acc = acc_t<T>;
  const double w = af.weight.valid() ? af.weight.load(c) : 1.0;
  const double b = af.bias.valid() ? af.bias.load(c) : 0.0;
  const Acc scale = Acc(w * invstd), shift = Acc(b - mean * w * invstd);
  const T* xb = x + c * lx.c;
  T* yb = y + c * ly.c;
  for (int64_t i = begin; i < end; i += step) {
    uint32_t n, s;
    by_hw.divmod(static_cast<uint32_t>(i), n, s);
    yb[n * ly.n + s * ly.s] =
        from_acc<T>(activate(to_acc<Acc>(xb[n * lx.n + s * lx.s]) * scale + shift, af.act, Acc(af.slope)));
  }
}

// ---- forward kernels --------------------------------------------------------------------------

// One block per channel: statistics, then normalization of the same channel.
template <class T>
__global__ void batch_norm_forward_fused_kernel(const T* x, ChannelLayout lx, T* y, ChannelLayout ly, BnDims d,
                                                FastDivmod by_hw, StatsOut o, Affine af) {
  __shared__ double channel_stats[2];
  const int64_t c = blockIdx.x;
  const MeanM2 total = block_mean_m2(thread_mean_m2(x, lx, c, by_hw, 0, d.count));
  if (threadIdx.x == 0) finalize_channel(c, total, o, &channel_stats[0], &channel_stats[1]);
  __syncthreads();
  normalize_range(x, lx, y, ly, c, by_hw, threadIdx.x, d.count, blockDim.x, channel_stats[0], channel_stats[1], af);
}

// Level one: block (slice, c) writes its partial (count, mean, M2) to partials[c * slices + slice].
template <class T>
__global__ void batch_norm_stats_partial_kernel(const T* x, ChannelLayout lx, BnDims d, FastDivmod by_hw,
                                                int64_t chunk, MeanM2* partials) {
  const int64_t c = blockIdx.y, slice = blockIdx.x;
  const int64_t begin = slice * chunk, end = std::min(d.count, begin + chunk);
  const MeanM2 total = block_mean_m2(thread_mean_m2(x, lx, c, by_hw, begin, end));
  if (threadIdx.x == 0) partials[c * gridDim.x + slice] = total;
}

// Level two: one thread per channel combines its slices' partials.
__global__ void batch_norm_stats_combine_kernel(const MeanM2* partials, int64_t slices, int64_t channels,
                                                StatsOut o) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= channels) return;
  MeanM2 total{};
  for (int64_t s = 0; s < slices; ++s) total = mean_m2_combine(total, partials[c * slices + s]);
  double mean, invstd;
  finalize_channel(c, total, o, &mean, &invstd);
}

// Eval: the running statistics are the statistics; record them as the saved ones.
__global__ void batch_norm_eval_stats_kernel(int64_t channels, StatsOut o) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= channels) return;
  o.save_mean.store(c, o.running_mean.load(c));
  o.save_invstd.store(c, batch_norm_invstd(o.running_var.load(c), o.eps));
}

template <class T>
__global__ void batch_norm_normalize_kernel(const T* x, ChannelLayout lx, T* y, ChannelLayout ly, BnDims d,
                                            FastDivmod by_hw, ParamRef mean, ParamRef invstd, Affine af) {
  const int64_t c = blockIdx.y;
  normalize_range(x, lx, y, ly, c, by_hw, blockIdx.x * int64_t(blockDim.x) + threadIdx.x, d.count,
                  int64_t(gridDim.x) * blockDim.x, mean.load(c), invstd.load(c), af);
}

// ---- backward kernels -------------------------------------------------------------------------

struct GradSums {
  double dy, dy_xhat;
};

struct BackwardArgs {
  ParamRef weight, save_mean, save_invstd, grad_weight, grad_bias, bias;
  bool training;
  Activation act;
  double slope;
};

// The gradient of the normalized value: dy itself, or through the fused activation at the
// recomputed pre-activation (x - mean) * invstd * weight + bias.
template <class Acc>
struct PreactivationGrad {
  Acc scale, shift, slope;
  Activation act;
  __device__ PreactivationGrad(const BackwardArgs& a, int64_t c) : slope(Acc(a.slope)), act(a.act) {
    const double w = a.weight.valid() ? a.weight.load(c) : 1.0, b = a.bias.valid() ? a.bias.load(c) : 0.0;
    const double sc = w * a.save_invstd.load(c);
    scale = Acc(sc);
    shift = Acc(b - a.save_mean.load(c) * sc);
  }
  __device__ Acc operator()(Acc g, Acc x) const { return activation_grad(g, x * scale + shift, act, slope); }
};

template <class T>
__device__ GradSums block_grad_sums(const T* dy, ChannelLayout ldy, const T* x, ChannelLayout lx, int64_t c,
                                    FastDivmod by_hw, int64_t begin, int64_t end, double mean, double invstd,
                                    const BackwardArgs& a) {
  using Acc = acc_t<T>;
  __shared__ double scratch[32];
  Acc s_dy = 0, s_dy_xhat = 0;
  const Acc m = Acc(mean), is = Acc(invstd);
  const PreactivationGrad<Acc> dz(a, c);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    uint32_t n, s;
    by_hw.divmod(static_cast<uint32_t>(i), n, s);
    const Acc g =
        dz(to_acc<Acc>(dy[n * ldy.n + c * ldy.c + s * ldy.s]), to_acc<Acc>(x[n * lx.n + c * lx.c + s * lx.s]));
    const Acc v = to_acc<Acc>(x[n * lx.n + c * lx.c + s * lx.s]);
    s_dy += g;
    s_dy_xhat += g * (v - m) * is;
  }
  GradSums r;
  r.dy = block_sum(double(s_dy), scratch);
  r.dy_xhat = block_sum(double(s_dy_xhat), scratch);
  return r;
}

template <class T>
__device__ void input_grad_range(const T* dy, ChannelLayout ldy, const T* x, ChannelLayout lx, T* dx,
                                 ChannelLayout ldx, int64_t c, FastDivmod by_hw, int64_t begin, int64_t end,
                                 int64_t step, const BackwardArgs& a, double sum_dy, double sum_dy_xhat,
                                 int64_t count) {
  using Acc = acc_t<T>;
  const Acc mean = Acc(a.save_mean.load(c)), invstd = Acc(a.save_invstd.load(c));
  const Acc w = Acc(a.weight.valid() ? a.weight.load(c) : 1.0);
  const Acc mean_dy = Acc(sum_dy / double(count)), mean_dy_xhat = Acc(sum_dy_xhat / double(count));
  const PreactivationGrad<Acc> dz(a, c);
  for (int64_t i = begin; i < end; i += step) {
    uint32_t n, s;
    by_hw.divmod(static_cast<uint32_t>(i), n, s);
    const Acc v = to_acc<Acc>(x[n * lx.n + c * lx.c + s * lx.s]);
    const Acc g = dz(to_acc<Acc>(dy[n * ldy.n + c * ldy.c + s * ldy.s]), v);
    dx[n * ldx.n + c * ldx.c + s * ldx.s] =
        from_acc<T>(batch_norm_input_grad(g, v, mean, invstd, w, mean_dy, mean_dy_xhat, a.training));
  }
}

template <class T>
__global__ void batch_norm_backward_fused_kernel(const T* dy, ChannelLayout ldy, const T* x, ChannelLayout lx, T* dx,
                                                 ChannelLayout ldx, BnDims d, FastDivmod by_hw, BackwardArgs a) {
  __shared__ double sums[2];
  const int64_t c = blockIdx.x;
  const GradSums g =
      block_grad_sums(dy, ldy, x, lx, c, by_hw, 0, d.count, a.save_mean.load(c), a.save_invstd.load(c), a);
  if (threadIdx.x == 0) {
    sums[0] = g.dy;
    sums[1] = g.dy_xhat;
    if (a.grad_bias.valid()) a.grad_bias.store(c, g.dy);
    if (a.grad_weight.valid()) a.grad_weight.store(c, g.dy_xhat);
  }
  __syncthreads();
  if (dx) input_grad_range(dy, ldy, x, lx, dx, ldx, c, by_hw, threadIdx.x, d.count, blockDim.x, a, sums[0], sums[1], d.count);
}

template <class T>
__global__ void batch_norm_grad_partial_kernel(const T* dy, ChannelLayout ldy, const T* x, ChannelLayout lx, BnDims d,
                                               FastDivmod by_hw, int64_t chunk, BackwardArgs a, GradSums* partials) {
  const int64_t c = blockIdx.y, slice = blockIdx.x;
  const int64_t begin = slice * chunk, end = std::min(d.count, begin + chunk);
  const GradSums g =
      block_grad_sums(dy, ldy, x, lx, c, by_hw, begin, end, a.save_mean.load(c), a.save_invstd.load(c), a);
  if (threadIdx.x == 0) partials[c * gridDim.x + slice] = g;
}

// Totals go to grad_bias (sum dy) and grad_weight (sum dy * xhat), where the input-gradient
// kernel reads them back: they are exactly the per-channel sums it needs.
__global__ void batch_norm_grad_combine_kernel(const GradSums* partials, int64_t slices, int64_t channels,
                                               BackwardArgs a) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= channels) return;
  double s_dy = 0, s_dy_xhat = 0;
  for (int64_t s = 0; s < slices; ++s) {
    s_dy += partials[c * slices + s].dy;
    s_dy_xhat += partials[c * slices + s].dy_xhat;
  }
  a.grad_bias.store(c, s_dy);
  a.grad_weight.store(c, s_dy_xhat);
}

template <class T>
__global__ void batch_norm_input_grad_kernel(const T* dy, ChannelLayout ldy, const T* x, ChannelLayout lx, T* dx,
                                             ChannelLayout ldx, BnDims d, FastDivmod by_hw, BackwardArgs a) {
  const int64_t c = blockIdx.y;
  input_grad_range(dy, ldy, x, lx, dx, ldx, c, by_hw, blockIdx.x * int64_t(blockDim.x) + threadIdx.x, d.count,
                   int64_t(gridDim.x) * blockDim.x, a, a.grad_bias.load(c), a.grad_weight.load(c), d.count);
}

// ---- host helpers -------------------------------------------------------------------------------

constexpr int kReduceThreads = 256, kFusedThreads = 512, kMapThreads = 256;

// Slices per channel for the two-level reduction: about four blocks per SM in all, each slice at
// least 4096 values. 1 means "use the fused one-block-per-channel kernel".
int64_t choose_slices(const BnDims& d) {
  const int64_t target = 4 * int64_t(multiprocessor_count());
  int64_t slices = (target + d.C - 1) / d.C;
  slices = std::min(slices, (d.count + 4095) / 4096);
  return std::max<int64_t>(1, std::min<int64_t>(slices, 1024));
}

// Whether `out` can hold `bytes` of scratch before it is written: dense, 8-byte aligned, large
// enough and sharing no memory with an input of the same op (a shifted view of the input counts).
bool usable_as_scratch(const TensorView& out, int64_t bytes, const TensorView& in1, const TensorView* in2) {
  return out.is_contiguous() && reinterpret_cast<std::uintptr_t>(out.data) % 8 == 0 &&
         out.numel() * dtype_size(out.dtype) >= bytes && !views_overlap(out, in1) &&
         !(in2 && views_overlap(out, *in2));
}

void check_sizes(const BnDims& d) {
  MEDKERN_CHECK_VALUE(d.count < (int64_t{1} << 31) && d.C <= 65535, "batch_norm (CUDA): ", d.count,
                      " values per channel and ", d.C, " channels exceed the kernel's limits (2^31 - 1, 65535)");
}

unsigned map_blocks_per_channel(const BnDims& d) {
  const int64_t target = 8 * int64_t(multiprocessor_count());
  int64_t per_channel = std::max<int64_t>(1, (target + d.C - 1) / d.C);
  per_channel = std::min(per_channel, (d.count + kMapThreads - 1) / kMapThreads);
  return static_cast<unsigned>(std::max<int64_t>(1, per_channel));
}

}  // namespace

void batch_norm_forward(const TensorView& input, const TensorView* weight, const TensorView* bias,
                        const TensorView* running_mean, const TensorView* running_var, const TensorView& output,
                        const TensorView& save_mean, const TensorView& save_invstd, const BatchNormParams& p,
                        Stream stream) {
  const BnDims d = bn_dims(input);
  if (d.C == 0) return;
  DeviceGuard guard(output);
  check_sizes(d);
  const cudaStream_t s = as_cuda_stream(stream);
  const ChannelLayout lx = channel_layout(input, "input"), ly = channel_layout(output, "output");
  const FastDivmod by_hw(std::max<int64_t>(d.HW, 1));
  const bool batch_stats = p.training || running_mean == nullptr || running_var == nullptr;
  StatsOut o{param_ref(&save_mean), param_ref(&save_invstd), param_ref(running_mean), param_ref(running_var),
             p.eps, p.momentum, p.training && running_mean != nullptr && running_var != nullptr};
  const Affine af{param_ref(weight), param_ref(bias), p.activation, p.negative_slope};
  dispatch_floating(input.dtype, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (!batch_stats) {
      batch_norm_eval_stats_kernel<<<grid_for(d.C, 128), 128, 0, s>>>(d.C, o);
      MEDKERN_CUDA_CHECK_LAUNCH("batch_norm_eval_stats_kernel");
      if (d.count == 0) return;
      const dim3 grid(map_blocks_per_channel(d), static_cast<unsigned>(d.C));
      batch_norm_normalize_kernel<T><<<grid, kMapThreads, 0, s>>>(input.ptr<const T>(), lx, output.ptr<T>(), ly, d,
                                                                  by_hw, o.save_mean, o.save_invstd, af);
      MEDKERN_CUDA_CHECK_LAUNCH("batch_norm_normalize_kernel");
      return;
    }
    const int64_t slices = choose_slices(d);
    const int64_t scratch_bytes = d.C * slices * int64_t(sizeof(MeanM2));
    if (slices > 1 && usable_as_scratch(output, scratch_bytes, input, nullptr)) {
      const int64_t chunk = (d.count + slices - 1) / slices;
      MeanM2* partials = static_cast<MeanM2*>(output.data);
      batch_norm_stats_partial_kernel<T><<<dim3(unsigned(slices), unsigned(d.C)), kReduceThreads, 0, s>>>(
          input.ptr<const T>(), lx, d, by_hw, chunk, partials);
      MEDKERN_CUDA_CHECK_LAUNCH("batch_norm_stats_partial_kernel");
      batch_norm_stats_combine_kernel<<<grid_for(d.C, 128), 128, 0, s>>>(partials, slices, d.C, o);
      MEDKERN_CUDA_CHECK_LAUNCH("batch_norm_stats_combine_kernel");
      const dim3 grid(map_blocks_per_channel(d), static_cast<unsigned>(d.C));
      batch_norm_normalize_kernel<T><<<grid, kMapThreads, 0, s>>>(input.ptr<const T>(), lx, output.ptr<T>(), ly, d,
                                                                  by_hw, o.save_mean, o.save_invstd, af);
      MEDKERN_CUDA_CHECK_LAUNCH("batch_norm_normalize_kernel");
    } else {
      batch_norm_forward_fused_kernel<T><<<static_cast<unsigned>(d.C), kFusedThreads, 0, s>>>(
          input.ptr<const T>(), lx, output.ptr<T>(), ly, d, by_hw, o, af);
      MEDKERN_CUDA_CHECK_LAUNCH("batch_norm_forward_fused_kernel");
    }
  });
}

void batch_norm_backward(const TensorView& grad_output, const TensorView& input, const TensorView* weight,
                         const TensorView* bias, const TensorView& save_mean, const TensorView& save_invstd,
                         const TensorView* grad_input,
                         const TensorView* grad_weight, const TensorView* grad_bias, const BatchNormParams& p,
                         Stream stream) {
  const BnDims d = bn_dims(input);
  if (d.C == 0) return;
  DeviceGuard guard(input);
  check_sizes(d);
  const cudaStream_t s = as_cuda_stream(stream);
  const ChannelLayout ldy = channel_layout(grad_output, "grad_output"), lx = channel_layout(input, "input");
  const ChannelLayout ldx = grad_input ? channel_layout(*grad_input, "grad_input") : ChannelLayout{};
  const FastDivmod by_hw(std::max<int64_t>(d.HW, 1));
  const BackwardArgs a{param_ref(weight), param_ref(&save_mean), param_ref(&save_invstd), param_ref(grad_weight),
                       param_ref(grad_bias), param_ref(bias), p.training, p.activation, p.negative_slope};
  auto wide = [](const TensorView* v) {
    return v && (v->dtype == DType::Float32 || v->dtype == DType::Float64);
  };
  dispatch_floating(input.dtype, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* dx = grad_input ? grad_input->ptr<T>() : nullptr;
    const int64_t slices = choose_slices(d);
    const int64_t scratch_bytes = d.C * slices * int64_t(sizeof(GradSums));
    if (slices > 1 && grad_input && wide(grad_weight) && wide(grad_bias) &&
        usable_as_scratch(*grad_input, scratch_bytes, input, &grad_output)) {
      const int64_t chunk = (d.count + slices - 1) / slices;
      GradSums* partials = static_cast<GradSums*>(grad_input->data);
      batch_norm_grad_partial_kernel<T><<<dim3(unsigned(slices), unsigned(d.C)), kReduceThreads, 0, s>>>(
          grad_output.ptr<const T>(), ldy, input.ptr<const T>(), lx, d, by_hw, chunk, a, partials);
      MEDKERN_CUDA_CHECK_LAUNCH("batch_norm_grad_partial_kernel");
      batch_norm_grad_combine_kernel<<<grid_for(d.C, 128), 128, 0, s>>>(partials, slices, d.C, a);
      MEDKERN_CUDA_CHECK_LAUNCH("batch_norm_grad_combine_kernel");
      const dim3 grid(map_blocks_per_channel(d), static_cast<unsigned>(d.C));
      batch_norm_input_grad_kernel<T><<<grid, kMapThreads, 0, s>>>(grad_output.ptr<const T>(), ldy,
                                                                   input.ptr<const T>(), lx, dx, ldx, d, by_hw, a);
      MEDKERN_CUDA_CHECK_LAUNCH("batch_norm_input_grad_kernel");
    } else {
      batch_norm_backward_fused_kernel<T><<<static_cast<unsigned>(d.C), kFusedThreads, 0, s>>>(
          grad_output.ptr<const T>(), ldy, input.ptr<const T>(), lx, dx, ldx, d, by_hw, a);
      MEDKERN_CUDA_CHECK_LAUNCH("batch_norm_backward_fused_kernel");
    }
  });
}

}  // namespace medkern::cuda
