// cuda/gemm_tiles.cuh — the tiled GEMM shared by convolution (implicit GEMM: the im2col matrix is
// never built, tiles gather straight from NCHW tensors) and linear. A problem supplies two "sides"
// that load A(m, k) / B(k, n) (see TileLoader) and an epilogue (out_row(m, g) once per output row,
// then store(row, n, g, value, accumulate)) that writes C(m, n); the kernels here
// own tiling, shared memory and the math: a SIMT FMA kernel (float64, or float32 without TF32) and
// a tensor-core kernel on mma.sync (TF32 for float32, FP16 / BF16 inputs, FP32 accumulation).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda/cuda_check.cuh"
#include "cuda/dtype_dispatch.cuh"
#include "cuda/fast_divmod.cuh"

namespace medkern::cuda {

enum class MathMode { Simt, TF32, F16, BF16 };

// Per-thread loading of one operand tile (ROWS x BK). A side (the problem's view of A or B) has:
//   static constexpr bool kKFastest;   which source axis is contiguous
//   struct Ctx;    per-row state (a base pointer, output coordinates), trivially copyable
//   struct KPart;  per-k state (the decomposed reduction index), trivially copyable
//   Ctx ctx(int64_t row, int group); KPart k_part(int64_t k); Acc load(const Ctx&, const KPart&)
// so index decompositions (divisions) are done once per row and once per k, never per element.
// k-fastest sides (consecutive threads walk k: weights, NCHW pixels of a weight gradient) keep
// each thread on one k, compute its KPart once per k-tile and read row contexts from a shared
// table filled at block start. Rows-fastest sides (consecutive threads walk rows: output pixels
// of a forward convolution) keep each thread on one row with its context in registers and read
// KParts from a shared table that BK threads fill per k-tile (double-buffered).
template <class Side, class Acc, int ROWS, int BK, int THREADS>
struct TileLoader {
  static constexpr bool kKFastest = Side::kKFastest;
  static constexpr int kLoads = ROWS * BK / THREADS;
  static_assert(ROWS * BK % THREADS == 0, "tile must divide among the threads");
  static_assert(kKFastest || THREADS % ROWS == 0, "rows-fastest loading keeps one row per thread");
  static_assert(!kKFastest || THREADS % BK == 0, "k-fastest loading keeps one k per thread");
  static_assert(THREADS >= BK, "BK threads fill the k table");
  using Ctx = typename Side::Ctx;
  using KPart = typename Side::KPart;

  struct Shared {
    Ctx rows[kKFastest ? ROWS : 1];
    KPart ks[kKFastest ? 1 : 2][BK];
  };

  Acc reg[kLoads];
  Ctx ctx;
  bool row_ok = false;
  int tid;

  __device__ __forceinline__ int row_of(int i) const {
    const int idx = tid + i * THREADS;
    return kKFastest ? idx / BK : idx % ROWS;
  }
  __device__ __forceinline__ int k_of(int i) const {
    const int idx = tid + i * THREADS;
    return kKFastest ? idx % BK : idx / ROWS;
  }
  // Row contexts; visible to the block after the next barrier.
  __device__ __forceinline__ void init(const Side& side, Shared& sh, int thread, int64_t row0, int64_t rows, int g) {
    tid = thread;
    if constexpr (kKFastest) {
      for (int r = tid; r < ROWS; r += THREADS)
        if (row0 + r < rows) sh.rows[r] = side.ctx(row0 + r, g);
    } else {
      const int64_t r = row0 + tid % ROWS;
      row_ok = r < rows;
      if (row_ok) ctx = side.ctx(r, g);
    }
  }
  // KParts of the k-tile starting at k0 into table `buf`; visible after the next barrier.
  __device__ __forceinline__ void prepare(const Side& side, Shared& sh, int buf, int64_t k0) const {
    if constexpr (!kKFastest) {
      if (tid < BK) sh.ks[buf][tid] = side.k_part(k0 + tid);
    }
  }
  __device__ __forceinline__ void fetch(const Side& side, const Shared& sh, int buf, int64_t row0, int64_t rows,
                                        int64_t k0, int64_t k_end) {
    if constexpr (kKFastest) {
      const int64_t k = k0 + tid % BK;  // the same k for every i
      const bool k_ok = k < k_end;
      const KPart kp = side.k_part(k);
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        const int r = row_of(i);
        reg[i] = (k_ok && row0 + r < rows) ? side.load(sh.rows[r], kp) : Acc(0);
      }
    } else {
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        const int kk = k_of(i);
        reg[i] = (row_ok && k0 + kk < k_end) ? side.load(ctx, sh.ks[buf][kk]) : Acc(0);
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------
// SIMT kernel: BM x BN tile per block, TM x TN outputs per thread, register prefetch of the next
// k-tile while the current one is multiplied from shared memory.
template <class P, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    gemm_simt_kernel(P prob, int splits, int64_t k_chunk) {
  using Acc = typename P::Acc;
  constexpr int TX = BN / TN, TY = BM / TM, THREADS = TX * TY;
  __shared__ Acc As[BK][BM + 1];
  __shared__ Acc Bs[BK][BN + 1];

  const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
  const int split = blockIdx.z % splits, g = blockIdx.z / splits;
  const int64_t m0 = int64_t(blockIdx.x) * BM, n0 = int64_t(blockIdx.y) * BN;
  const int64_t k_begin = split * k_chunk;
  const int64_t k_end = std::min<int64_t>(prob.K, k_begin + k_chunk);

  using LoaderA = TileLoader<typename P::ASide, Acc, BM, BK, THREADS>;
  using LoaderB = TileLoader<typename P::BSide, Acc, BN, BK, THREADS>;
  __shared__ typename LoaderA::Shared a_sh;
  __shared__ typename LoaderB::Shared b_sh;
  LoaderA la;
  LoaderB lb;
  la.init(prob.a, a_sh, tid, m0, prob.M, g);
  lb.init(prob.b, b_sh, tid, n0, prob.N, g);

  Acc acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = Acc(0);

  int buf = 0;
  if (k_begin < k_end) {
    la.prepare(prob.a, a_sh, 0, k_begin);
    lb.prepare(prob.b, b_sh, 0, k_begin);
  }
  __syncthreads();
  if (k_begin < k_end) {
    la.fetch(prob.a, a_sh, 0, m0, prob.M, k_begin, k_end);
    lb.fetch(prob.b, b_sh, 0, n0, prob.N, k_begin, k_end);
  }
  for (int64_t kt = k_begin; kt < k_end; kt += BK) {
    __syncthreads();  // the previous tile's reads are done
#pragma unroll
    for (int i = 0; i < la.kLoads; ++i) As[la.k_of(i)][la.row_of(i)] = la.reg[i];
#pragma unroll
    for (int i = 0; i < lb.kLoads; ++i) Bs[lb.k_of(i)][lb.row_of(i)] = lb.reg[i];
    const bool more = kt + BK < k_end;
    if (more) {
      la.prepare(prob.a, a_sh, buf ^ 1, kt + BK);
      lb.prepare(prob.b, b_sh, buf ^ 1, kt + BK);
    }
    __syncthreads();
    if (more) {  // next tile's global loads overlap this tile's math
      la.fetch(prob.a, a_sh, buf ^ 1, m0, prob.M, kt + BK, k_end);
      lb.fetch(prob.b, b_sh, buf ^ 1, n0, prob.N, kt + BK, k_end);
    }
    buf ^= 1;
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      Acc av[TM], bv[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) av[i] = As[kk][ty + i * TY];
#pragma unroll
      for (int j = 0; j < TN; ++j) bv[j] = Bs[kk][tx + j * TX];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
    }
  }
  const bool accumulate = splits > 1;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t m = m0 + ty + i * TY;
    if (m >= prob.M) continue;
    const typename P::OutRow row = prob.out_row(m, g);  // once per row: its index split is not cheap
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t n = n0 + tx + j * TX;
      if (n < prob.N) prob.store(row, n, g, acc[i][j], accumulate);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Tensor-core kernel: 64 x 64 x 32 tiles, 4 warps in 2 x 2, each warp 32 x 32 built from
// m16n8 mma.sync tiles. Operands sit in shared memory k-contiguous ([row][k]) with padding
// chosen so the fragment reads of a warp hit 32 distinct banks.
template <MathMode Mode> struct MmaTraits;
template <> struct MmaTraits<MathMode::TF32> {
  using Smem = uint32_t;  // tf32 bit patterns
  static constexpr int kStep = 8, kPad = 4;
  __device__ static Smem convert(float v) {
    uint32_t u;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(u) : "f"(v));
    return u;
  }
};
template <> struct MmaTraits<MathMode::F16> {
  using Smem = __half;
  static constexpr int kStep = 16, kPad = 8;
  __device__ static Smem convert(float v) { return __float2half_rn(v); }
};
template <> struct MmaTraits<MathMode::BF16> {
  using Smem = __nv_bfloat16;
  static constexpr int kStep = 16, kPad = 8;
  __device__ static Smem convert(float v) { return __float2bfloat16_rn(v); }
};

template <MathMode Mode>
__device__ __forceinline__ void mma_tile(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (Mode == MathMode::TF32) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else if constexpr (Mode == MathMode::F16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#else
  __trap();  // the launchers never choose tensor cores below sm_80
#endif
}

// Blocks per SM the tensor-core kernel is compiled for (register budget 65536 / (128 * this)).
#ifndef MEDKERN_MMA_MIN_BLOCKS
#define MEDKERN_MMA_MIN_BLOCKS 2
#endif

template <class P, MathMode Mode>
__global__ void __launch_bounds__(128, MEDKERN_MMA_MIN_BLOCKS) gemm_mma_kernel(P prob, int splits, int64_t k_chunk) {
  using Tr = MmaTraits<Mode>;
  using Smem = typename Tr::Smem;
  constexpr int BM = 64, BN = 64, BK = 32, THREADS = 128;
  constexpr int LD = BK + Tr::kPad;
  // 32-bit words per smem row, and the two 32-bit halves of a fragment's k offset
  constexpr int kElemsPerWord = 4 / int(sizeof(Smem));
  __shared__ __align__(16) Smem As[BM][LD];
  __shared__ __align__(16) Smem Bs[BN][LD];

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
  const int grp = lane / 4, tig = lane % 4;
  const int split = blockIdx.z % splits, g = blockIdx.z / splits;
  const int64_t m0 = int64_t(blockIdx.x) * BM, n0 = int64_t(blockIdx.y) * BN;
  const int64_t k_begin = split * k_chunk;
  const int64_t k_end = std::min<int64_t>(prob.K, k_begin + k_chunk);

  using LoaderA = TileLoader<typename P::ASide, float, BM, BK, THREADS>;
  using LoaderB = TileLoader<typename P::BSide, float, BN, BK, THREADS>;
  __shared__ typename LoaderA::Shared a_sh;
  __shared__ typename LoaderB::Shared b_sh;
  LoaderA la;
  LoaderB lb;
  la.init(prob.a, a_sh, tid, m0, prob.M, g);
  lb.init(prob.b, b_sh, tid, n0, prob.N, g);

  float acc[2][4][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  // a 32-bit word of smem at (row, k): one tf32 value, or two consecutive 16-bit values
  auto word = [](const Smem* row_ptr, int k) -> uint32_t {
    return *reinterpret_cast<const uint32_t*>(row_ptr + k);
  };

  int buf = 0;
  if (k_begin < k_end) {
    la.prepare(prob.a, a_sh, 0, k_begin);
    lb.prepare(prob.b, b_sh, 0, k_begin);
  }
  __syncthreads();
  if (k_begin < k_end) {
    la.fetch(prob.a, a_sh, 0, m0, prob.M, k_begin, k_end);
    lb.fetch(prob.b, b_sh, 0, n0, prob.N, k_begin, k_end);
  }
  for (int64_t kt = k_begin; kt < k_end; kt += BK) {
    __syncthreads();
#pragma unroll
    for (int i = 0; i < la.kLoads; ++i) As[la.row_of(i)][la.k_of(i)] = Tr::convert(la.reg[i]);
#pragma unroll
    for (int i = 0; i < lb.kLoads; ++i) Bs[lb.row_of(i)][lb.k_of(i)] = Tr::convert(lb.reg[i]);
    const bool more = kt + BK < k_end;
    if (more) {
      la.prepare(prob.a, a_sh, buf ^ 1, kt + BK);
      lb.prepare(prob.b, b_sh, buf ^ 1, kt + BK);
    }
    __syncthreads();
    if (more) {
      la.fetch(prob.a, a_sh, buf ^ 1, m0, prob.M, kt + BK, k_end);
      lb.fetch(prob.b, b_sh, buf ^ 1, n0, prob.N, kt + BK, k_end);
    }
    buf ^= 1;
#pragma unroll
    for (int ks = 0; ks < BK; ks += Tr::kStep) {
      // fragment k offsets: tf32 uses columns tig and tig+4; 16-bit types pairs at 2tig and 2tig+8
      const int k_lo = ks + tig * kElemsPerWord;
      const int k_hi = k_lo + Tr::kStep / 2;
      uint32_t af[2][4], bf[4][2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const Smem* r0 = As[wm + i * 16 + grp];
        const Smem* r8 = As[wm + i * 16 + grp + 8];
        af[i][0] = word(r0, k_lo);
        af[i][1] = word(r8, k_lo);
        af[i][2] = word(r0, k_hi);
        af[i][3] = word(r8, k_hi);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const Smem* rn = Bs[wn + j * 8 + grp];
        bf[j][0] = word(rn, k_lo);
        bf[j][1] = word(rn, k_hi);
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) mma_tile<Mode>(acc[i][j], af[i], bf[j]);
    }
  }
  // each thread owns 4 output rows (2 m16 tiles x rows grp, grp + 8) of 8 columns each
  const bool accumulate = splits > 1;
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t m = m0 + wm + i * 16 + grp + half * 8;
      if (m >= prob.M) continue;
      const typename P::OutRow row = prob.out_row(m, g);
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t n = n0 + wn + j * 8 + tig * 2 + e;
          if (n < prob.N) prob.store(row, n, g, acc[i][j][half * 2 + e], accumulate);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Host side.

inline int multiprocessor_count() {
  int device = 0, count = 0;
  MEDKERN_CUDA_CHECK(cudaGetDevice(&device));
  MEDKERN_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

inline int compute_capability_major() {
  int device = 0, major = 0;
  MEDKERN_CUDA_CHECK(cudaGetDevice(&device));
  MEDKERN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major;
}

// The math mode for element type T: tensor cores whenever the dtype allows them (float32 only
// with allow_tf32, as torch's flag says) and the GPU has them (sm_80+), SIMT FMA otherwise.
template <class T> MathMode math_mode_for(bool allow_tf32) {
  const bool tensor_cores = compute_capability_major() >= 8;
  if constexpr (std::is_same_v<T, float>) return allow_tf32 && tensor_cores ? MathMode::TF32 : MathMode::Simt;
  if constexpr (std::is_same_v<T, __half>) return MathMode::F16;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return MathMode::BF16;
  return MathMode::Simt;
}

// Split-K count for a reduction-heavy, output-light GEMM (weight gradients): enough blocks to
// cover the GPU about twice, each split still long enough to amortise its tile loads.
inline int choose_splits(int64_t output_tiles, int64_t K, int64_t min_chunk = 512) {
  const int64_t target = 2 * int64_t(multiprocessor_count());
  if (output_tiles >= target) return 1;
  int64_t splits = (target + output_tiles - 1) / output_tiles;
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, K / min_chunk));
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(splits, 256)));
}

// Launches prob over its (M, N, groups) with `splits` parts of K. With splits > 1 the epilogue
// accumulates, so the caller must have zeroed the output (cudaMemsetAsync, stream-ordered).
template <class P>
void launch_gemm(const P& prob, MathMode mode, int splits, cudaStream_t stream, const char* name) {
  if (prob.M <= 0 || prob.N <= 0 || prob.groups <= 0) return;
  MEDKERN_CHECK_VALUE(prob.K < (int64_t{1} << 31), name, ": reduction length ", prob.K,
                      " exceeds 2^31 - 1, which the CUDA kernels do not support");
  constexpr int BK_SIMT = 16, BK_MMA = 32;
  const int bk = mode == MathMode::Simt ? BK_SIMT : BK_MMA;
  splits = std::max(1, splits);
  int64_t k_chunk = (prob.K + splits - 1) / splits;
  k_chunk = (k_chunk + bk - 1) / bk * bk;
  if (k_chunk == 0) k_chunk = bk;
  splits = static_cast<int>(std::max<int64_t>(1, (prob.K + k_chunk - 1) / k_chunk));
  const int64_t tiles_m = (prob.M + 63) / 64, tiles_n = (prob.N + 63) / 64;
  MEDKERN_CHECK_VALUE(tiles_m < (int64_t{1} << 31) && tiles_n <= 65535 && int64_t(prob.groups) * splits <= 65535,
                      name, ": problem too large for one launch (M=", prob.M, ", N=", prob.N, ", groups=",
                      prob.groups, ")");
  const dim3 grid(static_cast<unsigned>(tiles_m), static_cast<unsigned>(tiles_n),
                  static_cast<unsigned>(prob.groups * splits));
  // Only the modes math_mode_for can pick for this element type are instantiated.
  using Elem = typename P::Elem;
  if constexpr (std::is_same_v<Elem, double>) {
    gemm_simt_kernel<P, 64, 64, BK_SIMT, 4, 4><<<grid, 256, 0, stream>>>(prob, splits, k_chunk);
  } else if constexpr (std::is_same_v<Elem, float>) {
    if (mode == MathMode::TF32) {
      gemm_mma_kernel<P, MathMode::TF32><<<grid, 128, 0, stream>>>(prob, splits, k_chunk);
    } else {
      gemm_simt_kernel<P, 64, 64, BK_SIMT, 4, 4><<<grid, 256, 0, stream>>>(prob, splits, k_chunk);
    }
  } else if constexpr (std::is_same_v<Elem, __half>) {
    gemm_mma_kernel<P, MathMode::F16><<<grid, 128, 0, stream>>>(prob, splits, k_chunk);
  } else {
    gemm_mma_kernel<P, MathMode::BF16><<<grid, 128, 0, stream>>>(prob, splits, k_chunk);
  }
  MEDKERN_CUDA_CHECK_LAUNCH(name);
}

}  // namespace medkern::cuda
