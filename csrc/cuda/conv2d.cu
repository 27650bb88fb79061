// cuda/conv2d.cu — 2-D convolution on the GPU. Forward, input gradient and weight gradient are
// implicit GEMMs on gemm_tiles.cuh (tiles gather from NCHW through strides; no im2col buffer):
//   forward       C[(n,p,q)][k]      = sum_{(c,r,s)} x[n,c,h,w]   * w[k,c,r,s]
//   grad input    C[(n,h,w)][c]      = sum_{(k,r,s)} dy[n,k,p,q]  * w[k,c,r,s]   (gather, no scatter)
//   grad weight   C[k][(c,r,s)]      = sum_{(n,p,q)} dy[n,k,p,q]  * x[n,c,h,w]   (split-K + atomics)
// Channel-per-group == 1 (first layers on grayscale images, depthwise) has no reduction worth a
// GEMM tile, so forward and input gradient use direct one-thread-per-output kernels there.
// float32 with TF32 allowed and a caller workspace goes to conv2d_tf32.cu's tensor-core path first.
#include "common/activation_math.h"
#include "common/conv2d_math.h"
#include "cuda/block_reduce.cuh"
#include "cuda/conv2d_tf32.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/dtype_dispatch.cuh"
#include "cuda/gemm_tiles.cuh"
#include "medkern/conv2d.h"

namespace medkern::cuda {

namespace {

// Sizes of one convolution, read from the views (the bindings validated them).
struct ConvDims {
  int64_t N, C, H, W, K, R, S, P, Q, groups, Cg, Kg;
};

ConvDims conv_dims(const TensorView& x_like, const TensorView& weight, const TensorView& y_like,
                   const Conv2dParams& p) {
  ConvDims d{};
  d.N = x_like.shape[0]; d.C = x_like.shape[1]; d.H = x_like.shape[2]; d.W = x_like.shape[3];
  d.K = weight.shape[0]; d.R = weight.shape[2]; d.S = weight.shape[3];
  d.P = y_like.shape[2]; d.Q = y_like.shape[3];
  d.groups = p.groups; d.Cg = d.C / p.groups; d.Kg = d.K / p.groups;
  return d;
}

struct Strides4 {
  int64_t n, c, h, w;
};
Strides4 strides_of(const TensorView& v) { return {v.strides[0], v.strides[1], v.strides[2], v.strides[3]}; }

struct Geometry {
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
};
Geometry geometry_of(const Conv2dParams& p) {
  return {p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w};
}

// ---- forward ------------------------------------------------------------------------------
template <class T> struct ConvForwardProblem {
  using Elem = T;
  using Acc = acc_t<T>;
  int64_t M, N, K;
  int groups;

  // im2col(x): rows (n,p,q) are contiguous along q, so rows-fastest. conv_input_coord is linear
  // in (out, tap), so its output part is kept per row and its tap part per k.
  struct ASide {
    static constexpr bool kKFastest = false;
    const T* x; Strides4 sx; int64_t H, W, Cg, PQ, Q; Geometry geo; FastDivmod by_rs, by_s;
    struct Ctx { const T* base; int64_t h0, w0, pix; };
    struct KPart { int64_t off; int32_t dh, dw; };
    __device__ Ctx ctx(int64_t m, int g) const {
      const int64_t n = m / PQ, pq = m - n * PQ, p = pq / Q, q = pq - p * Q;
      const int64_t h0 = conv_input_coord(p, 0, geo.stride_h, geo.pad_h, geo.dil_h);
      const int64_t w0 = conv_input_coord(q, 0, geo.stride_w, geo.pad_w, geo.dil_w);
      return {x + n * sx.n + g * Cg * sx.c, h0, w0, h0 * sx.h + w0 * sx.w};
    }
    __device__ KPart k_part(int64_t k) const {
      uint32_t ci, rs, r, s;
      by_rs.divmod(static_cast<uint32_t>(k), ci, rs);
      by_s.divmod(rs, r, s);
      const int64_t dh = conv_input_coord(0, r, geo.stride_h, 0, geo.dil_h);
      const int64_t dw = conv_input_coord(0, s, geo.stride_w, 0, geo.dil_w);
      return {ci * sx.c + dh * sx.h + dw * sx.w, int32_t(dh), int32_t(dw)};
    }
    __device__ Acc load(const Ctx& c, const KPart& kp) const {
      const int64_t h = c.h0 + kp.dh, w = c.w0 + kp.dw;
      if (h < 0 || h >= H || w < 0 || w >= W) return Acc(0);
      return to_acc<Acc>(c.base[c.pix + kp.off]);
    }
  } a;

  struct BSide {  // weight rows k are contiguous along (c,r,s)
    static constexpr bool kKFastest = true;
    const T* w; Strides4 sw; int64_t Kg; FastDivmod by_rs, by_s;
    struct Ctx { const T* base; };
    struct KPart { int64_t off; };
    __device__ Ctx ctx(int64_t n, int g) const { return {w + (g * Kg + n) * sw.n}; }
    __device__ KPart k_part(int64_t k) const {
      uint32_t ci, rs, r, s;
      by_rs.divmod(static_cast<uint32_t>(k), ci, rs);
      by_s.divmod(rs, r, s);
      return {ci * sw.c + r * sw.h + s * sw.w};
    }
    __device__ Acc load(const Ctx& c, const KPart& kp) const { return to_acc<Acc>(c.base[kp.off]); }
  } b;

  T* y; Strides4 sy; int64_t PQ, Q, Kg; const T* bias; int64_t bias_stride; bool fuse_relu;
  struct OutRow { T* ptr; };  // output pixel (n, p, q) of group g's first channel
  __device__ OutRow out_row(int64_t m, int g) const {
    const int64_t img = m / PQ, pq = m - img * PQ, p = pq / Q, q = pq - p * Q;
    return {y + img * sy.n + g * Kg * sy.c + p * sy.h + q * sy.w};
  }
  __device__ void store(const OutRow& row, int64_t n, int g, Acc v, bool /*accumulate: never split*/) const {
    if (bias) v += to_acc<Acc>(bias[(g * Kg + n) * bias_stride]);
    if (fuse_relu) v = relu(v);
    row.ptr[n * sy.c] = from_acc<T>(v);
  }
};

// One thread per output for channels-per-group == 1: the reduction is just R*S taps.
template <class T>
__global__ void conv2d_forward_direct_kernel(const T* __restrict__ x, Strides4 sx, const T* __restrict__ w,
                                             Strides4 sw, const T* __restrict__ bias, int64_t bias_stride,
                                             T* __restrict__ y, Strides4 sy, ConvDims d, Geometry geo,
                                             bool fuse_relu) {
  using Acc = acc_t<T>;
  const int64_t total = d.N * d.K * d.P * d.Q;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = i % d.Q, p = (i / d.Q) % d.P, k = (i / (d.Q * d.P)) % d.K, n = i / (d.Q * d.P * d.K);
    const int64_t c = k / d.Kg;  // the group's single input channel
    const T* xb = x + n * sx.n + c * sx.c;
    const T* wb = w + k * sw.n;
    Acc acc = bias ? to_acc<Acc>(bias[k * bias_stride]) : Acc(0);
    for (int64_t r = 0; r < d.R; ++r) {
      const int64_t h = conv_input_coord(p, r, geo.stride_h, geo.pad_h, geo.dil_h);
      if (h < 0 || h >= d.H) continue;
      for (int64_t s = 0; s < d.S; ++s) {
        const int64_t ww = conv_input_coord(q, s, geo.stride_w, geo.pad_w, geo.dil_w);
        if (ww < 0 || ww >= d.W) continue;
        acc += to_acc<Acc>(xb[h * sx.h + ww * sx.w]) * to_acc<Acc>(wb[r * sw.h + s * sw.w]);
      }
    }
    if (fuse_relu) acc = relu(acc);
    y[n * sy.n + k * sy.c + p * sy.h + q * sy.w] = from_acc<T>(acc);
  }
}

// ---- input gradient -------------------------------------------------------------------------
template <class T> struct ConvBackwardInputProblem {
  using Elem = T;
  using Acc = acc_t<T>;
  int64_t M, N, K;
  int groups;

  struct ASide {  // rows (n,h,w) gather dy at the output position each tap came from
    static constexpr bool kKFastest = false;
    const T* dy; Strides4 sdy; int64_t P, Q, Kg, HW, W; Geometry geo; FastDivmod by_rs, by_s;
    struct Ctx { const T* base; int64_t h, w; };
    struct KPart { int64_t off; int32_t r, s; };
    __device__ Ctx ctx(int64_t m, int g) const {
      const int64_t n = m / HW, hw = m - n * HW, h = hw / W;
      return {dy + n * sdy.n + g * Kg * sdy.c, h, hw - h * W};
    }
    __device__ KPart k_part(int64_t k) const {
      uint32_t kk, rs, r, s;
      by_rs.divmod(static_cast<uint32_t>(k), kk, rs);
      by_s.divmod(rs, r, s);
      return {kk * sdy.c, int32_t(r), int32_t(s)};
    }
    __device__ Acc load(const Ctx& c, const KPart& kp) const {
      const int64_t p = conv_output_coord(c.h, kp.r, geo.stride_h, geo.pad_h, geo.dil_h, P);
      if (p < 0) return Acc(0);
      const int64_t q = conv_output_coord(c.w, kp.s, geo.stride_w, geo.pad_w, geo.dil_w, Q);
      if (q < 0) return Acc(0);
      return to_acc<Acc>(c.base[kp.off + p * sdy.h + q * sdy.w]);
    }
  } a;

  struct BSide {  // B[(k,r,s)][c] = w[g*Kg+k, c, r, s]
    static constexpr bool kKFastest = true;
    const T* w; Strides4 sw; int64_t Kg, Cg; FastDivmod by_rs, by_s;
    struct Ctx { const T* base; };
    struct KPart { int64_t off; };
    __device__ Ctx ctx(int64_t c, int g) const { return {w + g * Kg * sw.n + c * sw.c}; }
    __device__ KPart k_part(int64_t k) const {
      uint32_t kk, rs, r, s;
      by_rs.divmod(static_cast<uint32_t>(k), kk, rs);
      by_s.divmod(rs, r, s);
      return {kk * sw.n + r * sw.h + s * sw.w};
    }
    __device__ Acc load(const Ctx& c, const KPart& kp) const { return to_acc<Acc>(c.base[kp.off]); }
  } b;

  T* dx; Strides4 sdx; int64_t HW, W, Cg;
  struct OutRow { T* ptr; };  // input pixel (n, h, w) of group g's first channel
  __device__ OutRow out_row(int64_t m, int g) const {
    const int64_t img = m / HW, hw = m - img * HW, h = hw / W, w = hw - h * W;
    return {dx + img * sdx.n + g * Cg * sdx.c + h * sdx.h + w * sdx.w};
  }
  __device__ void store(const OutRow& row, int64_t n, int, Acc v, bool) const { row.ptr[n * sdx.c] = from_acc<T>(v); }
};

template <class T>
__global__ void conv2d_backward_input_direct_kernel(const T* __restrict__ dy, Strides4 sdy, const T* __restrict__ w,
                                                    Strides4 sw, T* __restrict__ dx, Strides4 sdx, ConvDims d,
                                                    Geometry geo) {
  using Acc = acc_t<T>;
  const int64_t total = d.N * d.C * d.H * d.W;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = i % d.W, h = (i / d.W) % d.H, c = (i / (d.W * d.H)) % d.C, n = i / (d.W * d.H * d.C);
    // channels per group is 1, so input channel c is group c and feeds outputs c*Kg .. c*Kg+Kg-1
    Acc acc = Acc(0);
    for (int64_t r = 0; r < d.R; ++r) {
      const int64_t p = conv_output_coord(h, r, geo.stride_h, geo.pad_h, geo.dil_h, d.P);
      if (p < 0) continue;
      for (int64_t s = 0; s < d.S; ++s) {
        const int64_t q = conv_output_coord(x, s, geo.stride_w, geo.pad_w, geo.dil_w, d.Q);
        if (q < 0) continue;
        for (int64_t kk = 0; kk < d.Kg; ++kk) {
          const int64_t k = c * d.Kg + kk;
          acc += to_acc<Acc>(dy[n * sdy.n + k * sdy.c + p * sdy.h + q * sdy.w]) *
                 to_acc<Acc>(w[k * sw.n + r * sw.h + s * sw.w]);
        }
      }
    }
    dx[n * sdx.n + c * sdx.c + h * sdx.h + x * sdx.w] = from_acc<T>(acc);
  }
}

// ---- weight gradient ------------------------------------------------------------------------
template <class T> struct ConvBackwardWeightProblem {
  using Elem = T;
  using Acc = acc_t<T>;
  int64_t M, N, K;
  int groups;

  struct ASide {  // A[k][(n,p,q)] = dy: contiguous along (p,q)
    static constexpr bool kKFastest = true;
    const T* dy; Strides4 sdy; int64_t Kg; FastDivmod by_pq, by_q;
    struct Ctx { const T* base; };
    struct KPart { int64_t off; };
    __device__ Ctx ctx(int64_t k, int g) const { return {dy + (g * Kg + k) * sdy.c}; }
    __device__ KPart k_part(int64_t j) const {
      uint32_t n, pq, p, q;
      by_pq.divmod(static_cast<uint32_t>(j), n, pq);
      by_q.divmod(pq, p, q);
      return {n * sdy.n + p * sdy.h + q * sdy.w};
    }
    __device__ Acc load(const Ctx& c, const KPart& kp) const { return to_acc<Acc>(c.base[kp.off]); }
  } a;

  // B[(n,p,q)][(c,r,s)] = x at the tap's input position; conv_input_coord split as in forward:
  // the tap part per row (c,r,s), the output part per k (n,p,q)
  struct BSide {
    static constexpr bool kKFastest = true;
    const T* x; Strides4 sx; int64_t H, W, Cg; Geometry geo; FastDivmod by_rs, by_s, by_pq, by_q;
    struct Ctx { const T* base; int32_t dh, dw; };
    struct KPart { int64_t n_off, h0, w0; };
    __device__ Ctx ctx(int64_t col, int g) const {
      uint32_t c, rs, r, s;
      by_rs.divmod(static_cast<uint32_t>(col), c, rs);
      by_s.divmod(rs, r, s);
      return {x + (g * Cg + c) * sx.c, int32_t(conv_input_coord(0, r, geo.stride_h, 0, geo.dil_h)),
              int32_t(conv_input_coord(0, s, geo.stride_w, 0, geo.dil_w))};
    }
    __device__ KPart k_part(int64_t j) const {
      uint32_t n, pq, p, q;
      by_pq.divmod(static_cast<uint32_t>(j), n, pq);
      by_q.divmod(pq, p, q);
      return {n * sx.n, conv_input_coord(p, 0, geo.stride_h, geo.pad_h, geo.dil_h),
              conv_input_coord(q, 0, geo.stride_w, geo.pad_w, geo.dil_w)};
    }
    __device__ Acc load(const Ctx& c, const KPart& kp) const {
      const int64_t h = kp.h0 + c.dh, w = kp.w0 + c.dw;
      if (h < 0 || h >= H || w < 0 || w >= W) return Acc(0);
      return to_acc<Acc>(c.base[kp.n_off + h * sx.h + w * sx.w]);
    }
  } b;

  T* dw; Strides4 sdw; int64_t Kg; FastDivmod by_rs, by_s;
  struct OutRow { T* ptr; };  // output channel g*Kg + m
  __device__ OutRow out_row(int64_t m, int g) const { return {dw + (g * Kg + m) * sdw.n}; }
  __device__ void store(const OutRow& row, int64_t col, int, Acc v, bool accumulate) const {
    uint32_t c, rs, r, s;
    by_rs.divmod(static_cast<uint32_t>(col), c, rs);
    by_s.divmod(rs, r, s);
    T* out = row.ptr + c * sdw.c + r * sdw.h + s * sdw.w;
    if (accumulate) atomic_add(out, v); else *out = from_acc<T>(v);
  }
};

// ---- bias gradient: one block per output channel ---------------------------------------------
// A flat walk over (n, p, q); the index split is a multiply-shift (FastDivmod) when the count fits
// 31 bits, and the (p, q) plane is one strided run when rows are packed (the usual case). With one
// block per channel there may be fewer blocks than SMs, so each block is wide (kBiasThreads) and
// each thread keeps four independent sums in flight; the sums are combined in a fixed order.
constexpr int kBiasThreads = 512;

template <class T>
__global__ void __launch_bounds__(kBiasThreads)
    conv2d_backward_bias_kernel(const T* __restrict__ dy, Strides4 sdy, int64_t N, int64_t P, int64_t Q,
                                FastDivmod by_pq, FastDivmod by_q, T* __restrict__ db, int64_t db_stride) {
  using Acc = acc_t<T>;
  __shared__ Acc scratch[32];
  const int64_t PQ = P * Q, total = N * PQ;
  const T* base = dy + blockIdx.x * sdy.c;
  const bool packed = P == 1 || sdy.h == Q * sdy.w;
  const bool fast = total < (int64_t{1} << 31);
  auto load = [&](int64_t i) -> Acc {
    int64_t n, pq;
    if (fast) {
      uint32_t nn, rr;
      by_pq.divmod(static_cast<uint32_t>(i), nn, rr);
      n = nn; pq = rr;
    } else {
      n = i / PQ; pq = i - n * PQ;
    }
    int64_t off;
    if (packed) {
      off = pq * sdy.w;
    } else {
      uint32_t p, q;
      by_q.divmod(static_cast<uint32_t>(pq), p, q);
      off = p * sdy.h + q * sdy.w;
    }
    return to_acc<Acc>(base[n * sdy.n + off]);
  };
  Acc acc[4] = {Acc(0), Acc(0), Acc(0), Acc(0)};
  const int64_t step = blockDim.x;
  int64_t i = threadIdx.x;
  for (; i + 3 * step < total; i += 4 * step) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[j] += load(i + j * step);
  }
  for (; i < total; i += step) acc[0] += load(i);
  Acc sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) db[blockIdx.x * db_stride] = from_acc<T>(sum);
}

constexpr int kThreads = 256;

}  // namespace

void conv2d_forward(const TensorView& input, const TensorView& weight, const TensorView* bias,
                    const TensorView& output, const Conv2dParams& p, bool allow_tf32, Stream stream,
                    const TensorView* workspace) {
  if (output.numel() == 0) return;
  DeviceGuard guard(output);
  const ConvDims d = conv_dims(input, weight, output, p);
  const cudaStream_t s = as_cuda_stream(stream);
  if (conv2d_forward_tf32(input, weight, bias, output, p, allow_tf32, workspace, s)) return;
  dispatch_floating(input.dtype, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* bias_ptr = bias ? bias->ptr<const T>() : nullptr;
    const int64_t bias_stride = bias ? bias->strides[0] : 0;
    if (d.Cg == 1 || d.Cg * d.R * d.S == 0) {
      conv2d_forward_direct_kernel<T><<<grid_for(output.numel(), kThreads), kThreads, 0, s>>>(
          input.ptr<const T>(), strides_of(input), weight.ptr<const T>(), strides_of(weight), bias_ptr, bias_stride,
          output.ptr<T>(), strides_of(output), d, geometry_of(p), p.fuse_relu);
      MEDKERN_CUDA_CHECK_LAUNCH("conv2d_forward_direct_kernel");
      return;
    }
    ConvForwardProblem<T> prob{};
    prob.M = d.N * d.P * d.Q; prob.N = d.Kg; prob.K = d.Cg * d.R * d.S; prob.groups = int(d.groups);
    prob.a = {input.ptr<const T>(), strides_of(input), d.H, d.W, d.Cg, d.P * d.Q, d.Q, geometry_of(p),
              FastDivmod(d.R * d.S), FastDivmod(d.S)};
    prob.b = {weight.ptr<const T>(), strides_of(weight), d.Kg, FastDivmod(d.R * d.S), FastDivmod(d.S)};
    prob.y = output.ptr<T>(); prob.sy = strides_of(output); prob.PQ = d.P * d.Q; prob.Q = d.Q; prob.Kg = d.Kg;
    prob.bias = bias_ptr; prob.bias_stride = bias_stride; prob.fuse_relu = p.fuse_relu;
    launch_gemm(prob, math_mode_for<T>(allow_tf32), 1, s, "conv2d_forward (implicit GEMM)");
  });
}

void conv2d_backward_input(const TensorView& grad_output, const TensorView& weight, const TensorView& grad_input,
                           const Conv2dParams& p, bool allow_tf32, Stream stream, const TensorView* workspace) {
  if (grad_input.numel() == 0) return;
  DeviceGuard guard(grad_input);
  const ConvDims d = conv_dims(grad_input, weight, grad_output, p);
  const cudaStream_t s = as_cuda_stream(stream);
  if (conv2d_backward_input_tf32(grad_output, weight, grad_input, p, allow_tf32, workspace, s)) return;
  dispatch_floating(grad_output.dtype, "grad_output", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (d.Cg == 1 || d.Kg * d.R * d.S == 0 || grad_output.numel() == 0) {
      conv2d_backward_input_direct_kernel<T><<<grid_for(grad_input.numel(), kThreads), kThreads, 0, s>>>(
          grad_output.ptr<const T>(), strides_of(grad_output), weight.ptr<const T>(), strides_of(weight),
          grad_input.ptr<T>(), strides_of(grad_input), d, geometry_of(p));
      MEDKERN_CUDA_CHECK_LAUNCH("conv2d_backward_input_direct_kernel");
      return;
    }
    ConvBackwardInputProblem<T> prob{};
    prob.M = d.N * d.H * d.W; prob.N = d.Cg; prob.K = d.Kg * d.R * d.S; prob.groups = int(d.groups);
    prob.a = {grad_output.ptr<const T>(), strides_of(grad_output), d.P, d.Q, d.Kg, d.H * d.W, d.W, geometry_of(p),
              FastDivmod(d.R * d.S), FastDivmod(d.S)};
    prob.b = {weight.ptr<const T>(), strides_of(weight), d.Kg, d.Cg, FastDivmod(d.R * d.S), FastDivmod(d.S)};
    prob.dx = grad_input.ptr<T>(); prob.sdx = strides_of(grad_input); prob.HW = d.H * d.W; prob.W = d.W;
    prob.Cg = d.Cg;
    launch_gemm(prob, math_mode_for<T>(allow_tf32), 1, s, "conv2d_backward_input (implicit GEMM)");
  });
}

void conv2d_backward_weight(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                            const Conv2dParams& p, bool allow_tf32, Stream stream, const TensorView* workspace) {
  if (grad_weight.numel() == 0) return;
  DeviceGuard guard(grad_weight);
  const ConvDims d = conv_dims(input, grad_weight, grad_output, p);
  const cudaStream_t s = as_cuda_stream(stream);
  if (conv2d_backward_weight_tf32(grad_output, input, grad_weight, p, allow_tf32, workspace, s)) return;
  MEDKERN_CHECK_VALUE(d.N * d.P * d.Q < (int64_t{1} << 31) && d.Cg * d.R * d.S < (int64_t{1} << 31),
                      "conv2d_backward_weight: N*P*Q = ", d.N * d.P * d.Q,
                      " exceeds 2^31 - 1, which the CUDA kernel does not support");
  dispatch_floating(grad_output.dtype, "grad_output", [&](auto tag) {
    using T = typename decltype(tag)::type;
    ConvBackwardWeightProblem<T> prob{};
    prob.M = d.Kg; prob.N = d.Cg * d.R * d.S; prob.K = d.N * d.P * d.Q; prob.groups = int(d.groups);
    prob.a = {grad_output.ptr<const T>(), strides_of(grad_output), d.Kg, FastDivmod(d.P * d.Q), FastDivmod(d.Q)};
    prob.b = {input.ptr<const T>(), strides_of(input), d.H, d.W, d.Cg, geometry_of(p), FastDivmod(d.R * d.S),
              FastDivmod(d.S), FastDivmod(d.P * d.Q), FastDivmod(d.Q)};
    prob.dw = grad_weight.ptr<T>(); prob.sdw = strides_of(grad_weight); prob.Kg = d.Kg;
    prob.by_rs = FastDivmod(d.R * d.S); prob.by_s = FastDivmod(d.S);
    // Split the long (n,p,q) reduction across blocks with atomics; 16-bit outputs would lose
    // precision in every atomic rounding, so they stay unsplit (and deterministic).
    int splits = 1;
    const bool wide = std::is_same_v<T, float> || std::is_same_v<T, double>;
    if (wide && grad_weight.is_contiguous() && prob.K > 0) {
      const int64_t tiles = ((prob.M + 63) / 64) * ((prob.N + 63) / 64) * d.groups;
      splits = choose_splits(tiles, prob.K);
    }
    if (splits > 1 || prob.K == 0) {
      if (grad_weight.is_contiguous()) {
        MEDKERN_CUDA_CHECK(cudaMemsetAsync(grad_weight.data, 0, grad_weight.numel() * sizeof(T), s));
        if (prob.K == 0) return;
      }
    }
    launch_gemm(prob, math_mode_for<T>(allow_tf32), splits, s, "conv2d_backward_weight (implicit GEMM)");
  });
}

void conv2d_backward_bias(const TensorView& grad_output, const TensorView& grad_bias, Stream stream) {
  if (grad_bias.numel() == 0) return;
  DeviceGuard guard(grad_bias);
  const cudaStream_t s = as_cuda_stream(stream);
  dispatch_floating(grad_output.dtype, "grad_output", [&](auto tag) {
    using T = typename decltype(tag)::type;
    conv2d_backward_bias_kernel<T><<<static_cast<unsigned>(grad_bias.numel()), kBiasThreads, 0, s>>>(
        grad_output.ptr<const T>(), strides_of(grad_output), grad_output.shape[0], grad_output.shape[2],
        grad_output.shape[3], FastDivmod(grad_output.shape[2] * grad_output.shape[3]), FastDivmod(grad_output.shape[3]),
        grad_bias.ptr<T>(), grad_bias.strides[0]);
    MEDKERN_CUDA_CHECK_LAUNCH("conv2d_backward_bias_kernel");
  });
}

}  // namespace medkern::cuda
