// cpu/conv.cpp — 2-D and 3-D convolution on the CPU (shape checks in core/conv.cpp), every tensor
// seen as (N, C, D, H, W) with 2-D as the depth-1 case: forward and backward passes as GEMMs over
// im2col columns (rows (c, t, r, s), columns (sample, od, p, q)) of several samples at once (so
// small feature maps still fill the register tile), 1x1x1 stride-1 convs without im2col, a direct
// kernel for few input channels, and Winograd F(2x2, 3x3) for wide 2-D 3x3 layers. The forward
// gathers its im2col panels straight from the input (implicit im2col: no column matrix); stride-1
// backward-input of large volumes runs as that forward with the flipped weight (no col2im).
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/conv_math.h"
#include "cpu/conv_direct.h"
#include "cpu/conv2d_winograd.h"
#include "cpu/gemm_driver.h"
#include "medkern/conv.h"
#include "medkern/parallel.h"
#include "medkern/simd.h"
#include "medkern/workspace.h"

namespace medkern::cpu {
namespace {

// Workspace slots (gemm_blocked owns 6 and 7).
constexpr int kSlotColumns = 0, kSlotWeight = 2, kSlotPartial = 3, kSlotOutput = 4;
// Weights packed once per call for all sample chunks; gemm_blocked leaves its packed-A slot
// alone when handed a pre-packed A.
constexpr int kSlotPackedWeights = 6;
constexpr int64_t kDenseOutputBelow = 256;  // output voxels per sample

// One convolution's sizes. PQ counts an output sample's voxels (OD * P * Q), CRS a filter's taps
// (C/groups * T * R * S): the GEMM sees only these two. The output-side sizes come from the view
// (see medkern/conv.h: a transposed convolution may hand in fewer than conv_output_size).
struct Geometry {
  int64_t N, C, D, H, W, K, Cg, Kg, G, T, R, S, OD, P, Q, PQ, CRS;
  ConvParams p;
  int64_t xs[5];  // input (or grad_input) strides
};

// From 5-D shapes, with a dense input's strides (prepared weights are made from shapes alone).
Geometry shape_geometry(const int64_t* x, const int64_t* w, const int64_t* y, const ConvParams& p) {
  Geometry g;
  g.N = x[0]; g.C = x[1]; g.D = x[2]; g.H = x[3]; g.W = x[4];
  g.K = w[0]; g.Cg = w[1]; g.T = w[2]; g.R = w[3]; g.S = w[4];
  g.G = p.groups; g.Kg = g.K / g.G;
  g.OD = y[2]; g.P = y[3]; g.Q = y[4];
  g.PQ = g.OD * g.P * g.Q; g.CRS = g.Cg * g.T * g.R * g.S;
  g.p = p;
  g.xs[4] = 1; g.xs[3] = g.W; g.xs[2] = g.H * g.W; g.xs[1] = g.D * g.H * g.W; g.xs[0] = g.C * g.xs[1];
  return g;
}

Geometry make_geometry(const TensorView& x, const TensorView& w, const TensorView& y, const ConvParams& p) {
  Geometry g = shape_geometry(x.shape.data(), w.shape.data(), y.shape.data(), p);
  for (int i = 0; i < 5; ++i) g.xs[i] = x.stride(i);
  return g;
}

// The weight as a dense (K, C/groups*T*R*S) matrix: a view when it already is, else a copy.
template <class T>
const T* dense_weight(const TensorView& w, int slot) {
  if (w.is_contiguous()) return w.ptr<const T>();
  T* d = thread_workspace_as<T>(static_cast<size_t>(w.numel()), slot);
  const T* s = w.ptr<const T>();
  int64_t i = 0;
  for (int64_t a = 0; a < w.size(0); ++a)
    for (int64_t b = 0; b < w.size(1); ++b)
      for (int64_t t = 0; t < w.size(2); ++t)
        for (int64_t c = 0; c < w.size(3); ++c)
          for (int64_t e = 0; e < w.size(4); ++e)
            d[i++] = s[a * w.stride(0) + b * w.stride(1) + t * w.stride(2) + c * w.stride(3) + e * w.stride(4)];
  return d;
}

// A dense copy of a 1-D view (the epilogue reads bias values contiguously), or null.
template <class T>
const T* dense_vector(const TensorView* v, std::vector<T>& storage) {
  if (!v) return nullptr;
  if (v->stride(0) == 1) return v->ptr<const T>();
  storage.resize(static_cast<size_t>(v->size(0)));
  for (int64_t k = 0; k < v->size(0); ++k) storage[static_cast<size_t>(k)] = v->ptr<const T>()[k * v->stride(0)];
  return storage.data();
}

// The columns of one im2col matrix: samples [n0, n0 + nb), and of each sample the output rows
// [r0, r1) (a row is one (od, p) line of Q outputs). Small feature maps put several whole samples
// in a block; a large volume (3-D) is cut into blocks of rows so the column matrix stays in cache.
struct Block {
  int64_t n0, nb, r0, r1;
  int64_t rows() const { return r1 - r0; }
};

// How the columns are grouped into blocks: `per_chunk` samples share one im2col matrix (wide
// enough for the register tile), or, when one sample's matrix would exceed the buffer budget,
// each sample is cut into `blocks_per_sample` blocks of `rows_per_block` output rows. Chunks run
// in parallel when there are enough of them, else the GEMM inside each chunk is threaded.
struct ChunkPlan {
  int64_t per_chunk, chunks;
  bool parallel_chunks;
  int64_t rows_per_block, blocks_per_sample;  // blocks_per_sample 1: whole samples

  Block block(int64_t chunk, const Geometry& g) const {
    if (blocks_per_sample > 1) {
      const int64_t n = chunk / blocks_per_sample, r0 = (chunk % blocks_per_sample) * rows_per_block;
      return {n, 1, r0, std::min(r0 + rows_per_block, g.OD * g.P)};
    }
    const int64_t n0 = chunk * per_chunk;
    return {n0, std::min(per_chunk, g.N - n0), 0, g.OD * g.P};
  }
};

ChunkPlan plan_chunks(const Geometry& g, int64_t column_rows) {
  const int threads = num_threads();
  const int64_t target_cols = 512, max_buffer = int64_t(1) << 20;
  const bool enough_work = g.N * g.K * g.PQ * g.CRS >= (int64_t(1) << 21);
  const int64_t rows_total = g.OD * g.P;
  if (column_rows * g.PQ > max_buffer && rows_total > 1) {
    // about a quarter of the budget per block (an L2-sized column matrix), at least target_cols wide
    const int64_t cols = std::max<int64_t>(target_cols, (max_buffer / 4) / column_rows);
    int64_t rows = std::clamp<int64_t>((cols + g.Q - 1) / g.Q, 1, rows_total);
    const int64_t per_sample = (rows_total + rows - 1) / rows;
    rows = (rows_total + per_sample - 1) / per_sample;  // balanced blocks
    const int64_t chunks = g.N * per_sample;
    return {1, chunks, threads > 1 && chunks >= 2 * threads && enough_work, rows, per_sample};
  }
  int64_t nb = std::max<int64_t>(1, (target_cols + g.PQ - 1) / g.PQ);
  nb = std::min(nb, std::max<int64_t>(1, max_buffer / std::max<int64_t>(1, column_rows * g.PQ)));
  nb = std::min(nb, g.N);
  int64_t chunks = (g.N + nb - 1) / nb;
  if (threads > 1 && chunks >= 2 * threads && enough_work) {
    chunks = (chunks + threads - 1) / threads * threads;  // whole rounds, so no thread idles at the end
    nb = (g.N + chunks - 1) / chunks;
    chunks = (g.N + nb - 1) / nb;
    return {nb, chunks, true, rows_total, 1};
  }
  return {nb, chunks, false, rows_total, 1};
}

// Whether a copy/scatter pass over `elements` is worth splitting over threads.
bool worth_threads(int64_t elements) { return elements >= (int64_t(1) << 16); }

// im2col for block `blk` and input channels [c0, c0+Cg): column matrix rows (c, t, r, s), columns
// (sample, output row (od, p), q), row length `cols`. Reads the input through its strides.
template <class T>
void im2col(const T* x, const Geometry& g, const Block& blk, int64_t c0, T* buf, bool threaded) {
  const int64_t n0 = blk.n0, nb = blk.nb, per_sample = blk.rows() * g.Q, cols = nb * per_sample;
  auto rows = [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t s = row % g.S, r = (row / g.S) % g.R, t = (row / (g.R * g.S)) % g.T, c = row / (g.T * g.R * g.S);
      int64_t q_lo, q_hi;
      conv_valid_output_range(g.W, g.Q, s, g.p.stride_w, g.p.pad_w, g.p.dilation_w, &q_lo, &q_hi);
      const int64_t iw0 = q_lo * g.p.stride_w - g.p.pad_w + s * g.p.dilation_w;
      const int64_t step = g.p.stride_w * g.xs[4];
      T* drow = buf + row * cols;
      for (int64_t n = 0; n < nb; ++n) {
        const T* sample = x + (n0 + n) * g.xs[0] + (c0 + c) * g.xs[1];
        for (int64_t row_out = blk.r0; row_out < blk.r1; ++row_out) {
          const int64_t od = row_out / g.P, pp = row_out - od * g.P;
          T* d = drow + n * per_sample + (row_out - blk.r0) * g.Q;
          const int64_t id = conv_input_coord(od, t, g.p.stride_d, g.p.pad_d, g.p.dilation_d);
          const int64_t ih = conv_input_coord(pp, r, g.p.stride_h, g.p.pad_h, g.p.dilation_h);
          if (id < 0 || id >= g.D || ih < 0 || ih >= g.H) { std::fill(d, d + g.Q, T(0)); continue; }
          const T* src = sample + id * g.xs[2] + ih * g.xs[3] + iw0 * g.xs[4];
          std::fill(d, d + q_lo, T(0));
          if (step == 1) std::memcpy(d + q_lo, src, sizeof(T) * (q_hi - q_lo));
          else for (int64_t q = q_lo; q < q_hi; ++q) d[q] = src[(q - q_lo) * step];
          std::fill(d + q_hi, d + g.Q, T(0));
        }
      }
    }
  };
  if (threaded && worth_threads(g.CRS * cols)) parallel_for(0, g.CRS, 4, rows);
  else rows(0, g.CRS);
}

// Implicit im2col: the GEMM's B panels (rows (c, t, r, s), columns (sample, output row, q) of
// block `blk`, as im2col would lay them out) gathered straight from the input, so the 27x column
// matrix is never written. q_lo/q_hi: per filter column s, the outputs q whose input is inside.
template <class T>
struct Im2colSource {
  const T* x;
  const Geometry* g;
  Block blk;
  int64_t c0, per_sample;
  std::vector<int64_t> q_lo, q_hi;

  Im2colSource(const T* x_, const Geometry& g_, const Block& b, int64_t c0_)
      : x(x_), g(&g_), blk(b), c0(c0_), per_sample(b.rows() * g_.Q), q_lo(g_.S), q_hi(g_.S) {
    for (int64_t s = 0; s < g_.S; ++s)
      conv_valid_output_range(g_.W, g_.Q, s, g_.p.stride_w, g_.p.pad_w, g_.p.dilation_w, &q_lo[s], &q_hi[s]);
  }

  static void pack(const void* ctx, int64_t j0, int nr, int64_t k0, int64_t kc, int NR, T* dst) {
    const Im2colSource& src = *static_cast<const Im2colSource*>(ctx);
    const Geometry& g = *src.g;
    // the panel's columns as runs inside one output line (sample, od, p)
    struct Run { int at, len; int64_t q0; const T* line; int64_t id0, ih0; };
    Run runs[64];
    int count = 0;
    for (int done = 0; done < nr;) {
      const int64_t j = j0 + done, n = j / src.per_sample, rem = j % src.per_sample;
      const int64_t row = src.blk.r0 + rem / g.Q, q = rem % g.Q, od = row / g.P, pp = row % g.P;
      const int len = static_cast<int>(std::min<int64_t>(nr - done, g.Q - q));
      runs[count++] = {done, len, q, src.x + (src.blk.n0 + n) * g.xs[0] + src.c0 * g.xs[1],
                       od * g.p.stride_d - g.p.pad_d, pp * g.p.stride_h - g.p.pad_h};
      done += len;
    }
    int64_t e = k0 % g.S, r = (k0 / g.S) % g.R, t = (k0 / (g.S * g.R)) % g.T, c = k0 / (g.S * g.R * g.T);
    const int64_t step = g.p.stride_w * g.xs[4];
    for (int64_t k = 0; k < kc; ++k) {
      T* d = dst + k * NR;
      const int64_t lo = src.q_lo[e], hi = src.q_hi[e];
      const int64_t iw_shift = e * g.p.dilation_w - g.p.pad_w;
      for (int u = 0; u < count; ++u) {
        const Run& run = runs[u];
        T* o = d + run.at;
        const int64_t id = run.id0 + t * g.p.dilation_d, ih = run.ih0 + r * g.p.dilation_h;
        if (id < 0 || id >= g.D || ih < 0 || ih >= g.H) { for (int i = 0; i < run.len; ++i) o[i] = T(0); continue; }
        const int a = static_cast<int>(std::clamp<int64_t>(lo - run.q0, 0, run.len));
        const int b = static_cast<int>(std::clamp<int64_t>(hi - run.q0, a, run.len));
        const T* in = run.line + c * g.xs[1] + id * g.xs[2] + ih * g.xs[3] + ((run.q0 + a) * g.p.stride_w + iw_shift) * g.xs[4];
        // runs are a few elements long: plain loops (vectorised) beat memcpy / fill calls here
        for (int i = 0; i < a; ++i) o[i] = T(0);
        if (step == 1) for (int i = 0; i < b - a; ++i) o[a + i] = in[i];
        else for (int i = 0; i < b - a; ++i) o[a + i] = in[i * step];
        for (int i = b; i < run.len; ++i) o[i] = T(0);
      }
      for (int i = nr; i < NR; ++i) d[i] = T(0);
      if (++e == g.S) { e = 0; if (++r == g.R) { r = 0; if (++t == g.T) { t = 0; ++c; } } }
    }
  }
};

// The adjoint of im2col: adds the column matrix back into a dense grad_input (already zeroed).
template <class T>
void col2im(const T* buf, const Geometry& g, const Block& blk, int64_t c0, T* dx, bool threaded) {
  const int64_t n0 = blk.n0, nb = blk.nb, per_sample = blk.rows() * g.Q, cols = nb * per_sample;
  const int64_t HW = g.H * g.W, DHW = g.D * HW;
  auto channels = [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c)
      for (int64_t t = 0; t < g.T; ++t)
        for (int64_t r = 0; r < g.R; ++r)
          for (int64_t s = 0; s < g.S; ++s) {
            const T* drow = buf + (((c * g.T + t) * g.R + r) * g.S + s) * cols;
            int64_t q_lo, q_hi;
            conv_valid_output_range(g.W, g.Q, s, g.p.stride_w, g.p.pad_w, g.p.dilation_w, &q_lo, &q_hi);
            const int64_t iw0 = q_lo * g.p.stride_w - g.p.pad_w + s * g.p.dilation_w;
            const int64_t step = g.p.stride_w;
            for (int64_t n = 0; n < nb; ++n) {
              T* sample = dx + ((n0 + n) * g.C + c0 + c) * DHW;
              for (int64_t row_out = blk.r0; row_out < blk.r1; ++row_out) {
                const int64_t od = row_out / g.P, pp = row_out - od * g.P;
                const int64_t id = conv_input_coord(od, t, g.p.stride_d, g.p.pad_d, g.p.dilation_d);
                const int64_t ih = conv_input_coord(pp, r, g.p.stride_h, g.p.pad_h, g.p.dilation_h);
                if (id < 0 || id >= g.D || ih < 0 || ih >= g.H) continue;
                const T* d = drow + n * per_sample + (row_out - blk.r0) * g.Q;
                T* dst = sample + id * HW + ih * g.W + iw0;
                for (int64_t q = q_lo; q < q_hi; ++q) dst[(q - q_lo) * step] += d[q];
              }
            }
          }
  };
  if (threaded && worth_threads(g.CRS * cols)) parallel_for(0, g.Cg, 1, channels);
  else channels(0, g.Cg);
}

// grad_output as a (pointer, sample stride, channel stride) with dense pixels, which is what the
// GEMM's segmented matrices read; other layouts are copied once into workspace slot 5.
template <class T>
struct ActivationRef { const T* data; int64_t sample_stride, channel_stride; };

template <class T>
ActivationRef<T> dense_pixels(const TensorView& v) {
  const int64_t N = v.size(0), C = v.size(1), D = v.size(2), H = v.size(3), W = v.size(4);
  if ((v.stride(4) == 1 || W == 1) && (v.stride(3) == W || H == 1) && (v.stride(2) == H * W || D == 1))
    return {v.ptr<const T>(), v.stride(0), v.stride(1)};
  T* d = thread_workspace_as<T>(static_cast<size_t>(v.numel()), 5);
  const T* s = v.ptr<const T>();
  const int64_t vox = D * H * W;
  parallel_for(0, N * C, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, vox)), [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const T* src = s + (nc / C) * v.stride(0) + (nc % C) * v.stride(1);
      T* dst = d + nc * vox;
      for (int64_t z = 0; z < D; ++z)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w)
            dst[(z * H + h) * W + w] = src[z * v.stride(2) + h * v.stride(3) + w * v.stride(4)];
    }
  });
  return {d, C * vox, vox};
}

// A 1x1x1 stride-1 unpadded convolution whose output voxels are the input's: a plain GEMM over
// channels (a transposed convolution's output_padding can make the sizes differ: not pointwise).
bool is_pointwise(const Geometry& g) {
  return g.T == 1 && g.R == 1 && g.S == 1 && g.p.stride_d == 1 && g.p.stride_h == 1 && g.p.stride_w == 1 &&
         g.p.pad_d == 0 && g.p.pad_h == 0 && g.p.pad_w == 0 && g.OD == g.D && g.P == g.H && g.Q == g.W;
}

// An NCHW activation tensor as a (channels, samples*pixels) matrix starting at sample n0,
// channel c0: rows are channels, columns run over pixels, then samples.
template <class T>
MatrixRef<T> activation_matrix(T* base, int64_t n0, int64_t c0, int64_t pixels, int64_t channel_stride,
                               int64_t sample_stride) {
  MatrixRef<T> m;
  m.data = base + n0 * sample_stride + c0 * channel_stride;
  m.row_stride = channel_stride;
  m.col_stride = 1;
  m.seg_len = pixels;
  m.seg_stride = sample_stride;
  return m;
}

// The forward's weights packed for the GEMM, one panel set per group, into dst (gemm_weight_elements).
template <class T>
int64_t gemm_weight_elements(const Geometry& g) { return packed_a_size<T>(g.Kg, g.CRS) * g.G; }

template <class T>
void pack_gemm_weights(const TensorView& weight, const Geometry& g, T* dst) {
  const T* w = dense_weight<T>(weight, kSlotWeight);
  const int64_t packed_size = packed_a_size<T>(g.Kg, g.CRS);
  for (int64_t grp = 0; grp < g.G; ++grp)
    pack_a<T>(g.Kg, g.CRS, dense_matrix<const T>(w + grp * g.Kg * g.CRS, g.CRS), dst + grp * packed_size, true);
}

// `prepared`: the weights as pack_gemm_weights left them, or null to pack them here.
template <class T>
void forward_gemm(const TensorView& input, const TensorView& weight, const TensorView* bias,
                  const TensorView& output, const Geometry& g, const T* prepared) {
  const T* x = input.ptr<const T>();
  std::vector<T> bias_dense;
  const T* b = dense_vector<T>(bias, bias_dense);
  T* y = output.ptr<T>();
  const bool relu = g.p.fuse_relu;
  const bool direct_input = is_pointwise(g) && g.xs[4] == 1 && g.xs[3] == g.W && (g.xs[2] == g.H * g.W || g.D == 1);
  const ChunkPlan plan = plan_chunks(g, 0);  // no column matrix: blocks need not fit a buffer
  const int64_t packed_size = packed_a_size<T>(g.Kg, g.CRS);
  if (!prepared) {
    T* packed = thread_workspace_as<T>(static_cast<size_t>(packed_size * g.G), kSlotPackedWeights);
    pack_gemm_weights<T>(weight, g, packed);
    prepared = packed;
  }
  std::vector<PackedA<T>> weights(g.G);
  for (int64_t grp = 0; grp < g.G; ++grp) weights[grp] = packed_a_at<T>(g.Kg, g.CRS, prepared + grp * packed_size);
  auto run_chunk = [&](int64_t chunk, bool threaded) {
    const Block blk = plan.block(chunk, g);
    const int64_t n0 = blk.n0, nb = blk.nb, per_sample = blk.rows() * g.Q;
    for (int64_t grp = 0; grp < g.G; ++grp) {
      const PackedA<T>& A = weights[grp];
      MatrixRef<const T> B;
      const Im2colSource<T> implicit(x, g, blk, grp * g.Cg);
      const BPanelSource<T> source{&Im2colSource<T>::pack, &implicit};
      if (direct_input) B = activation_matrix<const T>(x, n0, grp * g.Cg, g.PQ, g.xs[1], g.xs[0]);
      auto gemm = [&](int64_t cols, const MatrixRef<T>& Cm, const T* rb) {
        if (direct_input) gemm_blocked<T>(cols, A, B, Cm, false, rb, nullptr, relu, threaded);
        else gemm_blocked<T>(cols, A, source, Cm, false, rb, nullptr, relu, threaded);
      };
      const T* group_bias = b ? b + grp * g.Kg : nullptr;
      if (nb > 1 && g.PQ < kDenseOutputBelow) {
        // Small feature maps: most register tiles would straddle two samples and take the slow
        // scatter path, so the GEMM writes a dense (K/groups, samples*pixels) block, copied out
        // one (channel, sample) row at a time.
        T* dense = thread_workspace_as<T>(static_cast<size_t>(g.Kg * nb * g.PQ), kSlotOutput);
        gemm(nb * g.PQ, dense_matrix<T>(dense, nb * g.PQ), group_bias);
        for (int64_t k = 0; k < g.Kg; ++k)
          for (int64_t n = 0; n < nb; ++n)
            std::memcpy(y + ((n0 + n) * g.K + grp * g.Kg + k) * g.PQ, dense + (k * nb + n) * g.PQ, sizeof(T) * g.PQ);
        continue;
      }
      MatrixRef<T> Cm = activation_matrix<T>(y + blk.r0 * g.Q, n0, grp * g.Kg, per_sample, g.PQ, g.K * g.PQ);
      gemm(nb * per_sample, Cm, group_bias);
    }
  };
  if (plan.parallel_chunks)
    parallel_for(0, plan.chunks, 1, [&](int64_t s, int64_t e) { for (int64_t c = s; c < e; ++c) run_chunk(c, false); });
  else
    for (int64_t c = 0; c < plan.chunks; ++c) run_chunk(c, true);
}

// grad_input (+ bias per channel, for the transposed convolution's forward).
template <class T>
void backward_input_gemm(const TensorView& grad_output, const TensorView& weight, const TensorView* bias,
                         const TensorView& grad_input, const Geometry& g) {
  const T* w = dense_weight<T>(weight, kSlotWeight);
  std::vector<T> bias_dense;
  const T* b = dense_vector<T>(bias, bias_dense);
  const int64_t DHW = g.D * g.H * g.W;
  T* dx = grad_input.ptr<T>();
  const ActivationRef<T> dy_ref = dense_pixels<T>(grad_output);
  const T* dy = dy_ref.data;
  const int64_t dy_sample = dy_ref.sample_stride, dy_channel = dy_ref.channel_stride;
  const bool pointwise = is_pointwise(g);
  const ChunkPlan plan = plan_chunks(g, pointwise ? 0 : g.CRS);
  // A = W_g^T: (C/groups*R*S) x (K/groups), packed once for all chunks
  const int64_t packed_size = packed_a_size<T>(g.CRS, g.Kg);
  T* packed = thread_workspace_as<T>(static_cast<size_t>(packed_size * g.G), kSlotPackedWeights);
  std::vector<PackedA<T>> weights_t(g.G);
  for (int64_t grp = 0; grp < g.G; ++grp)
    weights_t[grp] = pack_a<T>(g.CRS, g.Kg, dense_matrix<const T>(w + grp * g.Kg * g.CRS, 1, g.CRS),
                               packed + grp * packed_size, true);
  auto run_chunk = [&](int64_t chunk, bool threaded) {
    const Block blk = plan.block(chunk, g);
    const int64_t n0 = blk.n0, nb = blk.nb, per_sample = blk.rows() * g.Q;
    if (!pointwise && blk.r0 == 0) {  // a sample's first block: its gradient starts at the bias
      for (int64_t n = n0; n < n0 + nb; ++n)
        for (int64_t c = 0; c < g.C; ++c)
          std::fill(dx + (n * g.C + c) * DHW, dx + (n * g.C + c + 1) * DHW, b ? b[c] : T(0));
    }
    for (int64_t grp = 0; grp < g.G; ++grp) {
      const PackedA<T>& A = weights_t[grp];
      MatrixRef<const T> B =
          activation_matrix<const T>(dy + blk.r0 * g.Q, n0, grp * g.Kg, per_sample, dy_channel, dy_sample);
      if (pointwise) {
        MatrixRef<T> Cm = activation_matrix<T>(dx, n0, grp * g.Cg, g.PQ, g.PQ, g.C * g.PQ);
        gemm_blocked<T>(nb * g.PQ, A, B, Cm, false, b ? b + grp * g.Cg : nullptr, nullptr, false, threaded);
      } else {
        T* cols = thread_workspace_as<T>(static_cast<size_t>(g.CRS * nb * per_sample), kSlotColumns);
        gemm_blocked<T>(nb * per_sample, A, B, dense_matrix<T>(cols, nb * per_sample), false, nullptr, nullptr,
                        false, threaded);
        col2im(cols, g, blk, grp * g.Cg, dx, threaded);
      }
    }
  };
  const int64_t bps = plan.blocks_per_sample;
  if (plan.parallel_chunks && bps > 1 && g.N >= num_threads()) {
    // blocks of one sample add into overlapping input rows: a sample stays on one thread
    parallel_for(0, g.N, 1, [&](int64_t s, int64_t e) {
      for (int64_t c = s * bps; c < e * bps; ++c) run_chunk(c, false);
    });
  } else if (plan.parallel_chunks && bps == 1) {
    parallel_for(0, plan.chunks, 1, [&](int64_t s, int64_t e) { for (int64_t c = s; c < e; ++c) run_chunk(c, false); });
  } else {
    for (int64_t c = 0; c < plan.chunks; ++c) run_chunk(c, true);
  }
}

template <class T>
void backward_weight_gemm(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                          const Geometry& g) {
  const T* x = input.ptr<const T>();
  const ActivationRef<T> dy_ref = dense_pixels<T>(grad_output);
  const T* dy = dy_ref.data;
  const int64_t dy_sample = dy_ref.sample_stride, dy_channel = dy_ref.channel_stride;
  T* dw = grad_weight.ptr<T>();
  const int64_t wsize = g.K * g.CRS;
  const ChunkPlan plan = plan_chunks(g, 2 * g.CRS);
  // one chunk's GEMMs, accumulating into `out` (K x CRS) unless `first`
  auto run_chunk = [&](int64_t chunk, bool first, T* out, bool threaded) {
    const Block blk = plan.block(chunk, g);
    const int64_t n0 = blk.n0, per_sample = blk.rows() * g.Q, cols = blk.nb * per_sample;
    for (int64_t grp = 0; grp < g.G; ++grp) {
      T* colbuf = thread_workspace_as<T>(static_cast<size_t>(g.CRS * cols), kSlotColumns);
      im2col(x, g, blk, grp * g.Cg, colbuf, threaded);
      MatrixRef<const T> A =
          activation_matrix<const T>(dy + blk.r0 * g.Q, n0, grp * g.Kg, per_sample, dy_channel, dy_sample);
      // B = columns^T read in place: the GEMM's B packing gathers through the strides, so no
      // separate transpose pass over the (CRS x cols) column matrix
      MatrixRef<const T> B = dense_matrix<const T>(colbuf, 1, cols);
      gemm_blocked<T>(g.Kg, g.CRS, cols, A, B, dense_matrix<T>(out + grp * g.Kg * g.CRS, g.CRS), !first, nullptr,
                      nullptr, false, threaded);
    }
  };
  if (!plan.parallel_chunks) {
    for (int64_t c = 0; c < plan.chunks; ++c) run_chunk(c, c == 0, dw, true);
    return;
  }
  // Each thread sums its chunks into a private copy; the copies are added at the end.
  const int threads = num_threads();
  std::vector<T*> partials(threads, nullptr);
  parallel_for(0, threads, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      T* out = t == 0 ? dw : thread_workspace_as<T>(static_cast<size_t>(wsize), kSlotPartial);
      partials[t] = out;
      const int64_t per = (plan.chunks + threads - 1) / threads;
      const int64_t c0 = t * per, c1 = std::min(plan.chunks, c0 + per);
      if (c0 >= c1) std::fill(out, out + wsize, T(0));
      for (int64_t c = c0; c < c1; ++c) run_chunk(c, c == c0, out, false);
    }
  });
  parallel_for(0, wsize, 65536, [&](int64_t b, int64_t e) {
    for (int t = 1; t < threads; ++t) {
      if (!partials[t]) continue;
      for (int64_t i = b; i < e; ++i) dw[i] += partials[t][i];
    }
  });
}

// Any rank >= 3 (N, K, ..., W): the axes between K and the last are walked as rows.
template <class T>
void backward_bias_impl(const TensorView& dy, const TensorView& db) {
  const int64_t N = dy.size(0), K = dy.size(1), W = dy.size(-1), sw = dy.stride(-1);
  int64_t rows = 1;
  for (int i = 2; i + 1 < dy.ndim; ++i) rows *= dy.size(i);
  const T* d = dy.ptr<const T>();
  T* out = db.ptr<T>();
  parallel_for(0, K, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, N * rows * W)), [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      double sum = 0;  // double accumulation: the batch x voxels sum is long
      for (int64_t n = 0; n < N; ++n)
        for (int64_t row = 0; row < rows; ++row) {
          int64_t off = n * dy.stride(0) + k * dy.stride(1), rest = row;
          for (int i = dy.ndim - 2; i >= 2; --i) {
            off += (rest % dy.size(i)) * dy.stride(i);
            rest /= dy.size(i);
          }
          const T* line = d + off;
          T s = 0;
          for (int64_t w = 0; w < W; ++w) s += line[w * sw];
          sum += s;
        }
      out[k * db.stride(0)] = static_cast<T>(sum);
    }
  });
}

DirectShape direct_shape(const Geometry& g) {
  DirectShape sh{g.N, g.C, g.D, g.H, g.W, g.K, g.T, g.R, g.S, g.OD, g.P, g.Q, {}};
  for (int i = 0; i < 5; ++i) sh.xs[i] = g.xs[i];
  return sh;
}

// A depth-1 convolution (2-D, or 3-D with a unit depth everywhere) that Winograd F(2x2, 3x3) takes.
bool planar(const Geometry& g) { return g.D == 1 && g.T == 1 && g.OD == 1 && g.p.pad_d == 0; }

// Which kernel a forward runs: the path decides what its prepared weights hold.
enum class ForwardPath : int32_t { Direct = 1, Winograd = 2, Gemm = 3 };

template <class T>
ForwardPath forward_path(const Geometry& g, bool output_contiguous) {
  const ConvParams& p = g.p;
  // the direct kernel's strided-column loop is scalar: a strided 3-D layer does better as a GEMM
  const bool strided_volume = g.T > 1 && p.stride_w > 1;
  if (conv_direct_applies(g.Cg * g.T, g.Kg, g.Q) && !strided_volume && output_contiguous) return ForwardPath::Direct;
  if (std::is_same_v<T, float> && planar(g) && conv2d_winograd_applies(g.C, g.K, g.P, g.Q, g.R, g.S, p) &&
      output_contiguous)
    return ForwardPath::Winograd;
  return ForwardPath::Gemm;
}

// Prepared weights: a 64-byte header (what they were made for), then the packed elements.
struct PreparedHeader {
  uint32_t magic;
  int32_t path, simd, element_bytes;
  int64_t K, CRS, G, elements;
  int64_t reserved[2];
};
static_assert(sizeof(PreparedHeader) == 64, "the payload stays 64-byte aligned");
constexpr uint32_t kPreparedMagic = 0x4d4b5057;

template <class T>
PreparedHeader prepared_header(const Geometry& g, ForwardPath path) {
  PreparedHeader h{};
  h.magic = kPreparedMagic;
  h.path = static_cast<int32_t>(path);
  h.simd = static_cast<int32_t>(simd_level());
  h.element_bytes = static_cast<int32_t>(sizeof(T));
  h.K = g.K; h.CRS = g.CRS; h.G = g.G;
  h.elements = path == ForwardPath::Gemm       ? gemm_weight_elements<T>(g)
               : path == ForwardPath::Winograd ? conv2d_winograd_weight_elements(g.K, g.C)
                                               : 0;
  return h;
}

// The payload of `prepared` when its header matches this layer, path and SIMD level; else null
// (the forward then packs the weights itself, so a stale buffer costs time, never correctness).
template <class T>
const T* prepared_payload(const TensorView* prepared, const Geometry& g, ForwardPath path) {
  if (!prepared || path == ForwardPath::Direct) return nullptr;
  const PreparedHeader want = prepared_header<T>(g, path);
  if (prepared->numel() * static_cast<int64_t>(dtype_size(prepared->dtype)) <
      static_cast<int64_t>(sizeof(PreparedHeader)) + want.elements * static_cast<int64_t>(sizeof(T)))
    return nullptr;
  const auto* base = static_cast<const unsigned char*>(prepared->data);
  PreparedHeader have;
  std::memcpy(&have, base, sizeof(have));
  if (std::memcmp(&have, &want, sizeof(have)) != 0) return nullptr;
  return reinterpret_cast<const T*>(base + sizeof(PreparedHeader));
}

template <class T>
void forward_impl(const TensorView& input, const TensorView& weight, const TensorView* bias,
                  const TensorView& output, const Geometry& g, const TensorView* prepared) {
  const ConvParams& p = g.p;
  const ForwardPath path = forward_path<T>(g, output.is_contiguous());
  const T* ready = prepared_payload<T>(prepared, g, path);
  if (path == ForwardPath::Direct) {
    const T* w = dense_weight<T>(weight, kSlotWeight);
    std::vector<T> bias_dense;
    conv_direct_forward<T>(input.ptr<const T>(), direct_shape(g), w, dense_vector<T>(bias, bias_dense),
                           output.ptr<T>(), p);
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (path == ForwardPath::Winograd) {
      const float* w = ready ? nullptr : dense_weight<float>(weight, kSlotWeight);
      std::vector<float> bias_dense;
      const int64_t shape[4] = {g.N, g.C, g.H, g.W};
      const int64_t xs[4] = {g.xs[0], g.xs[1], g.xs[3], g.xs[4]};
      conv2d_winograd_forward(input.ptr<const float>(), shape, xs, w, g.K, false, dense_vector<float>(bias, bias_dense),
                              output.ptr<float>(), g.P, g.Q, p.pad_h, p.pad_w, p.fuse_relu, ready);
      return;
    }
  }
  forward_gemm<T>(input, weight, bias, output, g, ready);
}

// Backward-input of a 3x3 stride-1 planar layer as the forward Winograd convolution of grad_output
// with the flipped, transposed weight and padding 2 - pad (float32); false when it does not apply.
bool backward_input_winograd(const TensorView& grad_output, const TensorView& weight, const TensorView* bias,
                             const TensorView& grad_input, const Geometry& g) {
  const ConvParams& p = g.p;
  if (grad_input.dtype != DType::Float32 || bias || !planar(g) ||
      !conv2d_winograd_applies(g.K, g.C, g.H, g.W, g.R, g.S, p) || !grad_input.is_contiguous() || p.pad_h > 2 ||
      p.pad_w > 2 || conv_output_size(g.H, g.R, 1, p.pad_h, 1) != g.P || conv_output_size(g.W, g.S, 1, p.pad_w, 1) != g.Q)
    return false;
  const float* w = dense_weight<float>(weight, kSlotWeight);
  const int64_t shape[4] = {g.N, g.K, g.P, g.Q};
  const int64_t dys[4] = {grad_output.stride(0), grad_output.stride(1), grad_output.stride(3), grad_output.stride(4)};
  conv2d_winograd_forward(grad_output.ptr<const float>(), shape, dys, w, g.C, true, nullptr, grad_input.ptr<float>(),
                          g.H, g.W, 2 - p.pad_h, 2 - p.pad_w, false);
  return true;
}

// Backward-input of a stride-1 ungrouped layer as the forward convolution of grad_output with the
// flipped, transposed weight (C, K, T, R, S) and padding dilation * (k - 1) - pad: the GEMM then
// reduces over K*T*R*S instead of writing a 27x column matrix for col2im, and it reuses the
// forward's kernels (direct, GEMM). The bias (a transposed convolution's) becomes the forward
// bias. False when it does not apply.
template <class T>
bool backward_input_as_forward(const TensorView& grad_output, const TensorView& weight, const TensorView* bias,
                               const TensorView& grad_input, const Geometry& g) {
  const ConvParams& p = g.p;
  if (g.G != 1 || p.stride_d != 1 || p.stride_h != 1 || p.stride_w != 1 || !grad_input.is_contiguous()) return false;
  // Measured (1 thread, AVX2, 3x3x3): a win where col2im's GEMM has a short reduction (few output
  // channels) and the volume is large; on small, wide layers (128-256 channels at 10x14x10 or
  // less) the 27x im2col of grad_output costs more than col2im saves.
  if ((g.K > 64 && g.K >= g.C) || g.D * g.H * g.W < 1024) return false;
  ConvParams f;
  f.pad_d = p.dilation_d * (g.T - 1) - p.pad_d;
  f.pad_h = p.dilation_h * (g.R - 1) - p.pad_h;
  f.pad_w = p.dilation_w * (g.S - 1) - p.pad_w;
  f.dilation_d = p.dilation_d; f.dilation_h = p.dilation_h; f.dilation_w = p.dilation_w;
  if (f.pad_d < 0 || f.pad_h < 0 || f.pad_w < 0 || g.T * g.R * g.S == 1) return false;
  if (conv_output_size(g.OD, g.T, 1, f.pad_d, f.dilation_d) != g.D ||
      conv_output_size(g.P, g.R, 1, f.pad_h, f.dilation_h) != g.H ||
      conv_output_size(g.Q, g.S, 1, f.pad_w, f.dilation_w) != g.W)
    return false;
  std::vector<T> flipped(static_cast<size_t>(g.C * g.K * g.T * g.R * g.S));
  const T* w = weight.ptr<const T>();
  const int64_t taps = g.T * g.R * g.S;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t k = 0; k < g.K; ++k)
      for (int64_t t = 0; t < g.T; ++t)
        for (int64_t r = 0; r < g.R; ++r)
          for (int64_t e = 0; e < g.S; ++e)
            flipped[static_cast<size_t>((c * g.K + k) * taps + (t * g.R + r) * g.S + e)] =
                w[k * weight.stride(0) + c * weight.stride(1) + (g.T - 1 - t) * weight.stride(2) +
                  (g.R - 1 - r) * weight.stride(3) + (g.S - 1 - e) * weight.stride(4)];
  TensorView wf = weight;
  wf.data = flipped.data();
  const int64_t shape[5] = {g.C, g.K, g.T, g.R, g.S};
  int64_t stride = 1;
  for (int i = 4; i >= 0; --i) { wf.shape[i] = shape[i]; wf.strides[i] = stride; stride *= shape[i]; }
  const Geometry fg = make_geometry(grad_output, wf, grad_input, f);
  forward_impl<T>(grad_output, wf, bias, grad_input, fg, nullptr);
  return true;
}

}  // namespace

void conv_forward(const TensorView& input, const TensorView& weight, const TensorView* bias,
                  const TensorView& output, const ConvParams& p, const TensorView* prepared) {
  const Geometry g = make_geometry(input, weight, output, p);
  if (input.dtype == DType::Float64) forward_impl<double>(input, weight, bias, output, g, prepared);
  else forward_impl<float>(input, weight, bias, output, g, prepared);
}

namespace {
template <class T>
int64_t prepared_bytes(const Geometry& g) {
  const ForwardPath path = forward_path<T>(g, true);
  if (path == ForwardPath::Direct) return 0;
  return static_cast<int64_t>(sizeof(PreparedHeader)) + prepared_header<T>(g, path).elements * int64_t(sizeof(T));
}

template <class T>
void prepare(const TensorView& weight, const Geometry& g, const TensorView& prepared) {
  const ForwardPath path = forward_path<T>(g, true);
  const int64_t have = prepared.numel() * int64_t(dtype_size(prepared.dtype)), need = prepared_bytes<T>(g);
  MEDKERN_CHECK_VALUE(have >= need, "argument 'prepared' holds ", have, " bytes, this layer's prepared weights take ",
                      need);
  if (path == ForwardPath::Direct) return;
  auto* base = static_cast<unsigned char*>(prepared.data);
  const PreparedHeader h = prepared_header<T>(g, path);
  T* dst = reinterpret_cast<T*>(base + sizeof(PreparedHeader));
  if constexpr (std::is_same_v<T, float>) {
    if (path == ForwardPath::Winograd)
      conv2d_winograd_prepare_weights(dense_weight<float>(weight, kSlotWeight), g.K, g.C, false, dst);
  }
  if (path == ForwardPath::Gemm) pack_gemm_weights<T>(weight, g, dst);
  std::memcpy(base, &h, sizeof(h));
}
}  // namespace

int64_t conv_prepared_weight_bytes(const std::vector<int64_t>& input_shape, const std::vector<int64_t>& weight_shape,
                                   const std::vector<int64_t>& output_shape, const ConvParams& p, DType dtype) {
  const Geometry g = shape_geometry(input_shape.data(), weight_shape.data(), output_shape.data(), p);
  if (dtype == DType::Float64) return prepared_bytes<double>(g);
  if (dtype == DType::Float32) return prepared_bytes<float>(g);
  return 0;
}

void conv_prepare_weight(const TensorView& weight, const std::vector<int64_t>& input_shape,
                         const std::vector<int64_t>& output_shape, const ConvParams& p, const TensorView& prepared) {
  const Geometry g = shape_geometry(input_shape.data(), weight.shape.data(), output_shape.data(), p);
  if (weight.dtype == DType::Float64) prepare<double>(weight, g, prepared);
  else prepare<float>(weight, g, prepared);
}

void conv_backward_input(const TensorView& grad_output, const TensorView& weight, const TensorView* bias,
                         const TensorView& grad_input, const ConvParams& p) {
  const Geometry g = make_geometry(grad_input, weight, grad_output, p);
  if (grad_input.dtype == DType::Float64) {
    if (!backward_input_as_forward<double>(grad_output, weight, bias, grad_input, g))
      backward_input_gemm<double>(grad_output, weight, bias, grad_input, g);
  } else if (!backward_input_winograd(grad_output, weight, bias, grad_input, g) &&
             !backward_input_as_forward<float>(grad_output, weight, bias, grad_input, g)) {
    backward_input_gemm<float>(grad_output, weight, bias, grad_input, g);
  }
}

void conv_backward_weight(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                          const ConvParams& p) {
  const Geometry g = make_geometry(input, grad_weight, grad_output, p);
  if (conv_direct_weight_grad_applies(g.CRS, p.stride_w) && grad_weight.is_contiguous()) {
    auto direct = [&](auto tag) {
      using T = decltype(tag);
      const ActivationRef<T> dy = dense_pixels<T>(grad_output);
      conv_direct_backward_weight<T>(input.ptr<const T>(), direct_shape(g), dy.data, dy.sample_stride,
                                     dy.channel_stride, grad_weight.ptr<T>(), p);
    };
    if (input.dtype == DType::Float64) direct(double{});
    else direct(float{});
    return;
  }
  if (input.dtype == DType::Float64) backward_weight_gemm<double>(grad_output, input, grad_weight, g);
  else backward_weight_gemm<float>(grad_output, input, grad_weight, g);
}

void conv_backward_bias(const TensorView& grad_output, const TensorView& grad_bias) {
  if (grad_output.dtype == DType::Float64) backward_bias_impl<double>(grad_output, grad_bias);
  else backward_bias_impl<float>(grad_output, grad_bias);
}

}  // namespace medkern::cpu
