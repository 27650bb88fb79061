// cuda/conv_tf32.cu — the tensor-core path of float32 convolution (2-D and 3-D) when TF32 is
// allowed (torch's default for cuDNN), groups 1. A 2-D convolution is the depth-1 case of the
// 5-D views conv.cu hands over (one extra divide by 1 per tile row and k-tile, nothing else).
// Operands are first rewritten into a workspace in GEMM-friendly layouts, rounded to TF32 on the
// way (NCDHW -> NDHWC for activations and gradients, KCTRS -> KTRSC / TRSKC for weights) with
// channel counts padded with zeros to multiples of 4 (Cp, Kp), so every tile load is a 16-byte
// copy along channels; then one multistage GEMM (gemm_pipeline.cuh) per op:
//   forward       C[(n,o,p,q)][k]      = sum_{(t,r,s,c)} x[n,d,h,w,c] * w[k,t,r,s,c]
//   grad input    one GEMM per stride phase ((d,h,w) + pad) mod stride: only the taps that reach
//                 that phase, so a strided layer does no work for the stride holes
//                 C[(n,d,h,w)][c] = sum_{(t,r,s,k) of the phase} dy[n,o,p,q,k] * w[t,r,s,k,c]
//   grad weight   C[k][(t,r,s,c)] = sum_{(n,o,p,q)} dy[n,o,p,q,k] * x[n,d,h,w,c], split along
//                 (n,o,p,q) into partial sums in the workspace, added in a fixed order
//                 (deterministic)
// Forward and input gradient are split along their reduction the same way when their tiles alone
// cannot fill the GPU (the deep layers of a volume network at batch 2: a few hundred rows and a
// reduction of thousands), the partial sums reduced in order with the bias (and ReLU) added.
// Everything else (float64, no TF32, 16-bit, groups > 1) stays on conv.cu's generic kernels. The
// input gradient adds an optional bias (the transposed convolution's forward).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/conv_math.h"
#include "cuda/conv_tf32.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/fast_divmod.cuh"
#include "cuda/gemm_pipeline.cuh"
#include "cuda/gemm_tiles.cuh"
#include "medkern/conv.h"

namespace medkern::cuda {
namespace {

using pipeline::kBK;
using pipeline::round_tf32;

// Sizes of one convolution: input (N, C, D, H, W), weight (K, C, T, R, S), output (N, K, Z, P, Q).
struct Shape5 {
  int64_t N, C, D, H, W, K, T, R, S, Z, P, Q;
  int64_t Cp() const { return (C + 3) / 4 * 4; }  // channel counts as stored in the workspace
  int64_t Kp() const { return (K + 3) / 4 * 4; }
  int64_t DHW() const { return D * H * W; }
  int64_t ZPQ() const { return Z * P * Q; }
  int64_t TRS() const { return T * R * S; }
};

Shape5 shape_of(const std::vector<int64_t>& in, const std::vector<int64_t>& wt, const ConvParams& p) {
  Shape5 d{in[0], in[1], in[2], in[3], in[4], wt[0], wt[2], wt[3], wt[4], 0, 0, 0};
  d.Z = (d.D + 2 * p.pad_d - p.dilation_d * (d.T - 1) - 1) / p.stride_d + 1;
  d.P = (d.H + 2 * p.pad_h - p.dilation_h * (d.R - 1) - 1) / p.stride_h + 1;
  d.Q = (d.W + 2 * p.pad_w - p.dilation_w * (d.S - 1) - 1) / p.stride_w + 1;
  return d;
}

constexpr int64_t kAlign = 256;
int64_t aligned(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }
constexpr int64_t kInt32Limit = int64_t{1} << 31;

// ---- layout conversions (rounding to TF32) ----------------------------------------------------
// The voxel (d, h, w) of flat index pix < D*H*W, through 64-bit strides.
__device__ __forceinline__ int64_t voxel_offset(int64_t pix, int H, int W, int64_t sd, int64_t sh, int64_t sw) {
  const int64_t dh = pix / W, w = pix - dh * W, d = dh / H, h = dh - d * H;
  return d * sd + h * sh + w * sw;
}

// NCDHW with any strides -> NDHWC contiguous with Cp >= C channels (the extra ones zero); a
// 32 x 32 (channels x voxels) tile per block so both the reads (along voxels) and the writes
// (along channels) are coalesced.
__global__ void to_channels_last_tf32_kernel(const float* __restrict__ src, int64_t sn, int64_t sc, int64_t sd,
                                             int64_t sh, int64_t sw, int C, int Cp, int D, int H, int W,
                                             float* __restrict__ dst) {
  __shared__ float tile[32][33];
  const int64_t DHW = int64_t(D) * H * W;
  const int64_t n = blockIdx.z;
  const int64_t pix0 = int64_t(blockIdx.x) * 32;
  const int c0 = blockIdx.y * 32;
  {
    const int64_t pix = pix0 + threadIdx.x;
    const int64_t at = pix < DHW ? voxel_offset(pix, H, W, sd, sh, sw) : 0;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
      const int c = c0 + i;
      if (pix < DHW) tile[i][threadIdx.x] = c < C ? round_tf32(src[n * sn + c * sc + at]) : 0.f;
    }
  }
  __syncthreads();
  const int c = c0 + threadIdx.x;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t pix = pix0 + i;
    if (c < Cp && pix < DHW) dst[(n * DHW + pix) * Cp + c] = tile[threadIdx.x][i];
  }
}

// Few channels (Cp <= 16: grayscale / RGB stems, single-channel MR volumes): one thread per voxel
// reads its C values (the warp's reads coalesce along the voxels) and writes the Cp-wide row as
// 16-byte stores; the 32 x 32 tile above would leave most of its threads idle.
__global__ void to_channels_last_tf32_narrow_kernel(const float* __restrict__ src, int64_t sn, int64_t sc,
                                                    int64_t sd, int64_t sh, int64_t sw, int C, int Cp, int H, int W,
                                                    int64_t DHW, int64_t voxels, float* __restrict__ dst) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < voxels; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / DHW, pix = i - n * DHW;
    const float* from = src + n * sn + voxel_offset(pix, H, W, sd, sh, sw);
    float4* to = reinterpret_cast<float4*>(dst + i * Cp);  // Cp % 4 == 0, workspace 256-byte aligned
    for (int c0 = 0; c0 < Cp; c0 += 4) {
      float v[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = c0 + j < C ? round_tf32(from[(c0 + j) * sc]) : 0.f;
      to[c0 / 4] = make_float4(v[0], v[1], v[2], v[3]);
    }
  }
}

void to_channels_last_tf32(const TensorView& t, int64_t Cp, float* dst, cudaStream_t stream) {
  const int64_t N = t.shape[0], C = t.shape[1], D = t.shape[2], H = t.shape[3], W = t.shape[4];
  const int64_t DHW = D * H * W;
  if (Cp <= 16) {
    const int64_t voxels = N * DHW;
    to_channels_last_tf32_narrow_kernel<<<grid_for(voxels, 256), 256, 0, stream>>>(
        t.ptr<const float>(), t.strides[0], t.strides[1], t.strides[2], t.strides[3], t.strides[4], int(C), int(Cp),
        int(H), int(W), DHW, voxels, dst);
    MEDKERN_CUDA_CHECK_LAUNCH("to_channels_last_tf32_narrow_kernel");
    return;
  }
  const dim3 grid(static_cast<unsigned>((DHW + 31) / 32), static_cast<unsigned>((Cp + 31) / 32),
                  static_cast<unsigned>(N));
  to_channels_last_tf32_kernel<<<grid, dim3(32, 8), 0, stream>>>(t.ptr<const float>(), t.strides[0], t.strides[1],
                                                                   t.strides[2], t.strides[3], t.strides[4], int(C),
                                                                   int(Cp), int(D), int(H), int(W), dst);
  MEDKERN_CUDA_CHECK_LAUNCH("to_channels_last_tf32_kernel");
}

// Weight (K, C, T, R, S) with any strides -> KTRSC (forward) or TRSKC (input gradient),
// contiguous, with Kp >= K and Cp >= C (the padding zero).
__global__ void reorder_weight_tf32_kernel(const float* __restrict__ w, int64_t s0, int64_t s1, int64_t s2,
                                           int64_t s3, int64_t s4, int K, int C, int Kp, int Cp, int T, int R, int S,
                                           bool trskc, float* __restrict__ dst) {
  const int64_t TRS = int64_t(T) * R * S;
  const int64_t total = int64_t(Kp) * Cp * TRS;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    // i walks the destination in KTRSC order; TRSKC is the same tuple placed differently
    const int c = int(i % Cp);
    const int64_t rest = i / Cp;
    const int64_t trs = rest % TRS;
    const int k = int(rest / TRS);
    const int s = int(trs % S), r = int((trs / S) % R), t = int(trs / (int64_t(S) * R));
    const int64_t out = trskc ? (trs * Kp + k) * Cp + c : i;
    dst[out] = (k < K && c < C) ? round_tf32(w[k * s0 + c * s1 + t * s2 + r * s3 + s * s4]) : 0.f;
  }
}

void reorder_weight_tf32(const TensorView& w, int64_t Kp, int64_t Cp, bool trskc, float* dst, cudaStream_t stream) {
  const int64_t total = Kp * Cp * w.shape[2] * w.shape[3] * w.shape[4];
  reorder_weight_tf32_kernel<<<grid_for(total, 256), 256, 0, stream>>>(
      w.ptr<const float>(), w.strides[0], w.strides[1], w.strides[2], w.strides[3], w.strides[4], int(w.shape[0]),
      int(w.shape[1]), int(Kp), int(Cp), int(w.shape[2]), int(w.shape[3]), int(w.shape[4]), trskc, dst);
  MEDKERN_CUDA_CHECK_LAUNCH("reorder_weight_tf32_kernel");
}

// ---- forward ---------------------------------------------------------------------------------
struct PlainJob {
  int64_t M, k_begin, k_end;
};

// A slice of a split reduction: its rows, its part of the reduction and its index.
struct SliceJob {
  int64_t M, k_begin, k_end;
  int slice;
};

struct FpropProblem {
  using Job = SliceJob;
  int64_t M, N, K;  // N*Z*P*Q, K (output channels), T*R*S*C
  int64_t k_chunk;  // reduction per slice (K when unsplit)
  float* partial;   // [slice][N][M] when split, else null (then the epilogue writes y)

  struct ASide {  // im2col of NDHWC x: row (n,o,p,q), k = (t,r,s,c) with c fastest
    static constexpr bool kKMajor = true;
    const float* x;
    int D, H, W, C, P, Q, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w;
    int64_t ZPQ;
    FastDivmod by_c, by_s, by_r;  // the k split, once per k-tile per thread: multiply-shift, no division
    struct RowCtx { const float* img; int d0, h0, w0; };
    struct KCtx { int c, dd, dh, dw; };
    __device__ RowCtx row_ctx(int64_t m, const Job&) const {
      const int64_t n = m / ZPQ;
      const int opq = int(m - n * ZPQ), o = opq / (P * Q), pq = opq - o * (P * Q), p = pq / Q, q = pq - p * Q;
      return {x + n * (int64_t(D) * H * W * C), int(conv_input_coord(o, 0, stride_d, pad_d, dil_d)),
              int(conv_input_coord(p, 0, stride_h, pad_h, dil_h)), int(conv_input_coord(q, 0, stride_w, pad_w, dil_w))};
    }
    __device__ KCtx k_ctx(int64_t k, const Job&) const {
      uint32_t trs, c, tr, s, t, r;
      by_c.divmod(static_cast<uint32_t>(k), trs, c);
      by_s.divmod(trs, tr, s);
      by_r.divmod(tr, t, r);
      return {int(c), int(conv_input_coord(0, t, stride_d, 0, dil_d)), int(conv_input_coord(0, r, stride_h, 0, dil_h)),
              int(conv_input_coord(0, s, stride_w, 0, dil_w))};
    }
    __device__ const float* src(const RowCtx& rc, const KCtx& kc) const {
      const int d = rc.d0 + kc.dd, h = rc.h0 + kc.dh, w = rc.w0 + kc.dw;
      if (unsigned(d) >= unsigned(D) || unsigned(h) >= unsigned(H) || unsigned(w) >= unsigned(W)) return nullptr;
      return rc.img + ((d * H + h) * W + w) * C + kc.c;  // D*H*W*C < 2^31 (checked)
    }
    __device__ const float* base() const { return x; }
  } a;

  struct BSide {  // KTRSC weights: row k is contiguous along (t,r,s,c)
    static constexpr bool kKMajor = true;
    const float* w;
    int64_t K;
    struct RowCtx { const float* row; };
    struct KCtx { int64_t k; };
    __device__ RowCtx row_ctx(int64_t n, const Job&) const { return {w + n * K}; }
    __device__ KCtx k_ctx(int64_t k, const Job&) const { return {k}; }
    __device__ const float* src(const RowCtx& rc, const KCtx& kc) const { return rc.row + kc.k; }
    __device__ const float* base() const { return w; }
  } b;

  float* y;
  int64_t sy_n, sy_c, sy_d, sy_h, sy_w, ZPQ;
  int P, Q;
  const float* bias;
  int64_t bias_stride;
  bool fuse_relu;

  __device__ Job job(int z) const {
    const int64_t end = (int64_t(z) + 1) * k_chunk < K ? (int64_t(z) + 1) * k_chunk : K;
    const int64_t begin = int64_t(z) * k_chunk < end ? int64_t(z) * k_chunk : end;
    return {M, begin, end, z};
  }
  struct OutRow { float* ptr; };
  __device__ OutRow out_row(int64_t m, const Job& j) const {
    if (partial) return {partial + int64_t(j.slice) * N * M + m};
    const int64_t n = m / ZPQ;
    const int opq = int(m - n * ZPQ), o = opq / (P * Q), pq = opq - o * (P * Q), p = pq / Q, q = pq - p * Q;
    return {y + n * sy_n + o * sy_d + p * sy_h + q * sy_w};
  }
  __device__ void store(const OutRow& o, int64_t k, float v) const {
    if (partial) {
      o.ptr[k * M] = v;
      return;
    }
    if (bias) v += bias[k * bias_stride];
    if (fuse_relu) v = v > 0.f ? v : 0.f;
    o.ptr[k * sy_c] = v;
  }
};

// ---- input gradient, one stride phase per grid slice ------------------------------------------
struct PhaseJob {
  int64_t M, k_begin, k_end;
  int Dph, Hph, Wph, d_first, h_first, w_first, base_d, base_h, base_w, ad, ah, aw, slice;
  FastDivmod by_sv, by_rv;
};

constexpr int kMaxDgradStride = 8;  // per axis; larger strides take the generic kernel

struct DgradProblem {
  using Job = PhaseJob;
  int64_t N;  // C (input channels)
  int batch, D, H, W, Z, P, Q, K, T, R, S, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w;
  FastDivmod by_k;                    // k -> (tap, output channel)
  FastDivmod by_sv[kMaxDgradStride];  // taps along w of phase column aw
  FastDivmod by_rv[kMaxDgradStride];  // taps along h of phase row ah
  int slices;                         // of each phase's reduction (1: unsplit)
  float* partial;                     // [slice][Cp][N*D*H*W] when split, else null

  // Phase z = (ad, ah, aw): voxels with (d + pad_d) % stride_d == ad, (h + pad_h) % stride_h == ah,
  // (w + pad_w) % stride_w == aw. They receive taps r = ah + rv * stride_h (rv < Rv) from output
  // row p = base_h + ih - rv, where h = h_first + ih * stride_h (and the same along d and w).
  __device__ Job job(int zz) const {
    Job j{};
    const int z = zz / slices;
    j.slice = zz - z * slices;
    const int hw = stride_h * stride_w;
    j.ad = z / hw;
    const int rest = z - j.ad * hw;
    j.ah = rest / stride_w;
    j.aw = rest - j.ah * stride_w;
    const StridePhase pd = stride_phase(j.ad, D, T, stride_d, pad_d);
    const StridePhase ph = stride_phase(j.ah, H, R, stride_h, pad_h);
    const StridePhase pw = stride_phase(j.aw, W, S, stride_w, pad_w);
    j.d_first = int(pd.first); j.Dph = int(pd.count); j.base_d = int(pd.base);
    j.h_first = int(ph.first); j.Hph = int(ph.count); j.base_h = int(ph.base);
    j.w_first = int(pw.first); j.Wph = int(pw.count); j.base_w = int(pw.base);
    j.by_sv = by_sv[j.aw];
    j.by_rv = by_rv[j.ah];
    j.M = int64_t(batch) * j.Dph * j.Hph * j.Wph;
    const int64_t total = pd.taps * ph.taps * pw.taps * K;
    // each slice a whole number of k-tiles; trailing slices may be empty (they store zeros)
    const int64_t chunk = ((total + slices - 1) / slices + kBK - 1) / kBK * kBK;
    j.k_begin = j.slice * chunk < total ? j.slice * chunk : total;
    j.k_end = j.k_begin + chunk < total ? j.k_begin + chunk : total;
    return j;
  }

  struct ASide {  // gathers NDHWC dy: row (n, id, ih, iw), k = (tv, rv, sv, k) with k fastest
    static constexpr bool kKMajor = true;
    const float* dy;
    int Z, P, Q, K;
    FastDivmod by_k;
    struct RowCtx { const float* img; int o0, p0, q0; };
    struct KCtx { int k, tv, rv, sv; };
    __device__ RowCtx row_ctx(int64_t m, const Job& j) const {
      const int64_t per_img = int64_t(j.Dph) * j.Hph * j.Wph;
      const int64_t n = m / per_img;
      const int rem = int(m - n * per_img), plane = j.Hph * j.Wph, id = rem / plane, hw = rem - id * plane,
                ih = hw / j.Wph, iw = hw - ih * j.Wph;
      return {dy + n * (int64_t(Z) * P * Q * K), j.base_d + id, j.base_h + ih, j.base_w + iw};
    }
    __device__ KCtx k_ctx(int64_t k, const Job& j) const {
      uint32_t tap, kout, tr, sv, tv, rv;
      by_k.divmod(static_cast<uint32_t>(k), tap, kout);
      j.by_sv.divmod(tap, tr, sv);
      j.by_rv.divmod(tr, tv, rv);
      return {int(kout), int(tv), int(rv), int(sv)};
    }
    __device__ const float* src(const RowCtx& rc, const KCtx& kc) const {
      const int o = rc.o0 - kc.tv, p = rc.p0 - kc.rv, q = rc.q0 - kc.sv;
      if (unsigned(o) >= unsigned(Z) || unsigned(p) >= unsigned(P) || unsigned(q) >= unsigned(Q)) return nullptr;
      return rc.img + ((o * P + p) * Q + q) * K + kc.k;  // Z*P*Q*K < 2^31 (checked)
    }
    __device__ const float* base() const { return dy; }
  } a;

  struct BSide {  // TRSKC weights: B[(tv,rv,sv,k)][c], contiguous along c (this GEMM's columns)
    static constexpr bool kKMajor = false;
    const float* w;
    int C, K, R, S, stride_d, stride_h, stride_w;
    FastDivmod by_k;
    struct RowCtx { int c; };
    struct KCtx { int64_t off; };
    __device__ RowCtx row_ctx(int64_t c, const Job&) const { return {int(c)}; }
    __device__ KCtx k_ctx(int64_t k, const Job& j) const {
      uint32_t tap, kout, tr, sv, tv, rv;
      by_k.divmod(static_cast<uint32_t>(k), tap, kout);
      j.by_sv.divmod(tap, tr, sv);
      j.by_rv.divmod(tr, tv, rv);
      const int t = j.ad + int(tv) * stride_d, r = j.ah + int(rv) * stride_h, s = j.aw + int(sv) * stride_w;
      return {(((int64_t(t) * R + r) * S + s) * K + kout) * C};
    }
    __device__ const float* src(const RowCtx& rc, const KCtx& kc) const { return w + kc.off + rc.c; }
    __device__ const float* base() const { return w; }
  } b;

  float* dx;
  int64_t sdx_n, sdx_c, sdx_d, sdx_h, sdx_w;
  int64_t voxels;  // N*D*H*W
  int C;  // real input channels (N, the GEMM's columns, is Cp)
  const float* bias;  // per input channel, or null (the transposed convolution's forward)
  int64_t bias_stride;
  struct OutRow { float* ptr; };
  __device__ OutRow out_row(int64_t m, const Job& j) const {
    const int64_t per_img = int64_t(j.Dph) * j.Hph * j.Wph;
    const int64_t n = m / per_img;
    const int rem = int(m - n * per_img), plane = j.Hph * j.Wph, id = rem / plane, hw = rem - id * plane,
              ih = hw / j.Wph, iw = hw - ih * j.Wph;
    const int64_t d = j.d_first + int64_t(id) * stride_d, h = j.h_first + int64_t(ih) * stride_h,
                  w = j.w_first + int64_t(iw) * stride_w;
    if (partial) return {partial + int64_t(j.slice) * N * voxels + ((n * D + d) * H + h) * W + w};
    return {dx + n * sdx_n + d * sdx_d + h * sdx_h + w * sdx_w};
  }
  __device__ void store(const OutRow& o, int64_t c, float v) const {
    if (c >= C) return;
    if (partial) o.ptr[c * voxels] = v;
    else o.ptr[c * sdx_c] = bias ? v + bias[c * bias_stride] : v;
  }
};

// ---- weight gradient: split-K partial sums ----------------------------------------------------
struct WgradProblem {
  using Job = PlainJob;
  int64_t M, N, K, k_chunk;  // K (output channels), T*R*S*C, N*Z*P*Q, reduction per slice

  __device__ Job job(int z) const {
    const int64_t begin = int64_t(z) * k_chunk;
    return {M, begin, begin + k_chunk < K ? begin + k_chunk : K};
  }

  struct ASide {  // A[k][j] = dy[j, k] (NDHWC dy, rows = output channels, contiguous)
    static constexpr bool kKMajor = false;
    const float* dy;
    int64_t K;
    struct RowCtx { int64_t k; };
    struct KCtx { int64_t off; };
    __device__ RowCtx row_ctx(int64_t k, const Job&) const { return {k}; }
    __device__ KCtx k_ctx(int64_t j, const Job&) const { return {j * K}; }
    __device__ const float* src(const RowCtx& rc, const KCtx& kc) const { return dy + kc.off + rc.k; }
    __device__ const float* base() const { return dy; }
  } a;

  struct BSide {  // B[j][(t,r,s,c)] = x[n, d, h, w, c] of NDHWC x, contiguous along c
    static constexpr bool kKMajor = false;
    const float* x;
    int D, H, W, C, R, S, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w;
    FastDivmod by_zpq, by_pq, by_q;
    struct RowCtx { int c, dd, dh, dw; };
    struct KCtx { const float* img; int d0, h0, w0; };
    __device__ RowCtx row_ctx(int64_t col, const Job&) const {
      const int cc = int(col), trs = cc / C, c = cc - trs * C, tr = trs / S, s = trs - tr * S, t = tr / R,
                r = tr - t * R;
      return {c, int(conv_input_coord(0, t, stride_d, 0, dil_d)), int(conv_input_coord(0, r, stride_h, 0, dil_h)),
              int(conv_input_coord(0, s, stride_w, 0, dil_w))};
    }
    __device__ KCtx k_ctx(int64_t j, const Job&) const {
      uint32_t n, opq, o, pq, p, q;
      by_zpq.divmod(static_cast<uint32_t>(j), n, opq);
      by_pq.divmod(opq, o, pq);
      by_q.divmod(pq, p, q);
      return {x + int64_t(n) * (int64_t(D) * H * W * C), int(conv_input_coord(o, 0, stride_d, pad_d, dil_d)),
              int(conv_input_coord(p, 0, stride_h, pad_h, dil_h)), int(conv_input_coord(q, 0, stride_w, pad_w, dil_w))};
    }
    __device__ const float* src(const RowCtx& rc, const KCtx& kc) const {
      const int d = kc.d0 + rc.dd, h = kc.h0 + rc.dh, w = kc.w0 + rc.dw;
      if (unsigned(d) >= unsigned(D) || unsigned(h) >= unsigned(H) || unsigned(w) >= unsigned(W)) return nullptr;
      return kc.img + ((d * H + h) * W + w) * C + rc.c;
    }
    __device__ const float* base() const { return x; }
  } b;

  float* partial;  // [slice][N][M]: m contiguous, so the epilogue's stores coalesce
  struct OutRow { float* ptr; };
  __device__ OutRow out_row(int64_t m, const Job& j) const { return {partial + (j.k_begin / k_chunk) * N * M + m}; }
  __device__ void store(const OutRow& o, int64_t n, float v) const { o.ptr[n * M] = v; }
};

// dw[k][c][t][r][s] = sum over slices (in order) of partial[slice][trs*Cp + c][k] (rows of Kp).
__global__ void wgrad_reduce_kernel(const float* __restrict__ partial, int slices, int K, int C, int Kp, int Cp,
                                    int T, int R, int S, float* __restrict__ dw, int64_t s0, int64_t s1, int64_t s2,
                                    int64_t s3, int64_t s4) {
  const int64_t TRS = int64_t(T) * R * S;
  const int64_t total = TRS * C * K, slice = TRS * Cp * Kp;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int k = int(i % K);  // k fastest: the slice reads coalesce
    const int64_t rest = i / K;
    const int c = int(rest % C);
    const int64_t trs = rest / C;
    const int s = int(trs % S), r = int((trs / S) % R), t = int(trs / (int64_t(S) * R));
    const float* src = partial + (trs * Cp + c) * Kp + k;
    float acc = 0.f;
    for (int z = 0; z < slices; ++z) acc += src[z * slice];
    dw[k * s0 + c * s1 + t * s2 + r * s3 + s * s4] = acc;
  }
}

// y[n][k][o][p][q] = sum over slices (in order) of partial[slice][k][m], m = (n,o,p,q), plus bias,
// through ReLU when fused; m fastest, so the reads and (for a contiguous y) the writes coalesce.
__global__ void fprop_split_reduce_kernel(const float* __restrict__ partial, int slices, int64_t M, int64_t K,
                                          int64_t ZPQ, int P, int Q, const float* __restrict__ bias,
                                          int64_t bias_stride, bool fuse_relu, float* __restrict__ y, int64_t sy_n,
                                          int64_t sy_c, int64_t sy_d, int64_t sy_h, int64_t sy_w) {
  const int64_t total = M * K;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i / M, m = i - k * M;
    float v = 0.f;
    for (int z = 0; z < slices; ++z) v += partial[z * total + i];
    if (bias) v += bias[k * bias_stride];
    if (fuse_relu) v = v > 0.f ? v : 0.f;
    const int64_t n = m / ZPQ;
    const int opq = int(m - n * ZPQ), o = opq / (P * Q), pq = opq - o * (P * Q), p = pq / Q, q = pq - p * Q;
    y[n * sy_n + k * sy_c + o * sy_d + p * sy_h + q * sy_w] = v;
  }
}

// dx[n][c][d][h][w] = sum over slices (in order) of partial[slice][c][v], v = (n,d,h,w), plus bias.
__global__ void dgrad_split_reduce_kernel(const float* __restrict__ partial, int slices, int64_t voxels, int C,
                                          int Cp, int D, int H, int W, const float* __restrict__ bias,
                                          int64_t bias_stride, float* __restrict__ dx, int64_t s_n, int64_t s_c,
                                          int64_t s_d, int64_t s_h, int64_t s_w) {
  const int64_t total = voxels * C, slice = voxels * Cp;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i / voxels, v = i - c * voxels;
    float acc = 0.f;
    for (int z = 0; z < slices; ++z) acc += partial[z * slice + i];
    if (bias) acc += bias[c * bias_stride];
    const int64_t w = v % W, dh = v / W, h = dh % H, nd = dh / H, d = nd % D, n = nd / D;
    dx[n * s_n + c * s_c + d * s_d + h * s_h + w * s_w] = acc;
  }
}

// ---- tile configurations and planning ---------------------------------------------------------
using CfgL = pipeline::TileConfig<128, 128, 2, 4, 3>;  // big problems
using CfgT = pipeline::TileConfig<128, 64, 4, 2, 3>;   // 64 or fewer columns
using CfgW = pipeline::TileConfig<64, 128, 2, 4, 3>;   // 64 or fewer rows (weight gradients)
using CfgS = pipeline::TileConfig<64, 64, 2, 2, 3>;    // too few big tiles to fill the GPU

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows/cols tiling for a problem of (rows, cols) over `slices` grid slices; 'T' uses BN=64.
template <class P>
void launch_rows_cols(const P& prob, int64_t rows, int64_t cols, int slices, cudaStream_t stream, const char* name) {
  const int64_t sms = multiprocessor_count();
  auto grid_of = [&](int bm, int bn) {
    return dim3(static_cast<unsigned>(ceil_div(rows, bm)), static_cast<unsigned>(ceil_div(cols, bn)),
                static_cast<unsigned>(slices));
  };
  auto blocks = [&](int bm, int bn) { return ceil_div(rows, bm) * ceil_div(cols, bn) * slices; };
  if (cols <= 64) {
    if (blocks(128, 64) >= sms && pipeline::fits_device<P, CfgT>())
      return pipeline::launch_tf32_gemm<P, CfgT>(prob, grid_of(128, 64), stream, name);
  } else if (blocks(128, 128) >= sms && pipeline::fits_device<P, CfgL>()) {
    return pipeline::launch_tf32_gemm<P, CfgL>(prob, grid_of(128, 128), stream, name);
  }
  pipeline::launch_tf32_gemm<P, CfgS>(prob, grid_of(64, 64), stream, name);
}

// Slices of the weight gradient's (n,o,p,q) reduction: enough blocks for about two waves, each
// slice at least 8 k-tiles long.
int wgrad_slices(int64_t tiles, int64_t reduction) {
  const int64_t target = 2 * int64_t(multiprocessor_count());
  if (tiles >= target) return 1;
  int64_t slices = ceil_div(target, tiles);
  slices = std::min<int64_t>(slices, std::max<int64_t>(1, reduction / (8 * kBK)));
  return static_cast<int>(std::clamp<int64_t>(slices, 1, 1024));
}

// Slices of a forward or input-gradient reduction of `reduction` values whose (rows, cols) GEMM
// per phase has too few tiles for the GPU even at 64x64: enough 64x64 blocks for about two waves,
// each slice at least 8 k-tiles long. 1: unsplit (launch_rows_cols picks the tiles).
int split_slices(int64_t rows, int64_t cols, int64_t phases, int64_t reduction) {
  const int64_t sms = multiprocessor_count();
  const int64_t tiles = ceil_div(rows, 64) * ceil_div(cols, 64) * phases;
  if (tiles >= sms) return 1;
  const int64_t slices = std::min<int64_t>(ceil_div(2 * sms, tiles), reduction / (8 * kBK));
  return static_cast<int>(std::clamp<int64_t>(slices, 1, 64));
}
int fprop_slices(const Shape5& d) { return split_slices(d.N * d.ZPQ(), d.K, 1, d.TRS() * d.Cp()); }
int dgrad_slices(const Shape5& d, const ConvParams& p) {
  const int64_t rows = d.N * ceil_div(d.D, p.stride_d) * ceil_div(d.H, p.stride_h) * ceil_div(d.W, p.stride_w);
  // the longest phase's reduction: ceil(T / stride) x ... taps of Kp channels
  const int64_t taps = ceil_div(d.T, p.stride_d) * ceil_div(d.R, p.stride_h) * ceil_div(d.S, p.stride_w);
  return split_slices(rows, d.Cp(), p.stride_d * p.stride_h * p.stride_w, taps * d.Kp());
}

struct WgradPlan {
  int64_t tiles, slices, k_chunk;
  bool wide;  // 128-row tiles
};
WgradPlan wgrad_plan(const Shape5& d) {
  WgradPlan plan{};
  plan.wide = d.Kp() > 64 && pipeline::fits_device<WgradProblem, CfgL>();
  const int64_t bm = plan.wide ? 128 : 64, bn = 128;
  const int64_t reduction = d.N * d.ZPQ();
  plan.tiles = ceil_div(d.Kp(), bm) * ceil_div(d.TRS() * d.Cp(), bn);
  plan.slices = wgrad_slices(plan.tiles, reduction);
  plan.k_chunk = ceil_div(ceil_div(reduction, plan.slices), kBK) * kBK;
  plan.slices = ceil_div(reduction, plan.k_chunk);
  return plan;
}

// Whether the TF32 path takes this convolution (5-D shapes as for conv_output_shape).
bool tf32_path_applies(ConvOp op, const Shape5& d, const ConvParams& p) {
  if (p.groups != 1) return false;
  if (d.N <= 0 || d.C <= 0 || d.K <= 0 || d.D <= 0 || d.H <= 0 || d.W <= 0 || d.Z <= 0 || d.P <= 0 || d.Q <= 0)
    return false;
  if (d.N > 65535 || d.DHW() * d.Cp() >= kInt32Limit || d.ZPQ() * d.Kp() >= kInt32Limit ||
      d.TRS() * d.Cp() * d.Kp() >= kInt32Limit)
    return false;
  if (op == ConvOp::BackwardInput &&
      (p.dilation_d != 1 || p.dilation_h != 1 || p.dilation_w != 1 || p.stride_d > kMaxDgradStride ||
       p.stride_h > kMaxDgradStride || p.stride_w > kMaxDgradStride))
    return false;
  if (op == ConvOp::BackwardWeight && d.N * d.ZPQ() >= kInt32Limit) return false;
  // grid.x of the GEMMs and the layout conversions, grid.y (column tiles of 64 at the smallest)
  constexpr int64_t kGridY = 65535;
  if (ceil_div(d.K, 64) > kGridY || ceil_div(d.TRS() * d.Cp(), 64) > kGridY || ceil_div(d.Cp(), 32) > kGridY ||
      ceil_div(d.Kp(), 32) > kGridY)
    return false;
  return compute_capability_major() >= 8;  // mma.sync TF32 and cp.async
}

// Where one op keeps its operand copies in the workspace (byte offsets, each region 256-aligned;
// -1: the op has no such region) and how many bytes it needs. The only statement of the layout:
// the size query and the ops both read it. `slices`: the op's split of its reduction
// (fprop_slices, dgrad_slices, wgrad_plan).
struct WorkspaceLayout {
  int64_t x = -1, dy = -1, w = -1, partial = -1, bytes = 0;
};
WorkspaceLayout workspace_layout(ConvOp op, const Shape5& d, int64_t slices) {
  WorkspaceLayout l;
  auto take = [&](int64_t floats) {
    const int64_t at = l.bytes;
    l.bytes += aligned(floats * int64_t(sizeof(float)));
    return at;
  };
  switch (op) {
    case ConvOp::Forward:
      l.x = take(d.N * d.DHW() * d.Cp());
      l.w = take(d.Kp() * d.TRS() * d.Cp());
      if (slices > 1) l.partial = take(slices * d.N * d.ZPQ() * d.K);
      break;
    case ConvOp::BackwardInput:
      l.dy = take(d.N * d.ZPQ() * d.Kp());
      l.w = take(d.Kp() * d.TRS() * d.Cp());
      if (slices > 1) l.partial = take(slices * d.N * d.DHW() * d.Cp());
      break;
    case ConvOp::BackwardWeight:
      l.dy = take(d.N * d.ZPQ() * d.Kp());
      l.x = take(d.N * d.DHW() * d.Cp());
      l.partial = take(slices * d.Kp() * d.TRS() * d.Cp());
      break;
  }
  return l;
}

float* region(const TensorView& workspace, int64_t offset) {
  return reinterpret_cast<float*>(static_cast<char*>(workspace.data) + offset);
}

Shape5 shape_from_views(const TensorView& x_like, const TensorView& w_like, const TensorView& y_like) {
  return {x_like.shape[0], x_like.shape[1], x_like.shape[2], x_like.shape[3], x_like.shape[4], w_like.shape[0],
          w_like.shape[2], w_like.shape[3], w_like.shape[4], y_like.shape[2], y_like.shape[3], y_like.shape[4]};
}

// Whether the op may take the TF32 path (then the caller checks the workspace holds its layout).
bool usable(ConvOp op, const Shape5& d, const ConvParams& p, DType dtype, bool allow_tf32,
            const TensorView* workspace) {
  if (dtype != DType::Float32 || !allow_tf32 || workspace == nullptr) return false;
  if (!tf32_path_applies(op, d, p)) return false;
  // 16-byte copies read from the workspace: its start must be 16-byte aligned (torch's allocator
  // gives 512; a sliced buffer might not)
  return reinterpret_cast<std::uintptr_t>(workspace->data) % 16 == 0;
}

bool holds(const TensorView& workspace, const WorkspaceLayout& layout) {
  return workspace.numel() * int64_t(dtype_size(workspace.dtype)) >= layout.bytes;
}

int64_t slices_of(ConvOp op, const Shape5& d, const ConvParams& p) {
  switch (op) {
    case ConvOp::Forward: return fprop_slices(d);
    case ConvOp::BackwardInput: return dgrad_slices(d, p);
    case ConvOp::BackwardWeight: return wgrad_plan(d).slices;
  }
  return 1;
}

}  // namespace

int64_t conv_tf32_workspace_bytes(ConvOp op, const std::vector<int64_t>& volume_input_shape,
                                  const std::vector<int64_t>& volume_weight_shape, const ConvParams& p, DType dtype,
                                  bool allow_tf32, int device_index) {
  if (dtype != DType::Float32 || !allow_tf32 || volume_input_shape.size() != 5 || volume_weight_shape.size() != 5)
    return 0;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();  // no usable GPU: the path cannot run, and the sticky error is cleared
    return 0;
  }
  TensorView on_device;  // DeviceGuard takes a view; only its device matters here
  on_device.device.type = DeviceType::CUDA;
  on_device.device.index = device_index >= 0 ? device_index : 0;
  if (device_index < 0) MEDKERN_CUDA_CHECK(cudaGetDevice(&on_device.device.index));
  DeviceGuard guard(on_device);
  const Shape5 d = shape_of(volume_input_shape, volume_weight_shape, p);
  if (!tf32_path_applies(op, d, p)) return 0;
  return workspace_layout(op, d, slices_of(op, d, p)).bytes;
}

bool conv_forward_tf32(const TensorView& input, const TensorView& weight, const TensorView* bias,
                       const TensorView& output, const ConvParams& p, bool allow_tf32, const TensorView* workspace,
                       cudaStream_t stream) {
  const Shape5 d = shape_from_views(input, weight, output);
  if (!usable(ConvOp::Forward, d, p, input.dtype, allow_tf32, workspace)) return false;
  const int slices = fprop_slices(d);
  const WorkspaceLayout layout = workspace_layout(ConvOp::Forward, d, slices);
  if (!holds(*workspace, layout)) return false;
  float* x_cl = region(*workspace, layout.x);
  float* w_ktrsc = region(*workspace, layout.w);
  to_channels_last_tf32(input, d.Cp(), x_cl, stream);
  reorder_weight_tf32(weight, d.K, d.Cp(), false, w_ktrsc, stream);

  FpropProblem prob{};
  prob.M = d.N * d.ZPQ();
  prob.N = d.K;
  prob.K = d.TRS() * d.Cp();
  prob.k_chunk = slices > 1 ? ceil_div(ceil_div(prob.K, slices), kBK) * kBK : prob.K;
  prob.partial = slices > 1 ? region(*workspace, layout.partial) : nullptr;
  prob.a = {x_cl, int(d.D), int(d.H), int(d.W), int(d.Cp()), int(d.P), int(d.Q), int(p.stride_d), int(p.stride_h),
            int(p.stride_w), int(p.pad_d), int(p.pad_h), int(p.pad_w), int(p.dilation_d), int(p.dilation_h),
            int(p.dilation_w), d.ZPQ(), FastDivmod(d.Cp()), FastDivmod(d.S), FastDivmod(d.R)};
  prob.b = {w_ktrsc, prob.K};
  prob.y = output.ptr<float>();
  prob.sy_n = output.strides[0]; prob.sy_c = output.strides[1]; prob.sy_d = output.strides[2];
  prob.sy_h = output.strides[3]; prob.sy_w = output.strides[4];
  prob.ZPQ = d.ZPQ();
  prob.P = int(d.P);
  prob.Q = int(d.Q);
  prob.bias = bias ? bias->ptr<const float>() : nullptr;
  prob.bias_stride = bias ? bias->strides[0] : 0;
  prob.fuse_relu = p.fuse_relu;
  if (slices == 1) {
    launch_rows_cols(prob, prob.M, prob.N, 1, stream, "conv_forward (TF32 pipeline)");
    return true;
  }
  const int used = int(ceil_div(prob.K, prob.k_chunk));  // k_chunk's rounding may leave fewer slices
  pipeline::launch_tf32_gemm<FpropProblem, CfgS>(
      prob, dim3(static_cast<unsigned>(ceil_div(prob.M, 64)), static_cast<unsigned>(ceil_div(prob.N, 64)),
                 static_cast<unsigned>(used)),
      stream, "conv_forward (TF32 pipeline, split reduction)");
  fprop_split_reduce_kernel<<<grid_for(prob.M * prob.N, 256), 256, 0, stream>>>(
      prob.partial, used, prob.M, prob.N, d.ZPQ(), int(d.P), int(d.Q), prob.bias, prob.bias_stride, prob.fuse_relu,
      prob.y, prob.sy_n, prob.sy_c, prob.sy_d, prob.sy_h, prob.sy_w);
  MEDKERN_CUDA_CHECK_LAUNCH("fprop_split_reduce_kernel");
  return true;
}

bool conv_backward_input_tf32(const TensorView& grad_output, const TensorView& weight, const TensorView* bias,
                              const TensorView& grad_input, const ConvParams& p, bool allow_tf32,
                              const TensorView* workspace, cudaStream_t stream) {
  const Shape5 d = shape_from_views(grad_input, weight, grad_output);
  if (!usable(ConvOp::BackwardInput, d, p, grad_output.dtype, allow_tf32, workspace)) return false;
  const int slices = dgrad_slices(d, p);
  const WorkspaceLayout layout = workspace_layout(ConvOp::BackwardInput, d, slices);
  if (!holds(*workspace, layout)) return false;
  float* dy_cl = region(*workspace, layout.dy);
  float* w_trskc = region(*workspace, layout.w);
  to_channels_last_tf32(grad_output, d.Kp(), dy_cl, stream);
  reorder_weight_tf32(weight, d.Kp(), d.Cp(), true, w_trskc, stream);

  DgradProblem prob{};
  prob.N = d.Cp();
  prob.batch = int(d.N); prob.D = int(d.D); prob.H = int(d.H); prob.W = int(d.W);
  prob.Z = int(d.Z); prob.P = int(d.P); prob.Q = int(d.Q);
  prob.K = int(d.Kp()); prob.T = int(d.T); prob.R = int(d.R); prob.S = int(d.S);
  prob.stride_d = int(p.stride_d); prob.stride_h = int(p.stride_h); prob.stride_w = int(p.stride_w);
  prob.pad_d = int(p.pad_d); prob.pad_h = int(p.pad_h); prob.pad_w = int(p.pad_w);
  prob.by_k = FastDivmod(d.Kp());
  for (int a = 0; a < kMaxDgradStride; ++a) {
    prob.by_sv[a] = FastDivmod(std::max<int64_t>(1, stride_phase(a, d.W, d.S, p.stride_w, p.pad_w).taps));
    prob.by_rv[a] = FastDivmod(std::max<int64_t>(1, stride_phase(a, d.H, d.R, p.stride_h, p.pad_h).taps));
  }
  prob.a = {dy_cl, int(d.Z), int(d.P), int(d.Q), int(d.Kp()), prob.by_k};
  prob.b = {w_trskc, int(d.Cp()), int(d.Kp()), int(d.R), int(d.S), int(p.stride_d), int(p.stride_h),
            int(p.stride_w), prob.by_k};
  prob.dx = grad_input.ptr<float>();
  prob.sdx_n = grad_input.strides[0]; prob.sdx_c = grad_input.strides[1]; prob.sdx_d = grad_input.strides[2];
  prob.sdx_h = grad_input.strides[3]; prob.sdx_w = grad_input.strides[4];
  prob.C = int(d.C);
  prob.bias = bias ? bias->ptr<const float>() : nullptr;
  prob.bias_stride = bias ? bias->strides[0] : 0;
  prob.voxels = d.N * d.DHW();
  prob.slices = slices;
  prob.partial = slices > 1 ? region(*workspace, layout.partial) : nullptr;
  // the largest phase has ceil(D / stride) x ceil(H / stride) x ceil(W / stride) voxels per image
  const int64_t rows = d.N * ceil_div(d.D, p.stride_d) * ceil_div(d.H, p.stride_h) * ceil_div(d.W, p.stride_w);
  const int phases = int(p.stride_d * p.stride_h * p.stride_w);
  if (slices == 1) {
    launch_rows_cols(prob, rows, d.Cp(), phases, stream, "conv_backward_input (TF32 pipeline)");
    return true;
  }
  pipeline::launch_tf32_gemm<DgradProblem, CfgS>(
      prob, dim3(static_cast<unsigned>(ceil_div(rows, 64)), static_cast<unsigned>(ceil_div(d.Cp(), 64)),
                 static_cast<unsigned>(phases * slices)),
      stream, "conv_backward_input (TF32 pipeline, split reduction)");
  dgrad_split_reduce_kernel<<<grid_for(prob.voxels * d.C, 256), 256, 0, stream>>>(
      prob.partial, slices, prob.voxels, int(d.C), int(d.Cp()), int(d.D), int(d.H), int(d.W), prob.bias,
      prob.bias_stride, prob.dx, prob.sdx_n, prob.sdx_c, prob.sdx_d, prob.sdx_h, prob.sdx_w);
  MEDKERN_CUDA_CHECK_LAUNCH("dgrad_split_reduce_kernel");
  return true;
}

bool conv_backward_weight_tf32(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                               const ConvParams& p, bool allow_tf32, const TensorView* workspace,
                               cudaStream_t stream) {
  const Shape5 d = shape_from_views(input, grad_weight, grad_output);
  if (!usable(ConvOp::BackwardWeight, d, p, grad_output.dtype, allow_tf32, workspace)) return false;
  const WgradPlan plan = wgrad_plan(d);
  const WorkspaceLayout layout = workspace_layout(ConvOp::BackwardWeight, d, plan.slices);
  if (!holds(*workspace, layout)) return false;
  float* dy_cl = region(*workspace, layout.dy);
  float* x_cl = region(*workspace, layout.x);
  float* partial = region(*workspace, layout.partial);
  to_channels_last_tf32(grad_output, d.Kp(), dy_cl, stream);
  to_channels_last_tf32(input, d.Cp(), x_cl, stream);

  WgradProblem prob{};
  prob.M = d.Kp();
  prob.N = d.TRS() * d.Cp();
  prob.K = d.N * d.ZPQ();
  prob.k_chunk = plan.k_chunk;
  prob.a = {dy_cl, d.Kp()};
  prob.b = {x_cl, int(d.D), int(d.H), int(d.W), int(d.Cp()), int(d.R), int(d.S), int(p.stride_d), int(p.stride_h),
            int(p.stride_w), int(p.pad_d), int(p.pad_h), int(p.pad_w), int(p.dilation_d), int(p.dilation_h),
            int(p.dilation_w), FastDivmod(d.ZPQ()), FastDivmod(d.P * d.Q), FastDivmod(d.Q)};
  prob.partial = partial;
  const dim3 grid(static_cast<unsigned>(ceil_div(prob.M, plan.wide ? 128 : 64)),
                  static_cast<unsigned>(ceil_div(prob.N, 128)), static_cast<unsigned>(plan.slices));
  if (plan.wide) {
    pipeline::launch_tf32_gemm<WgradProblem, CfgL>(prob, grid, stream, "conv_backward_weight (TF32 pipeline)");
  } else {
    pipeline::launch_tf32_gemm<WgradProblem, CfgW>(prob, grid, stream, "conv_backward_weight (TF32 pipeline)");
  }
  wgrad_reduce_kernel<<<grid_for(grad_weight.numel(), 256), 256, 0, stream>>>(
      partial, int(plan.slices), int(d.K), int(d.C), int(d.Kp()), int(d.Cp()), int(d.T), int(d.R), int(d.S),
      grad_weight.ptr<float>(), grad_weight.strides[0], grad_weight.strides[1], grad_weight.strides[2],
      grad_weight.strides[3], grad_weight.strides[4]);
  MEDKERN_CUDA_CHECK_LAUNCH("wgrad_reduce_kernel");
  return true;
}

}  // namespace medkern::cuda
