// cuda/conv2d_tf32.cu — the tensor-core path of float32 convolution when TF32 is allowed (torch's
// default for cuDNN), groups 1. Operands are first rewritten into a workspace in GEMM-friendly
// layouts, rounded to TF32 on the way (NCHW -> NHWC for activations and gradients, KCRS -> KRSC /
// RSKC for weights) with channel counts padded with zeros to multiples of 4 (Cp, Kp), so every
// tile load is a 16-byte copy along channels; then one multistage GEMM (gemm_pipeline.cuh) per op:
//   forward       C[(n,p,q)][k]      = sum_{(r,s,c)} x[n,h,w,c] * w[k,r,s,c]
//   grad input    one GEMM per stride phase (h+pad, w+pad) mod stride: only the taps that reach
//                 that phase, so a strided layer does no work for the stride holes
//                 C[(n,h,w)][c] = sum_{(r,s,k) of the phase} dy[n,p,q,k] * w[r,s,k,c]
//   grad weight   C[k][(r,s,c)] = sum_{(n,p,q)} dy[n,p,q,k] * x[n,h,w,c], split along (n,p,q) into
//                 partial sums in the workspace, added in a fixed order (deterministic)
// Everything else (float64, no TF32, 16-bit, groups > 1, and convolutions with a depth axis:
// this path is 2-D only, taking the depth-1 case of conv.cu's 5-D views) stays on conv.cu's
// generic kernels. The input gradient adds an optional bias (the transposed convolution's forward).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/conv_math.h"
#include "cuda/conv2d_tf32.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/fast_divmod.cuh"
#include "cuda/gemm_pipeline.cuh"
#include "cuda/gemm_tiles.cuh"
#include "medkern/conv.h"

namespace medkern::cuda {
namespace {

using pipeline::kBK;
using pipeline::round_tf32;

struct Shape4 {
  int64_t N, C, H, W, K, R, S, P, Q;
  int64_t Cp() const { return (C + 3) / 4 * 4; }  // channel counts as stored in the workspace
  int64_t Kp() const { return (K + 3) / 4 * 4; }
};

Shape4 shape_of(const std::vector<int64_t>& in, const std::vector<int64_t>& wt, const ConvParams& p) {
  Shape4 d{in[0], in[1], in[2], in[3], wt[0], 0, 0, 0, 0};
  d.R = wt[2];
  d.S = wt[3];
  d.P = (d.H + 2 * p.pad_h - p.dilation_h * (d.R - 1) - 1) / p.stride_h + 1;
  d.Q = (d.W + 2 * p.pad_w - p.dilation_w * (d.S - 1) - 1) / p.stride_w + 1;
  return d;
}

constexpr int64_t kAlign = 256;
int64_t aligned(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }
constexpr int64_t kInt32Limit = int64_t{1} << 31;

// ---- layout conversions (rounding to TF32) ----------------------------------------------------
// NCHW with any strides -> NHWC contiguous with Cp >= C channels (the extra ones zero); a 32 x 32
// (channels x pixels) tile per block so both the reads (along pixels) and the writes (along
// channels) are coalesced.
__global__ void nchw_to_nhwc_tf32_kernel(const float* __restrict__ src, int64_t sn, int64_t sc, int64_t sh,
                                         int64_t sw, int C, int Cp, int H, int W, float* __restrict__ dst) {
  __shared__ float tile[32][33];
  const int64_t HW = int64_t(H) * W;
  const int64_t n = blockIdx.z;
  const int64_t pix0 = int64_t(blockIdx.x) * 32;
  const int c0 = blockIdx.y * 32;
  {
    const int64_t pix = pix0 + threadIdx.x;
    const int64_t h = pix / W, w = pix - h * W;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
      const int c = c0 + i;
      if (pix < HW) tile[i][threadIdx.x] = c < C ? round_tf32(src[n * sn + c * sc + h * sh + w * sw]) : 0.f;
    }
  }
  __syncthreads();
  const int c = c0 + threadIdx.x;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t pix = pix0 + i;
    if (c < Cp && pix < HW) dst[(n * HW + pix) * Cp + c] = tile[threadIdx.x][i];
  }
}

// Few channels (Cp <= 16: grayscale / RGB stems): one thread per pixel reads its C values (the
// warp's reads coalesce along the pixels) and writes the Cp-wide NHWC row as 16-byte stores; the
// 32 x 32 tile above would leave most of its threads idle.
__global__ void nchw_to_nhwc_tf32_narrow_kernel(const float* __restrict__ src, int64_t sn, int64_t sc, int64_t sh,
                                                int64_t sw, int C, int Cp, int H, int W, int64_t pixels,
                                                float* __restrict__ dst) {
  const int64_t HW = int64_t(H) * W;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pixels; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / HW, pix = i - n * HW, h = pix / W, w = pix - h * W;
    const float* from = src + n * sn + h * sh + w * sw;
    float4* to = reinterpret_cast<float4*>(dst + i * Cp);  // Cp % 4 == 0, workspace 256-byte aligned
    for (int c0 = 0; c0 < Cp; c0 += 4) {
      float v[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = c0 + j < C ? round_tf32(from[(c0 + j) * sc]) : 0.f;
      to[c0 / 4] = make_float4(v[0], v[1], v[2], v[3]);
    }
  }
}

void to_nhwc_tf32(const TensorView& t, int64_t Cp, float* dst, cudaStream_t stream) {
  const int64_t N = t.shape[0], C = t.shape[1], H = t.shape[2], W = t.shape[3];
  if (Cp <= 16) {
    const int64_t pixels = N * H * W;
    nchw_to_nhwc_tf32_narrow_kernel<<<grid_for(pixels, 256), 256, 0, stream>>>(
        t.ptr<const float>(), t.strides[0], t.strides[1], t.strides[2], t.strides[3], int(C), int(Cp), int(H),
        int(W), pixels, dst);
    MEDKERN_CUDA_CHECK_LAUNCH("nchw_to_nhwc_tf32_narrow_kernel");
    return;
  }
  const dim3 grid(static_cast<unsigned>((H * W + 31) / 32), static_cast<unsigned>((Cp + 31) / 32),
                  static_cast<unsigned>(N));
  nchw_to_nhwc_tf32_kernel<<<grid, dim3(32, 8), 0, stream>>>(t.ptr<const float>(), t.strides[0], t.strides[1],
                                                               t.strides[2], t.strides[3], int(C), int(Cp), int(H),
                                                               int(W), dst);
  MEDKERN_CUDA_CHECK_LAUNCH("nchw_to_nhwc_tf32_kernel");
}

// Weight (K, C, R, S) with any strides -> KRSC (forward) or RSKC (input gradient), contiguous,
// with Kp >= K and Cp >= C (the padding zero).
__global__ void reorder_weight_tf32_kernel(const float* __restrict__ w, int64_t s0, int64_t s1, int64_t s2,
                                           int64_t s3, int K, int C, int Kp, int Cp, int R, int S, bool rskc,
                                           float* __restrict__ dst) {
  const int64_t total = int64_t(Kp) * Cp * R * S;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    // i walks the destination in KRSC order; RSKC is the same tuple placed differently
    const int c = int(i % Cp);
    const int64_t t = i / Cp;
    const int s = int(t % S), r = int((t / S) % R), k = int(t / (int64_t(S) * R));
    const int64_t out = rskc ? ((int64_t(r) * S + s) * Kp + k) * Cp + c : i;
    dst[out] = (k < K && c < C) ? round_tf32(w[k * s0 + c * s1 + r * s2 + s * s3]) : 0.f;
  }
}

void reorder_weight_tf32(const TensorView& w, int64_t Kp, int64_t Cp, bool rskc, float* dst, cudaStream_t stream) {
  const int64_t total = Kp * Cp * w.shape[2] * w.shape[3];
  reorder_weight_tf32_kernel<<<grid_for(total, 256), 256, 0, stream>>>(
      w.ptr<const float>(), w.strides[0], w.strides[1], w.strides[2], w.strides[3], int(w.shape[0]),
      int(w.shape[1]), int(Kp), int(Cp), int(w.shape[2]), int(w.shape[3]), rskc, dst);
  MEDKERN_CUDA_CHECK_LAUNCH("reorder_weight_tf32_kernel");
}

// ---- forward ---------------------------------------------------------------------------------
struct PlainJob {
  int64_t M, k_begin, k_end;
};

struct FpropProblem {
  using Job = PlainJob;
  int64_t M, N, K;  // N*P*Q, K (output channels), R*S*C

  struct ASide {  // im2col of NHWC x: row (n,p,q), k = (r,s,c) with c fastest
    static constexpr bool kKMajor = true;
    const float* x;
    int H, W, C, Q, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    int64_t PQ;
    FastDivmod by_c, by_s;  // the k split, once per k-tile per thread: multiply-shift, no division
    struct RowCtx { const float* img; int h0, w0; };
    struct KCtx { int c, dh, dw; };
    __device__ RowCtx row_ctx(int64_t m, const Job&) const {
      const int64_t n = m / PQ;
      const int pq = int(m - n * PQ), p = pq / Q, q = pq - p * Q;
      return {x + n * (int64_t(H) * W * C), int(conv_input_coord(p, 0, stride_h, pad_h, dil_h)),
              int(conv_input_coord(q, 0, stride_w, pad_w, dil_w))};
    }
    __device__ KCtx k_ctx(int64_t k, const Job&) const {
      uint32_t rs, c, r, s;
      by_c.divmod(static_cast<uint32_t>(k), rs, c);
      by_s.divmod(rs, r, s);
      return {int(c), int(conv_input_coord(0, r, stride_h, 0, dil_h)), int(conv_input_coord(0, s, stride_w, 0, dil_w))};
    }
    __device__ const float* src(const RowCtx& rc, const KCtx& kc) const {
      const int h = rc.h0 + kc.dh, w = rc.w0 + kc.dw;
      if (unsigned(h) >= unsigned(H) || unsigned(w) >= unsigned(W)) return nullptr;
      return rc.img + (h * W + w) * C + kc.c;  // H*W*C < 2^31 (checked)
    }
    __device__ const float* base() const { return x; }
  } a;

  struct BSide {  // KRSC weights: row k is contiguous along (r,s,c)
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
  int64_t sy_n, sy_c, sy_h, sy_w, PQ;
  int Q;
  const float* bias;
  int64_t bias_stride;
  bool fuse_relu;

  __device__ Job job(int) const { return {M, 0, K}; }
  struct OutRow { float* ptr; };
  __device__ OutRow out_row(int64_t m, const Job&) const {
    const int64_t n = m / PQ;
    const int pq = int(m - n * PQ), p = pq / Q, q = pq - p * Q;
    return {y + n * sy_n + p * sy_h + q * sy_w};
  }
  __device__ void store(const OutRow& o, int64_t k, float v) const {
    if (bias) v += bias[k * bias_stride];
    if (fuse_relu) v = v > 0.f ? v : 0.f;
    o.ptr[k * sy_c] = v;
  }
};

// ---- input gradient, one stride phase per grid slice ------------------------------------------
struct PhaseJob {
  int64_t M, k_begin, k_end;
  int Hph, Wph, h_first, w_first, base_h, base_w, ah, aw, Sv;
  FastDivmod by_sv;
};

constexpr int kMaxDgradStride = 8;  // per axis; larger strides take the generic kernel

struct DgradProblem {
  using Job = PhaseJob;
  int64_t N;  // C (input channels)
  int batch, H, W, P, Q, K, R, S, stride_h, stride_w, pad_h, pad_w;
  FastDivmod by_k;                       // k -> (tap, output channel)
  FastDivmod by_sv[kMaxDgradStride];     // tap -> (rv, sv) for phase column aw

  // Phase z = (ah, aw): pixels with (h + pad_h) % stride_h == ah, (w + pad_w) % stride_w == aw.
  // They receive taps r = ah + rv * stride_h (rv < Rv) from output row p = base_h + ih - rv,
  // where h = h_first + ih * stride_h (and the same along w).
  __device__ Job job(int z) const {
    Job j{};
    j.ah = z / stride_w;
    j.aw = z - j.ah * stride_w;
    const StridePhase ph = stride_phase(j.ah, H, R, stride_h, pad_h);
    const StridePhase pw = stride_phase(j.aw, W, S, stride_w, pad_w);
    j.h_first = int(ph.first); j.Hph = int(ph.count); j.base_h = int(ph.base);
    j.w_first = int(pw.first); j.Wph = int(pw.count); j.base_w = int(pw.base);
    const int Rv = int(ph.taps);
    j.Sv = int(pw.taps);
    j.by_sv = by_sv[j.aw];
    j.M = int64_t(batch) * j.Hph * j.Wph;
    j.k_begin = 0;
    j.k_end = int64_t(Rv) * j.Sv * K;
    return j;
  }

  struct ASide {  // gathers NHWC dy: row (n, ih, iw), k = (rv, sv, k) with k fastest
    static constexpr bool kKMajor = true;
    const float* dy;
    int P, Q, K;
    FastDivmod by_k;
    struct RowCtx { const float* img; int p0, q0; };
    struct KCtx { int k, rv, sv; };
    __device__ RowCtx row_ctx(int64_t m, const Job& j) const {
      const int64_t per_img = int64_t(j.Hph) * j.Wph;
      const int64_t n = m / per_img;
      const int rem = int(m - n * per_img), ih = rem / j.Wph, iw = rem - ih * j.Wph;
      return {dy + n * (int64_t(P) * Q * K), j.base_h + ih, j.base_w + iw};
    }
    __device__ KCtx k_ctx(int64_t k, const Job& j) const {
      uint32_t t, kout, rv, sv;
      by_k.divmod(static_cast<uint32_t>(k), t, kout);
      j.by_sv.divmod(t, rv, sv);
      return {int(kout), int(rv), int(sv)};
    }
    __device__ const float* src(const RowCtx& rc, const KCtx& kc) const {
      const int p = rc.p0 - kc.rv, q = rc.q0 - kc.sv;
      if (unsigned(p) >= unsigned(P) || unsigned(q) >= unsigned(Q)) return nullptr;
      return rc.img + (p * Q + q) * K + kc.k;  // P*Q*K < 2^31 (checked)
    }
    __device__ const float* base() const { return dy; }
  } a;

  struct BSide {  // RSKC weights: B[(rv,sv,k)][c], contiguous along c (this GEMM's columns)
    static constexpr bool kKMajor = false;
    const float* w;
    int C, K, S, stride_h, stride_w;
    FastDivmod by_k;
    struct RowCtx { int c; };
    struct KCtx { int64_t off; };
    __device__ RowCtx row_ctx(int64_t c, const Job&) const { return {int(c)}; }
    __device__ KCtx k_ctx(int64_t k, const Job& j) const {
      uint32_t t, kout, rv, sv;
      by_k.divmod(static_cast<uint32_t>(k), t, kout);
      j.by_sv.divmod(t, rv, sv);
      const int r = j.ah + int(rv) * stride_h, s = j.aw + int(sv) * stride_w;
      return {((int64_t(r) * S + s) * K + kout) * C};
    }
    __device__ const float* src(const RowCtx& rc, const KCtx& kc) const { return w + kc.off + rc.c; }
    __device__ const float* base() const { return w; }
  } b;

  float* dx;
  int64_t sdx_n, sdx_c, sdx_h, sdx_w;
  int C;  // real input channels (N, the GEMM's columns, is Cp)
  const float* bias;  // per input channel, or null (the transposed convolution's forward)
  int64_t bias_stride;
  struct OutRow { float* ptr; };
  __device__ OutRow out_row(int64_t m, const Job& j) const {
    const int64_t per_img = int64_t(j.Hph) * j.Wph;
    const int64_t n = m / per_img;
    const int rem = int(m - n * per_img), ih = rem / j.Wph, iw = rem - ih * j.Wph;
    const int64_t h = j.h_first + int64_t(ih) * stride_h, w = j.w_first + int64_t(iw) * stride_w;
    return {dx + n * sdx_n + h * sdx_h + w * sdx_w};
  }
  __device__ void store(const OutRow& o, int64_t c, float v) const {
    if (c < C) o.ptr[c * sdx_c] = bias ? v + bias[c * bias_stride] : v;
  }
};

// ---- weight gradient: split-K partial sums ----------------------------------------------------
struct WgradProblem {
  using Job = PlainJob;
  int64_t M, N, K, k_chunk;  // K (output channels), R*S*C, N*P*Q, reduction per slice

  __device__ Job job(int z) const {
    const int64_t begin = int64_t(z) * k_chunk;
    return {M, begin, begin + k_chunk < K ? begin + k_chunk : K};
  }

  struct ASide {  // A[k][j] = dy[j, k] (NHWC dy, rows = output channels, contiguous)
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

  struct BSide {  // B[j][(r,s,c)] = x[n, h, w, c] of NHWC x, contiguous along c
    static constexpr bool kKMajor = false;
    const float* x;
    int H, W, C, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    FastDivmod by_pq, by_q;
    struct RowCtx { int c, dh, dw; };
    struct KCtx { const float* img; int h0, w0; };
    __device__ RowCtx row_ctx(int64_t col, const Job&) const {
      const int cc = int(col), rs = cc / C, c = cc - rs * C, r = rs / S, s = rs - r * S;
      return {c, int(conv_input_coord(0, r, stride_h, 0, dil_h)), int(conv_input_coord(0, s, stride_w, 0, dil_w))};
    }
    __device__ KCtx k_ctx(int64_t j, const Job&) const {
      uint32_t n, pq, p, q;
      by_pq.divmod(static_cast<uint32_t>(j), n, pq);
      by_q.divmod(pq, p, q);
      return {x + int64_t(n) * (int64_t(H) * W * C), int(conv_input_coord(p, 0, stride_h, pad_h, dil_h)),
              int(conv_input_coord(q, 0, stride_w, pad_w, dil_w))};
    }
    __device__ const float* src(const RowCtx& rc, const KCtx& kc) const {
      const int h = kc.h0 + rc.dh, w = kc.w0 + rc.dw;
      if (unsigned(h) >= unsigned(H) || unsigned(w) >= unsigned(W)) return nullptr;
      return kc.img + (h * W + w) * C + rc.c;
    }
    __device__ const float* base() const { return x; }
  } b;

  float* partial;  // [slice][N][M]: m contiguous, so the epilogue's stores coalesce
  struct OutRow { float* ptr; };
  __device__ OutRow out_row(int64_t m, const Job& j) const { return {partial + (j.k_begin / k_chunk) * N * M + m}; }
  __device__ void store(const OutRow& o, int64_t n, float v) const { o.ptr[n * M] = v; }
};

// dw[k][c][r][s] = sum over slices (in order) of partial[slice][(r*S + s)*Cp + c][k] (rows of Kp).
__global__ void wgrad_reduce_kernel(const float* __restrict__ partial, int slices, int K, int C, int Kp, int Cp,
                                    int R, int S, float* __restrict__ dw, int64_t s0, int64_t s1, int64_t s2,
                                    int64_t s3) {
  const int64_t total = int64_t(R) * S * C * K, slice = int64_t(R) * S * Cp * Kp;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int k = int(i % K);  // k fastest: the slice reads coalesce
    const int64_t t = i / K;
    const int c = int(t % C), rs = int(t / C), r = rs / S, s = rs - r * S;
    const float* src = partial + (int64_t(rs) * Cp + c) * Kp + k;
    float acc = 0.f;
    for (int z = 0; z < slices; ++z) acc += src[z * slice];
    dw[k * s0 + c * s1 + r * s2 + s * s3] = acc;
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

// Slices of the weight gradient's (n,p,q) reduction: enough blocks for about two waves, each
// slice at least 8 k-tiles long.
int wgrad_slices(int64_t tiles, int64_t reduction) {
  const int64_t target = 2 * int64_t(multiprocessor_count());
  if (tiles >= target) return 1;
  int64_t slices = ceil_div(target, tiles);
  slices = std::min<int64_t>(slices, std::max<int64_t>(1, reduction / (8 * kBK)));
  return static_cast<int>(std::clamp<int64_t>(slices, 1, 1024));
}

struct WgradPlan {
  int64_t tiles, slices, k_chunk;
  bool wide;  // 128-row tiles
};
WgradPlan wgrad_plan(const Shape4& d) {
  WgradPlan plan{};
  plan.wide = d.Kp() > 64 && pipeline::fits_device<WgradProblem, CfgL>();
  const int64_t bm = plan.wide ? 128 : 64, bn = 128;
  const int64_t reduction = d.N * d.P * d.Q;
  plan.tiles = ceil_div(d.Kp(), bm) * ceil_div(d.R * d.S * d.Cp(), bn);
  plan.slices = wgrad_slices(plan.tiles, reduction);
  plan.k_chunk = ceil_div(ceil_div(reduction, plan.slices), kBK) * kBK;
  plan.slices = ceil_div(reduction, plan.k_chunk);
  return plan;
}

// Whether the TF32 path takes this convolution (shapes as for conv2d_output_shape).
bool tf32_path_applies(ConvOp op, const Shape4& d, const ConvParams& p) {
  if (p.groups != 1) return false;
  if (d.N <= 0 || d.C <= 0 || d.K <= 0 || d.H <= 0 || d.W <= 0 || d.P <= 0 || d.Q <= 0) return false;
  if (d.N > 65535 || d.H * d.W * d.Cp() >= kInt32Limit || d.P * d.Q * d.Kp() >= kInt32Limit ||
      d.R * d.S * d.Cp() * d.Kp() >= kInt32Limit)
    return false;
  if (op == ConvOp::BackwardInput && (p.dilation_h != 1 || p.dilation_w != 1 || p.stride_h > kMaxDgradStride ||
                                        p.stride_w > kMaxDgradStride))
    return false;
  if (op == ConvOp::BackwardWeight && d.N * d.P * d.Q >= kInt32Limit) return false;
  // grid.y of the GEMMs (column tiles of 64 at the smallest) and of the layout conversions
  constexpr int64_t kGridY = 65535;
  if (ceil_div(d.K, 64) > kGridY || ceil_div(d.R * d.S * d.Cp(), 64) > kGridY || ceil_div(d.Cp(), 32) > kGridY ||
      ceil_div(d.Kp(), 32) > kGridY)
    return false;
  return compute_capability_major() >= 8;  // mma.sync TF32 and cp.async
}

// Where one op keeps its operand copies in the workspace (byte offsets, each region 256-aligned;
// -1: the op has no such region) and how many bytes it needs. The only statement of the layout:
// the size query and the ops both read it. `slices`: the weight gradient's split-K (wgrad_plan).
struct WorkspaceLayout {
  int64_t x = -1, dy = -1, w = -1, partial = -1, bytes = 0;
};
WorkspaceLayout workspace_layout(ConvOp op, const Shape4& d, int64_t slices) {
  WorkspaceLayout l;
  auto take = [&](int64_t floats) {
    const int64_t at = l.bytes;
    l.bytes += aligned(floats * int64_t(sizeof(float)));
    return at;
  };
  switch (op) {
    case ConvOp::Forward:
      l.x = take(d.N * d.H * d.W * d.Cp());
      l.w = take(d.Kp() * d.R * d.S * d.Cp());
      break;
    case ConvOp::BackwardInput:
      l.dy = take(d.N * d.P * d.Q * d.Kp());
      l.w = take(d.Kp() * d.R * d.S * d.Cp());
      break;
    case ConvOp::BackwardWeight:
      l.dy = take(d.N * d.P * d.Q * d.Kp());
      l.x = take(d.N * d.H * d.W * d.Cp());
      l.partial = take(slices * d.Kp() * d.R * d.S * d.Cp());
      break;
  }
  return l;
}

float* region(const TensorView& workspace, int64_t offset) {
  return reinterpret_cast<float*>(static_cast<char*>(workspace.data) + offset);
}

Shape4 shape_from_views(const TensorView& x_like, const TensorView& w_like, const TensorView& y_like) {
  return {x_like.shape[0], x_like.shape[1], x_like.shape[2], x_like.shape[3], w_like.shape[0],
          w_like.shape[2], w_like.shape[3], y_like.shape[2], y_like.shape[3]};
}

// Whether the op may take the TF32 path (then the caller checks the workspace holds its layout).
bool usable(ConvOp op, const Shape4& d, const ConvParams& p, DType dtype, bool allow_tf32,
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

}  // namespace

int64_t conv_tf32_workspace_bytes(ConvOp op, const std::vector<int64_t>& volume_input_shape,
                                  const std::vector<int64_t>& volume_weight_shape, const ConvParams& p, DType dtype,
                                  bool allow_tf32, int device_index) {
  if (dtype != DType::Float32 || !allow_tf32 || volume_input_shape.size() != 5 || volume_weight_shape.size() != 5)
    return 0;
  // the depth-1 case only: a unit depth axis and a unit depth tap, no depth padding
  if (volume_input_shape[2] != 1 || volume_weight_shape[2] != 1 || p.pad_d != 0) return 0;
  auto planar = [](std::vector<int64_t> s) {
    s.erase(s.begin() + 2);
    return s;
  };
  const std::vector<int64_t> input_shape = planar(volume_input_shape), weight_shape = planar(volume_weight_shape);
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
  const Shape4 d = shape_of(input_shape, weight_shape, p);
  if (!tf32_path_applies(op, d, p)) return 0;
  return workspace_layout(op, d, op == ConvOp::BackwardWeight ? wgrad_plan(d).slices : 0).bytes;
}

bool conv2d_forward_tf32(const TensorView& input, const TensorView& weight, const TensorView* bias,
                         const TensorView& output, const ConvParams& p, bool allow_tf32,
                         const TensorView* workspace, cudaStream_t stream) {
  const Shape4 d = shape_from_views(input, weight, output);
  if (!usable(ConvOp::Forward, d, p, input.dtype, allow_tf32, workspace)) return false;
  const WorkspaceLayout layout = workspace_layout(ConvOp::Forward, d, 0);
  if (!holds(*workspace, layout)) return false;
  float* x_nhwc = region(*workspace, layout.x);
  float* w_krsc = region(*workspace, layout.w);
  to_nhwc_tf32(input, d.Cp(), x_nhwc, stream);
  reorder_weight_tf32(weight, d.K, d.Cp(), false, w_krsc, stream);

  FpropProblem prob{};
  prob.M = d.N * d.P * d.Q;
  prob.N = d.K;
  prob.K = d.R * d.S * d.Cp();
  prob.a = {x_nhwc, int(d.H), int(d.W), int(d.Cp()), int(d.Q), int(d.S), int(p.stride_h), int(p.stride_w),
            int(p.pad_h), int(p.pad_w), int(p.dilation_h), int(p.dilation_w), d.P * d.Q, FastDivmod(d.Cp()),
            FastDivmod(d.S)};
  prob.b = {w_krsc, prob.K};
  prob.y = output.ptr<float>();
  prob.sy_n = output.strides[0]; prob.sy_c = output.strides[1]; prob.sy_h = output.strides[2];
  prob.sy_w = output.strides[3];
  prob.PQ = d.P * d.Q;
  prob.Q = int(d.Q);
  prob.bias = bias ? bias->ptr<const float>() : nullptr;
  prob.bias_stride = bias ? bias->strides[0] : 0;
  prob.fuse_relu = p.fuse_relu;
  launch_rows_cols(prob, prob.M, prob.N, 1, stream, "conv2d_forward (TF32 pipeline)");
  return true;
}

bool conv2d_backward_input_tf32(const TensorView& grad_output, const TensorView& weight, const TensorView* bias,
                                const TensorView& grad_input, const ConvParams& p, bool allow_tf32,
                                const TensorView* workspace, cudaStream_t stream) {
  const Shape4 d = shape_from_views(grad_input, weight, grad_output);
  if (!usable(ConvOp::BackwardInput, d, p, grad_output.dtype, allow_tf32, workspace)) return false;
  const WorkspaceLayout layout = workspace_layout(ConvOp::BackwardInput, d, 0);
  if (!holds(*workspace, layout)) return false;
  float* dy_nhwc = region(*workspace, layout.dy);
  float* w_rskc = region(*workspace, layout.w);
  to_nhwc_tf32(grad_output, d.Kp(), dy_nhwc, stream);
  reorder_weight_tf32(weight, d.Kp(), d.Cp(), true, w_rskc, stream);

  DgradProblem prob{};
  prob.N = d.Cp();
  prob.batch = int(d.N); prob.H = int(d.H); prob.W = int(d.W); prob.P = int(d.P); prob.Q = int(d.Q);
  prob.K = int(d.Kp()); prob.R = int(d.R); prob.S = int(d.S);
  prob.stride_h = int(p.stride_h); prob.stride_w = int(p.stride_w); prob.pad_h = int(p.pad_h);
  prob.pad_w = int(p.pad_w);
  prob.by_k = FastDivmod(d.Kp());
  for (int aw = 0; aw < kMaxDgradStride; ++aw)
    prob.by_sv[aw] = FastDivmod(std::max<int64_t>(1, stride_phase(aw, d.W, d.S, p.stride_w, p.pad_w).taps));
  prob.a = {dy_nhwc, int(d.P), int(d.Q), int(d.Kp()), prob.by_k};
  prob.b = {w_rskc, int(d.Cp()), int(d.Kp()), int(d.S), int(p.stride_h), int(p.stride_w), prob.by_k};
  prob.dx = grad_input.ptr<float>();
  prob.sdx_n = grad_input.strides[0]; prob.sdx_c = grad_input.strides[1]; prob.sdx_h = grad_input.strides[2];
  prob.sdx_w = grad_input.strides[3];
  prob.C = int(d.C);
  prob.bias = bias ? bias->ptr<const float>() : nullptr;
  prob.bias_stride = bias ? bias->strides[0] : 0;
  // the largest phase has ceil(H / stride) x ceil(W / stride) pixels per image
  const int64_t rows = d.N * ceil_div(d.H, p.stride_h) * ceil_div(d.W, p.stride_w);
  launch_rows_cols(prob, rows, d.Cp(), int(p.stride_h * p.stride_w), stream, "conv2d_backward_input (TF32 pipeline)");
  return true;
}

bool conv2d_backward_weight_tf32(const TensorView& grad_output, const TensorView& input,
                                 const TensorView& grad_weight, const ConvParams& p, bool allow_tf32,
                                 const TensorView* workspace, cudaStream_t stream) {
  const Shape4 d = shape_from_views(input, grad_weight, grad_output);
  if (!usable(ConvOp::BackwardWeight, d, p, grad_output.dtype, allow_tf32, workspace)) return false;
  const WgradPlan plan = wgrad_plan(d);
  const WorkspaceLayout layout = workspace_layout(ConvOp::BackwardWeight, d, plan.slices);
  if (!holds(*workspace, layout)) return false;
  float* dy_nhwc = region(*workspace, layout.dy);
  float* x_nhwc = region(*workspace, layout.x);
  float* partial = region(*workspace, layout.partial);
  to_nhwc_tf32(grad_output, d.Kp(), dy_nhwc, stream);
  to_nhwc_tf32(input, d.Cp(), x_nhwc, stream);

  WgradProblem prob{};
  prob.M = d.Kp();
  prob.N = d.R * d.S * d.Cp();
  prob.K = d.N * d.P * d.Q;
  prob.k_chunk = plan.k_chunk;
  prob.a = {dy_nhwc, d.Kp()};
  prob.b = {x_nhwc, int(d.H), int(d.W), int(d.Cp()), int(d.S), int(p.stride_h), int(p.stride_w), int(p.pad_h),
            int(p.pad_w), int(p.dilation_h), int(p.dilation_w), FastDivmod(d.P * d.Q), FastDivmod(d.Q)};
  prob.partial = partial;
  const dim3 grid(static_cast<unsigned>(ceil_div(prob.M, plan.wide ? 128 : 64)),
                  static_cast<unsigned>(ceil_div(prob.N, 128)), static_cast<unsigned>(plan.slices));
  if (plan.wide) {
    pipeline::launch_tf32_gemm<WgradProblem, CfgL>(prob, grid, stream, "conv2d_backward_weight (TF32 pipeline)");
  } else {
    pipeline::launch_tf32_gemm<WgradProblem, CfgW>(prob, grid, stream, "conv2d_backward_weight (TF32 pipeline)");
  }
  wgrad_reduce_kernel<<<grid_for(grad_weight.numel(), 256), 256, 0, stream>>>(
      partial, int(plan.slices), int(d.K), int(d.C), int(d.Kp()), int(d.Cp()), int(d.R), int(d.S),
      grad_weight.ptr<float>(),
      grad_weight.strides[0], grad_weight.strides[1], grad_weight.strides[2], grad_weight.strides[3]);
  MEDKERN_CUDA_CHECK_LAUNCH("wgrad_reduce_kernel");
  return true;
}

}  // namespace medkern::cuda
