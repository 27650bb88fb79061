// cuda/group_norm.cu — group normalization (instance norm: one channel per group), optionally
// with ReLU / LeakyReLU, on the GPU. One block per (sample, group): Welford per thread, combined
// with mean_m2_combine, then the block normalizes + activates the group it just reduced (the
// second read mostly hits L2). Backward: one block per (sample, group) sums dz and dz (x - mean)
// per channel (dz recomputed through the activation), writes them to the caller's (2, N, C)
// workspace and writes the input gradient; a second kernel reduces the workspace over n for the
// weight / bias gradients. The per-element formulas are common/group_norm_math.h's, as on the CPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/activation_math.h"
#include "common/group_norm_math.h"
#include "cuda/block_reduce.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/dtype_dispatch.cuh"
#include "cuda/fast_divmod.cuh"
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

template <class T>
__global__ void group_norm_forward_kernel(const T* x, GroupLayout lx, T* y, GroupDims d, FastDivmod by_s,
                                          GroupArgs a) {
  using Acc = acc_t<T>;
  __shared__ double stats[2];
  const int64_t unit = blockIdx.x, n = unit / d.G, c0 = (unit % d.G) * d.Cg;
  const int64_t count = d.Cg * d.S;
  const T* xb = x + n * lx.n + c0 * lx.c;
  Acc k = 0, mean = 0, m2 = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    uint32_t c, s;
    by_s.divmod(static_cast<uint32_t>(i), c, s);
    const Acc v = to_acc<Acc>(xb[c * lx.c + s * lx.s]);
    k += Acc(1);
    const Acc delta = v - mean;
    mean += delta / k;
    m2 += delta * (v - mean);
  }
  const MeanM2 total = block_mean_m2(MeanM2{double(k), double(mean), double(m2)});
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

GroupDims group_dims(const TensorView& x, int64_t groups) {
  GroupDims d{x.shape[0], x.shape[1], 1, groups, x.shape[1] / groups};
  for (int i = 2; i < x.ndim; ++i) d.S *= x.shape[i];
  MEDKERN_CHECK_VALUE(d.Cg * d.S < (int64_t{1} << 31) && d.N * d.G < (int64_t{1} << 31), "group_norm (CUDA): ",
                      d.Cg * d.S, " values per group and ", d.N * d.G,
                      " (sample, group) pairs exceed the kernel's limits (2^31 - 1)");
  return d;
}

}  // namespace

void group_norm_forward(const TensorView& input, const TensorView* weight, const TensorView* bias,
                        const TensorView& output, const TensorView& mean, const TensorView& invstd,
                        const GroupNormParams& p, Stream stream) {
  if (input.numel() == 0) return;
  DeviceGuard guard(output);
  const GroupDims d = group_dims(input, p.groups);
  const GroupLayout lx = group_layout(input, "input");
  const GroupArgs a{param_ref(weight), param_ref(bias), param_ref(&mean), param_ref(&invstd), p.activation,
                    p.negative_slope, p.eps};
  const cudaStream_t s = as_cuda_stream(stream);
  dispatch_floating(input.dtype, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    group_norm_forward_kernel<T><<<static_cast<unsigned>(d.N * d.G), kThreads, 0, s>>>(
        input.ptr<const T>(), lx, output.ptr<T>(), d, FastDivmod(d.S), a);
    MEDKERN_CUDA_CHECK_LAUNCH("group_norm_forward_kernel");
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
  const GroupArgs a{param_ref(weight), param_ref(bias), param_ref(&mean), param_ref(&invstd), p.activation,
                    p.negative_slope, p.eps};
  const cudaStream_t s = as_cuda_stream(stream);
  double* sums = channel_sums.ptr<double>();
  dispatch_floating(input.dtype, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    group_norm_backward_kernel<T><<<static_cast<unsigned>(d.N * d.G), kThreads, 0, s>>>(
        grad_output.ptr<const T>(), ldy, input.ptr<const T>(), lx, grad_input ? grad_input->ptr<T>() : nullptr, d,
        a, sums);
    MEDKERN_CUDA_CHECK_LAUNCH("group_norm_backward_kernel");
  });
  if (grad_weight || grad_bias) {
    group_norm_param_grad_kernel<<<grid_for(d.C, 128), 128, 0, s>>>(sums, d, param_ref(&invstd),
                                                                   param_ref(grad_weight), param_ref(grad_bias));
    MEDKERN_CUDA_CHECK_LAUNCH("group_norm_param_grad_kernel");
  }
}

}  // namespace medkern::cuda
