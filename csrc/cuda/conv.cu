// cuda/conv.cu — 2-D and 3-D convolution on the GPU, on (N, C, D, H, W) views with 2-D as the
// depth-1 case. Forward, input gradient and weight gradient are implicit GEMMs on gemm_tiles.cuh
// (tiles gather from NCDHW through strides; no im2col buffer); v = (d,h,w), o = (od,p,q), tap (t,r,s):
//   forward       C[(n,o)][k]      = sum_{(c,t,r,s)} x[n,c,v]   * w[k,c,t,r,s]
//   grad input    C[(n,v)][c]      = sum_{(k,t,r,s)} dy[n,k,o]  * w[k,c,t,r,s]   (gather, no scatter)
//   grad weight   C[k][(c,t,r,s)]  = sum_{(n,o)}     dy[n,k,o]  * x[n,c,v]       (split-K + atomics)
// Channel-per-group == 1 (first layers on grayscale images, depthwise) has no reduction worth a
// GEMM tile, so forward and input gradient use direct one-thread-per-output kernels there. The
// input gradient adds an optional per-channel bias: it is the transposed convolution's forward.
// float32 with TF32 allowed and a caller workspace goes to conv_tf32.cu's tensor-core path first
// (2-D and 3-D alike).
#include "common/activation_math.h"
#include "common/conv_math.h"
#include "cuda/block_reduce.cuh"
#include "cuda/conv_tf32.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/dtype_dispatch.cuh"
#include "cuda/gemm_tiles.cuh"
#include "medkern/conv.h"

namespace medkern::cuda {

namespace {

// Sizes of one convolution, read from the 5-D views (the bindings validated them).
struct ConvDims {
  int64_t N, C, D, H, W, K, T, R, S, OD, P, Q, groups, Cg, Kg;
};

ConvDims conv_dims(const TensorView& x_like, const TensorView& weight, const TensorView& y_like,
                   const ConvParams& p) {
  ConvDims d{};
  d.N = x_like.shape[0]; d.C = x_like.shape[1]; d.D = x_like.shape[2]; d.H = x_like.shape[3]; d.W = x_like.shape[4];
  d.K = weight.shape[0]; d.T = weight.shape[2]; d.R = weight.shape[3]; d.S = weight.shape[4];
  d.OD = y_like.shape[2]; d.P = y_like.shape[3]; d.Q = y_like.shape[4];
  d.groups = p.groups; d.Cg = d.C / p.groups; d.Kg = d.K / p.groups;
  return d;
}

struct Strides5 {
  int64_t n, c, d, h, w;
};
Strides5 strides_of(const TensorView& v) {
  return {v.strides[0], v.strides[1], v.strides[2], v.strides[3], v.strides[4]};
}

struct Geometry {
  int64_t stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w;
};
Geometry geometry_of(const ConvParams& p) {
  return {p.stride_d, p.stride_h, p.stride_w, p.pad_d, p.pad_h, p.pad_w, p.dilation_d, p.dilation_h, p.dilation_w};
}

// ---- forward ------------------------------------------------------------------------------
template <class T> struct ConvForwardProblem {
  using Elem = T;
  using Acc = acc_t<T>;
  int64_t M, N, K;
  int groups;

  // im2col(x): rows (n,od,p,q) are contiguous along q, so rows-fastest. conv_input_coord is
  // linear in (out, tap), so its output part is kept per row and its tap part per k.
  struct ASide {
    static constexpr bool kKFastest = false;
    const T* x; Strides5 sx; int64_t D, H, W, Cg, OPQ, PQ, Q; Geometry geo; FastDivmod by_trs, by_rs, by_s;
    struct Ctx { const T* base; int64_t d0, h0, w0, pix; };
    struct KPart { int64_t off; int32_t dd, dh, dw; };
    __device__ Ctx ctx(int64_t m, int g) const {
      const int64_t n = m / OPQ, opq = m - n * OPQ, od = opq / PQ, pq = opq - od * PQ, p = pq / Q, q = pq - p * Q;
      const int64_t d0 = conv_input_coord(od, 0, geo.stride_d, geo.pad_d, geo.dil_d);
      const int64_t h0 = conv_input_coord(p, 0, geo.stride_h, geo.pad_h, geo.dil_h);
      const int64_t w0 = conv_input_coord(q, 0, geo.stride_w, geo.pad_w, geo.dil_w);
      return {x + n * sx.n + g * Cg * sx.c, d0, h0, w0, d0 * sx.d + h0 * sx.h + w0 * sx.w};
    }
    __device__ KPart k_part(int64_t k) const {
      uint32_t ci, trs, t, rs, r, s;
      by_trs.divmod(static_cast<uint32_t>(k), ci, trs);
      by_rs.divmod(trs, t, rs);
      by_s.divmod(rs, r, s);
      const int64_t dd = conv_input_coord(0, t, geo.stride_d, 0, geo.dil_d);
      const int64_t dh = conv_input_coord(0, r, geo.stride_h, 0, geo.dil_h);
      const int64_t dw = conv_input_coord(0, s, geo.stride_w, 0, geo.dil_w);
      return {ci * sx.c + dd * sx.d + dh * sx.h + dw * sx.w, int32_t(dd), int32_t(dh), int32_t(dw)};
    }
    __device__ Acc load(const Ctx& c, const KPart& kp) const {
      const int64_t z = c.d0 + kp.dd, h = c.h0 + kp.dh, w = c.w0 + kp.dw;
      if (z < 0 || z >= D || h < 0 || h >= H || w < 0 || w >= W) return Acc(0);
      return to_acc<Acc>(c.base[c.pix + kp.off]);
    }
  } a;

  struct BSide {  // weight rows k are contiguous along (c,t,r,s)
    static constexpr bool kKFastest = true;
    const T* w; Strides5 sw; int64_t Kg; FastDivmod by_trs, by_rs, by_s;
    struct Ctx { const T* base; };
    struct KPart { int64_t off; };
    __device__ Ctx ctx(int64_t n, int g) const { return {w + (g * Kg + n) * sw.n}; }
    __device__ KPart k_part(int64_t k) const {
      uint32_t ci, trs, t, rs, r, s;
      by_trs.divmod(static_cast<uint32_t>(k), ci, trs);
      by_rs.divmod(trs, t, rs);
      by_s.divmod(rs, r, s);
      return {ci * sw.c + t * sw.d + r * sw.h + s * sw.w};
    }
    __device__ Acc load(const Ctx& c, const KPart& kp) const { return to_acc<Acc>(c.base[kp.off]); }
  } b;

  T* y; Strides5 sy; int64_t OPQ, PQ, Q, Kg; const T* bias; int64_t bias_stride; bool fuse_relu;
  struct OutRow { T* ptr; };  // output voxel (n, od, p, q) of group g's first channel
  __device__ OutRow out_row(int64_t m, int g) const {
    const int64_t img = m / OPQ, opq = m - img * OPQ, od = opq / PQ, pq = opq - od * PQ, p = pq / Q, q = pq - p * Q;
    return {y + img * sy.n + g * Kg * sy.c + od * sy.d + p * sy.h + q * sy.w};
  }
  __device__ void store(const OutRow& row, int64_t n, int g, Acc v, bool /*accumulate: never split*/) const {
    if (bias) v += to_acc<Acc>(bias[(g * Kg + n) * bias_stride]);
    if (fuse_relu) v = relu(v);
    row.ptr[n * sy.c] = from_acc<T>(v);
  }
};

// One thread per output for channels-per-group == 1: the reduction is just T*R*S taps.
template <class T>
__global__ void conv_forward_direct_kernel(const T* __restrict__ x, Strides5 sx, const T* __restrict__ w,
                                           Strides5 sw, const T* __restrict__ bias, int64_t bias_stride,
                                           T* __restrict__ y, Strides5 sy, ConvDims d, Geometry geo, bool fuse_relu) {
  using Acc = acc_t<T>;
  const int64_t total = d.N * d.K * d.OD * d.P * d.Q;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = i % d.Q, p = (i / d.Q) % d.P, od = (i / (d.Q * d.P)) % d.OD;
    const int64_t k = (i / (d.Q * d.P * d.OD)) % d.K, n = i / (d.Q * d.P * d.OD * d.K);
    const int64_t c = k / d.Kg;  // the group's single input channel
    const T* xb = x + n * sx.n + c * sx.c;
    const T* wb = w + k * sw.n;
    Acc acc = bias ? to_acc<Acc>(bias[k * bias_stride]) : Acc(0);
    for (int64_t t = 0; t < d.T; ++t) {
      const int64_t z = conv_input_coord(od, t, geo.stride_d, geo.pad_d, geo.dil_d);
      if (z < 0 || z >= d.D) continue;
      for (int64_t r = 0; r < d.R; ++r) {
        const int64_t h = conv_input_coord(p, r, geo.stride_h, geo.pad_h, geo.dil_h);
        if (h < 0 || h >= d.H) continue;
        for (int64_t s = 0; s < d.S; ++s) {
          const int64_t ww = conv_input_coord(q, s, geo.stride_w, geo.pad_w, geo.dil_w);
          if (ww < 0 || ww >= d.W) continue;
          acc += to_acc<Acc>(xb[z * sx.d + h * sx.h + ww * sx.w]) * to_acc<Acc>(wb[t * sw.d + r * sw.h + s * sw.w]);
        }
      }
    }
    if (fuse_relu) acc = relu(acc);
    y[n * sy.n + k * sy.c + od * sy.d + p * sy.h + q * sy.w] = from_acc<T>(acc);
  }
}

// ---- input gradient -------------------------------------------------------------------------
template <class T> struct ConvBackwardInputProblem {
  using Elem = T;
  using Acc = acc_t<T>;
  int64_t M, N, K;
  int groups;

  struct ASide {  // rows (n,z,h,w) gather dy at the output position each tap came from
    static constexpr bool kKFastest = false;
    const T* dy; Strides5 sdy; int64_t OD, P, Q, Kg, DHW, HW, W; Geometry geo; FastDivmod by_trs, by_rs, by_s;
    struct Ctx { const T* base; int64_t z, h, w; };
    struct KPart { int64_t off; int32_t t, r, s; };
    __device__ Ctx ctx(int64_t m, int g) const {
      const int64_t n = m / DHW, v = m - n * DHW, z = v / HW, hw = v - z * HW, h = hw / W;
      return {dy + n * sdy.n + g * Kg * sdy.c, z, h, hw - h * W};
    }
    __device__ KPart k_part(int64_t k) const {
      uint32_t kk, trs, t, rs, r, s;
      by_trs.divmod(static_cast<uint32_t>(k), kk, trs);
      by_rs.divmod(trs, t, rs);
      by_s.divmod(rs, r, s);
      return {kk * sdy.c, int32_t(t), int32_t(r), int32_t(s)};
    }
    __device__ Acc load(const Ctx& c, const KPart& kp) const {
      const int64_t od = conv_output_coord(c.z, kp.t, geo.stride_d, geo.pad_d, geo.dil_d, OD);
      if (od < 0) return Acc(0);
      const int64_t p = conv_output_coord(c.h, kp.r, geo.stride_h, geo.pad_h, geo.dil_h, P);
      if (p < 0) return Acc(0);
      const int64_t q = conv_output_coord(c.w, kp.s, geo.stride_w, geo.pad_w, geo.dil_w, Q);
      if (q < 0) return Acc(0);
      return to_acc<Acc>(c.base[kp.off + od * sdy.d + p * sdy.h + q * sdy.w]);
    }
  } a;

  struct BSide {  // B[(k,t,r,s)][c] = w[g*Kg+k, c, t, r, s]
    static constexpr bool kKFastest = true;
    const T* w; Strides5 sw; int64_t Kg, Cg; FastDivmod by_trs, by_rs, by_s;
    struct Ctx { const T* base; };
    struct KPart { int64_t off; };
    __device__ Ctx ctx(int64_t c, int g) const { return {w + g * Kg * sw.n + c * sw.c}; }
    __device__ KPart k_part(int64_t k) const {
      uint32_t kk, trs, t, rs, r, s;
      by_trs.divmod(static_cast<uint32_t>(k), kk, trs);
      by_rs.divmod(trs, t, rs);
      by_s.divmod(rs, r, s);
      return {kk * sw.n + t * sw.d + r * sw.h + s * sw.w};
    }
    __device__ Acc load(const Ctx& c, const KPart& kp) const { return to_acc<Acc>(c.base[kp.off]); }
  } b;

  T* dx; Strides5 sdx; int64_t DHW, HW, W, Cg; const T* bias; int64_t bias_stride;
  struct OutRow { T* ptr; };  // input voxel (n, z, h, w) of group g's first channel
  __device__ OutRow out_row(int64_t m, int g) const {
    const int64_t img = m / DHW, v = m - img * DHW, z = v / HW, hw = v - z * HW, h = hw / W, w = hw - h * W;
    return {dx + img * sdx.n + g * Cg * sdx.c + z * sdx.d + h * sdx.h + w * sdx.w};
  }
  __device__ void store(const OutRow& row, int64_t n, int g, Acc v, bool) const {
    if (bias) v += to_acc<Acc>(bias[(g * Cg + n) * bias_stride]);
    row.ptr[n * sdx.c] = from_acc<T>(v);
  }
};

template <class T>
__global__ void conv_backward_input_direct_kernel(const T* __restrict__ dy, Strides5 sdy, const T* __restrict__ w,
                                                  Strides5 sw, const T* __restrict__ bias, int64_t bias_stride,
                                                  T* __restrict__ dx, Strides5 sdx, ConvDims d, Geometry geo) {
  using Acc = acc_t<T>;
  const int64_t total = d.N * d.C * d.D * d.H * d.W;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = i % d.W, h = (i / d.W) % d.H, z = (i / (d.W * d.H)) % d.D;
    const int64_t c = (i / (d.W * d.H * d.D)) % d.C, n = i / (d.W * d.H * d.D * d.C);
    // channels per group is 1, so input channel c is group c and feeds outputs c*Kg .. c*Kg+Kg-1
    Acc acc = bias ? to_acc<Acc>(bias[c * bias_stride]) : Acc(0);
    for (int64_t t = 0; t < d.T; ++t) {
      const int64_t od = conv_output_coord(z, t, geo.stride_d, geo.pad_d, geo.dil_d, d.OD);
      if (od < 0) continue;
      for (int64_t r = 0; r < d.R; ++r) {
        const int64_t p = conv_output_coord(h, r, geo.stride_h, geo.pad_h, geo.dil_h, d.P);
        if (p < 0) continue;
        for (int64_t s = 0; s < d.S; ++s) {
          const int64_t q = conv_output_coord(x, s, geo.stride_w, geo.pad_w, geo.dil_w, d.Q);
          if (q < 0) continue;
          for (int64_t kk = 0; kk < d.Kg; ++kk) {
            const int64_t k = c * d.Kg + kk;
            acc += to_acc<Acc>(dy[n * sdy.n + k * sdy.c + od * sdy.d + p * sdy.h + q * sdy.w]) *
                   to_acc<Acc>(w[k * sw.n + t * sw.d + r * sw.h + s * sw.w]);
          }
        }
      }
    }
    dx[n * sdx.n + c * sdx.c + z * sdx.d + h * sdx.h + x * sdx.w] = from_acc<T>(acc);
  }
}

// ---- weight gradient ------------------------------------------------------------------------
template <class T> struct ConvBackwardWeightProblem {
  using Elem = T;
  using Acc = acc_t<T>;
  int64_t M, N, K;
  int groups;

  struct ASide {  // A[k][(n,od,p,q)] = dy: contiguous along (od,p,q)
    static constexpr bool kKFastest = true;
    const T* dy; Strides5 sdy; int64_t Kg; FastDivmod by_opq, by_pq, by_q;
    struct Ctx { const T* base; };
    struct KPart { int64_t off; };
    __device__ Ctx ctx(int64_t k, int g) const { return {dy + (g * Kg + k) * sdy.c}; }
    __device__ KPart k_part(int64_t j) const {
      uint32_t n, opq, od, pq, p, q;
      by_opq.divmod(static_cast<uint32_t>(j), n, opq);
      by_pq.divmod(opq, od, pq);
      by_q.divmod(pq, p, q);
      return {n * sdy.n + od * sdy.d + p * sdy.h + q * sdy.w};
    }
    __device__ Acc load(const Ctx& c, const KPart& kp) const { return to_acc<Acc>(c.base[kp.off]); }
  } a;

  // B[(n,od,p,q)][(c,t,r,s)] = x at the tap's input position; conv_input_coord split as in
  // forward: the tap part per row (c,t,r,s), the output part per k (n,od,p,q)
  struct BSide {
    static constexpr bool kKFastest = true;
    const T* x; Strides5 sx; int64_t D, H, W, Cg; Geometry geo; FastDivmod by_trs, by_rs, by_s, by_opq, by_pq, by_q;
    struct Ctx { const T* base; int32_t dd, dh, dw; };
    struct KPart { int64_t n_off, d0, h0, w0; };
    __device__ Ctx ctx(int64_t col, int g) const {
      uint32_t c, trs, t, rs, r, s;
      by_trs.divmod(static_cast<uint32_t>(col), c, trs);
      by_rs.divmod(trs, t, rs);
      by_s.divmod(rs, r, s);
      return {x + (g * Cg + c) * sx.c, int32_t(conv_input_coord(0, t, geo.stride_d, 0, geo.dil_d)),
              int32_t(conv_input_coord(0, r, geo.stride_h, 0, geo.dil_h)),
              int32_t(conv_input_coord(0, s, geo.stride_w, 0, geo.dil_w))};
    }
    __device__ KPart k_part(int64_t j) const {
      uint32_t n, opq, od, pq, p, q;
      by_opq.divmod(static_cast<uint32_t>(j), n, opq);
      by_pq.divmod(opq, od, pq);
      by_q.divmod(pq, p, q);
      return {n * sx.n, conv_input_coord(od, 0, geo.stride_d, geo.pad_d, geo.dil_d),
              conv_input_coord(p, 0, geo.stride_h, geo.pad_h, geo.dil_h),
              conv_input_coord(q, 0, geo.stride_w, geo.pad_w, geo.dil_w)};
    }
    __device__ Acc load(const Ctx& c, const KPart& kp) const {
      const int64_t z = kp.d0 + c.dd, h = kp.h0 + c.dh, w = kp.w0 + c.dw;
      if (z < 0 || z >= D || h < 0 || h >= H || w < 0 || w >= W) return Acc(0);
      return to_acc<Acc>(c.base[kp.n_off + z * sx.d + h * sx.h + w * sx.w]);
    }
  } b;

  T* dw; Strides5 sdw; int64_t Kg; FastDivmod by_trs, by_rs, by_s;
  struct OutRow { T* ptr; };  // output channel g*Kg + m
  __device__ OutRow out_row(int64_t m, int g) const { return {dw + (g * Kg + m) * sdw.n}; }
  __device__ void store(const OutRow& row, int64_t col, int, Acc v, bool accumulate) const {
    uint32_t c, trs, t, rs, r, s;
    by_trs.divmod(static_cast<uint32_t>(col), c, trs);
    by_rs.divmod(trs, t, rs);
    by_s.divmod(rs, r, s);
    T* out = row.ptr + c * sdw.c + t * sdw.d + r * sdw.h + s * sdw.w;
    if (accumulate) atomic_add(out, v); else *out = from_acc<T>(v);
  }
};

// ---- bias gradient: one block per output channel ---------------------------------------------
// A flat walk over (n, od, p, q); the index split is a multiply-shift (FastDivmod) when the count
// fits 31 bits, and the (od, p, q) volume is one strided run when it is packed (the usual case). With one
// block per channel there may be fewer blocks than SMs, so each block is wide (kBiasThreads) and
// each thread keeps four independent sums in flight; the sums are combined in a fixed order.
constexpr int kBiasThreads = 512;

template <class T>
__global__ void __launch_bounds__(kBiasThreads)
    conv_backward_bias_kernel(const T* __restrict__ dy, Strides5 sdy, int64_t N, int64_t OD, int64_t P, int64_t Q,
                              FastDivmod by_opq, FastDivmod by_pq, FastDivmod by_q, T* __restrict__ db,
                              int64_t db_stride) {
  using Acc = acc_t<T>;
  __shared__ Acc scratch[32];
  const int64_t PQ = P * Q, OPQ = OD * PQ, total = N * OPQ;
  const T* base = dy + blockIdx.x * sdy.c;
  const bool packed = (P == 1 || sdy.h == Q * sdy.w) && (OD == 1 || sdy.d == PQ * sdy.w);
  const bool fast = total < (int64_t{1} << 31);
  auto load = [&](int64_t i) -> Acc {
    int64_t n, pq;
    if (fast) {
      uint32_t nn, rr;
      by_opq.divmod(static_cast<uint32_t>(i), nn, rr);
      n = nn; pq = rr;
    } else {
      n = i / OPQ; pq = i - n * OPQ;
    }
    int64_t off;
    if (packed) {
      off = pq * sdy.w;
    } else {
      uint32_t od, rest, p, q;
      by_pq.divmod(static_cast<uint32_t>(pq), od, rest);
      by_q.divmod(rest, p, q);
      off = od * sdy.d + p * sdy.h + q * sdy.w;
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

void conv_forward(const TensorView& input, const TensorView& weight, const TensorView* bias,
                  const TensorView& output, const ConvParams& p, bool allow_tf32, Stream stream,
                  const TensorView* workspace) {
  if (output.numel() == 0) return;
  DeviceGuard guard(output);
  const ConvDims d = conv_dims(input, weight, output, p);
  const cudaStream_t s = as_cuda_stream(stream);
  if (conv_forward_tf32(input, weight, bias, output, p, allow_tf32, workspace, s)) return;
  dispatch_floating(input.dtype, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* bias_ptr = bias ? bias->ptr<const T>() : nullptr;
    const int64_t bias_stride = bias ? bias->strides[0] : 0;
    if (d.Cg == 1 || d.Cg * d.T * d.R * d.S == 0) {
      conv_forward_direct_kernel<T><<<grid_for(output.numel(), kThreads), kThreads, 0, s>>>(
          input.ptr<const T>(), strides_of(input), weight.ptr<const T>(), strides_of(weight), bias_ptr, bias_stride,
          output.ptr<T>(), strides_of(output), d, geometry_of(p), p.fuse_relu);
      MEDKERN_CUDA_CHECK_LAUNCH("conv_forward_direct_kernel");
      return;
    }
    const int64_t TRS = d.T * d.R * d.S, RS = d.R * d.S, PQ = d.P * d.Q, OPQ = d.OD * PQ;
    ConvForwardProblem<T> prob{};
    prob.M = d.N * OPQ; prob.N = d.Kg; prob.K = d.Cg * TRS; prob.groups = int(d.groups);
    prob.a = {input.ptr<const T>(), strides_of(input), d.D, d.H, d.W, d.Cg, OPQ, PQ, d.Q, geometry_of(p),
              FastDivmod(TRS), FastDivmod(RS), FastDivmod(d.S)};
    prob.b = {weight.ptr<const T>(), strides_of(weight), d.Kg, FastDivmod(TRS), FastDivmod(RS), FastDivmod(d.S)};
    prob.y = output.ptr<T>(); prob.sy = strides_of(output); prob.OPQ = OPQ; prob.PQ = PQ; prob.Q = d.Q;
    prob.Kg = d.Kg; prob.bias = bias_ptr; prob.bias_stride = bias_stride; prob.fuse_relu = p.fuse_relu;
    launch_gemm(prob, math_mode_for<T>(allow_tf32), 1, s, "conv_forward (implicit GEMM)");
  });
}

void conv_backward_input(const TensorView& grad_output, const TensorView& weight, const TensorView* bias,
                         const TensorView& grad_input, const ConvParams& p, bool allow_tf32, Stream stream,
                         const TensorView* workspace) {
  if (grad_input.numel() == 0) return;
  DeviceGuard guard(grad_input);
  const ConvDims d = conv_dims(grad_input, weight, grad_output, p);
  const cudaStream_t s = as_cuda_stream(stream);
  if (conv_backward_input_tf32(grad_output, weight, bias, grad_input, p, allow_tf32, workspace, s)) return;
  dispatch_floating(grad_output.dtype, "grad_output", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* bias_ptr = bias ? bias->ptr<const T>() : nullptr;
    const int64_t bias_stride = bias ? bias->strides[0] : 0;
    if (d.Cg == 1 || d.Kg * d.T * d.R * d.S == 0 || grad_output.numel() == 0) {
      conv_backward_input_direct_kernel<T><<<grid_for(grad_input.numel(), kThreads), kThreads, 0, s>>>(
          grad_output.ptr<const T>(), strides_of(grad_output), weight.ptr<const T>(), strides_of(weight), bias_ptr,
          bias_stride, grad_input.ptr<T>(), strides_of(grad_input), d, geometry_of(p));
      MEDKERN_CUDA_CHECK_LAUNCH("conv_backward_input_direct_kernel");
      return;
    }
    const int64_t TRS = d.T * d.R * d.S, RS = d.R * d.S, HW = d.H * d.W, DHW = d.D * HW;
    ConvBackwardInputProblem<T> prob{};
    prob.M = d.N * DHW; prob.N = d.Cg; prob.K = d.Kg * TRS; prob.groups = int(d.groups);
    prob.a = {grad_output.ptr<const T>(), strides_of(grad_output), d.OD, d.P, d.Q, d.Kg, DHW, HW, d.W,
              geometry_of(p), FastDivmod(TRS), FastDivmod(RS), FastDivmod(d.S)};
    prob.b = {weight.ptr<const T>(), strides_of(weight), d.Kg, d.Cg, FastDivmod(TRS), FastDivmod(RS),
              FastDivmod(d.S)};
    prob.dx = grad_input.ptr<T>(); prob.sdx = strides_of(grad_input); prob.DHW = DHW; prob.HW = HW; prob.W = d.W;
    prob.Cg = d.Cg; prob.bias = bias_ptr; prob.bias_stride = bias_stride;
    launch_gemm(prob, math_mode_for<T>(allow_tf32), 1, s, "conv_backward_input (implicit GEMM)");
  });
}

void conv_backward_weight(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                          const ConvParams& p, bool allow_tf32, Stream stream, const TensorView* workspace) {
  if (grad_weight.numel() == 0) return;
  DeviceGuard guard(grad_weight);
  const ConvDims d = conv_dims(input, grad_weight, grad_output, p);
  const cudaStream_t s = as_cuda_stream(stream);
  if (conv_backward_weight_tf32(grad_output, input, grad_weight, p, allow_tf32, workspace, s)) return;
  const int64_t TRS = d.T * d.R * d.S, RS = d.R * d.S, PQ = d.P * d.Q, OPQ = d.OD * PQ;
  MEDKERN_CHECK_VALUE(d.N * OPQ < (int64_t{1} << 31) && d.Cg * TRS < (int64_t{1} << 31),
                      "conv_backward_weight: N*OD*P*Q = ", d.N * OPQ,
                      " exceeds 2^31 - 1, which the CUDA kernel does not support");
  dispatch_floating(grad_output.dtype, "grad_output", [&](auto tag) {
    using T = typename decltype(tag)::type;
    ConvBackwardWeightProblem<T> prob{};
    prob.M = d.Kg; prob.N = d.Cg * TRS; prob.K = d.N * OPQ; prob.groups = int(d.groups);
    prob.a = {grad_output.ptr<const T>(), strides_of(grad_output), d.Kg, FastDivmod(OPQ), FastDivmod(PQ),
              FastDivmod(d.Q)};
    prob.b = {input.ptr<const T>(), strides_of(input), d.D, d.H, d.W, d.Cg, geometry_of(p), FastDivmod(TRS),
              FastDivmod(RS), FastDivmod(d.S), FastDivmod(OPQ), FastDivmod(PQ), FastDivmod(d.Q)};
    prob.dw = grad_weight.ptr<T>(); prob.sdw = strides_of(grad_weight); prob.Kg = d.Kg;
    prob.by_trs = FastDivmod(TRS); prob.by_rs = FastDivmod(RS); prob.by_s = FastDivmod(d.S);
    // Split the long (n,od,p,q) reduction across blocks with atomics; 16-bit outputs would lose
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
    launch_gemm(prob, math_mode_for<T>(allow_tf32), splits, s, "conv_backward_weight (implicit GEMM)");
  });
}

void conv_backward_bias(const TensorView& grad_output, const TensorView& grad_bias, Stream stream) {
  if (grad_bias.numel() == 0) return;
  DeviceGuard guard(grad_bias);
  const cudaStream_t s = as_cuda_stream(stream);
  dispatch_floating(grad_output.dtype, "grad_output", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t OD = grad_output.shape[2], P = grad_output.shape[3], Q = grad_output.shape[4];
    conv_backward_bias_kernel<T><<<static_cast<unsigned>(grad_bias.numel()), kBiasThreads, 0, s>>>(
        grad_output.ptr<const T>(), strides_of(grad_output), grad_output.shape[0], OD, P, Q, FastDivmod(OD * P * Q),
        FastDivmod(P * Q), FastDivmod(Q), grad_bias.ptr<T>(), grad_bias.strides[0]);
    MEDKERN_CUDA_CHECK_LAUNCH("conv_backward_bias_kernel");
  });
}

}  // namespace medkern::cuda
