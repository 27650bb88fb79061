// cuda/gemm_pipeline.cuh — the multistage tensor-core GEMM behind the float32 (TF32) convolutions
// of conv_tf32.cu. Both operands reach shared memory through 16-byte cp.async copies (4 floats
// contiguous in the source; a copy the problem marks as outside the tensor or in padding is
// zero-filled), STAGES k-tiles are in flight while the tensor cores work on the oldest one
// (mma.sync m16n8k8, TF32 inputs, FP32 accumulation), and the epilogue goes through shared memory
// so every output row is written coalesced along the GEMM's M axis.
//
// A problem P supplies (all device functions const):
//   using Job;  Job job(int z)   -> rows M, reduction range [k_begin, k_end) of grid slice z
//                                   (a split of K, a stride phase), plus problem-specific fields
//   int64_t N;                   -> columns
//   ASide a; BSide b;            -> operand sides, see ChunkLoader
//   OutRow out_row(int64_t m, const Job&); void store(const OutRow&, int64_t n, float v)
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "cuda/cuda_check.cuh"
#include "cuda/gemm_tiles.cuh"  // mma_tile, MmaTraits (the fragment math both GEMMs share)

namespace medkern::cuda::pipeline {

constexpr int kBK = 32;  // reduction depth of one stage, in floats

__device__ __forceinline__ void cp_async16(float* smem, const float* gmem, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  // src-size 0: nothing is read, the 16 bytes are zero-filled (gmem is still a valid address)
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(valid ? 16 : 0));
#else
  __trap();  // the launchers take this path on sm_80+ only
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

// Rounds to TF32 (round to nearest, ties away, as cuDNN's TF32 path) with gemm_tiles.cuh's
// conversion: the layout conversions apply it once, so the tensor cores see exactly TF32 values.
__device__ __forceinline__ float round_tf32(float v) { return __uint_as_float(MmaTraits<MathMode::TF32>::convert(v)); }

// One operand tile in shared memory.
//   KMajor   [ROWS][kBK + 4]: the source is contiguous along k (im2col of NHWC, KRSC weights);
//   RowMajor [kBK][ROWS + 8]: the source is contiguous along the rows (NHWC channels as rows).
// The padding keeps the 16-byte copies aligned and puts a warp's fragment reads (8 rows x 4 k)
// on 32 distinct banks in both layouts.
template <bool KMajor, int ROWS> struct TileShape {
  static constexpr int kLd = KMajor ? kBK + 4 : ROWS + 8;
  static constexpr int kFloats = KMajor ? ROWS * kLd : kBK * kLd;
  __device__ __forceinline__ static int offset(int row, int k) { return KMajor ? row * kLd + k : k * kLd + row; }
};

// Copies one operand's k-tile with 16-byte chunks. The side (the problem's view of A or B) has:
//   static constexpr bool kKMajor;   a chunk is 4 consecutive k of one row (true) or 4 rows of one k
//   struct RowCtx; RowCtx row_ctx(int64_t row, const Job&)   per row (the chunk's first row)
//   struct KCtx;   KCtx k_ctx(int64_t k, const Job&)         per k (the chunk's first k)
//   const float* src(const RowCtx&, const KCtx&)  the chunk's address, nullptr outside the tensor
//   const float* base()                           any valid address (for zero-filled copies)
// KMajor: each thread owns one 4-wide k column of the tile and the same rows in every k-tile, so
// row contexts live in registers and each k-tile costs one k decomposition per thread.
// RowMajor: each thread owns one 4-row chunk for the whole kernel and a few k lines per k-tile.
// Rows (RowMajor) and the reduction end (KMajor) come in multiples of 4, so a chunk is all in or
// all out; the launchers check this.
template <class Side, int ROWS, int THREADS, class Job>
struct ChunkLoader {
  static constexpr bool kKMajor = Side::kKMajor;
  using Shape = TileShape<kKMajor, ROWS>;
  static constexpr int kChunksPerLine = kKMajor ? kBK / 4 : ROWS / 4;
  static constexpr int kLines = kKMajor ? ROWS : kBK;
  static constexpr int kLinesPerPass = THREADS / kChunksPerLine;
  static constexpr int kPasses = kLines / kLinesPerPass;
  static_assert(THREADS % kChunksPerLine == 0 && kLines % kLinesPerPass == 0, "tile must divide among threads");
  static constexpr int kRowSlots = kKMajor ? kPasses : 1;

  typename Side::RowCtx rows[kRowSlots];
  bool row_ok[kRowSlots];
  int chunk, line0;

  __device__ __forceinline__ void init(const Side& side, int tid, int64_t row0, int64_t nrows, const Job& job) {
    chunk = tid % kChunksPerLine;
    line0 = tid / kChunksPerLine;
    if constexpr (kKMajor) {
#pragma unroll
      for (int i = 0; i < kPasses; ++i) {
        const int64_t r = row0 + line0 + i * kLinesPerPass;
        row_ok[i] = r < nrows;
        rows[i] = side.row_ctx(row_ok[i] ? r : row0, job);
      }
    } else {
      const int64_t r = row0 + chunk * 4;
      row_ok[0] = r < nrows;
      rows[0] = side.row_ctx(row_ok[0] ? r : row0, job);
    }
  }

  __device__ __forceinline__ void load(const Side& side, float* tile, int64_t k0, int64_t k_end,
                                       const Job& job) const {
    if constexpr (kKMajor) {
      const int64_t k = k0 + chunk * 4;
      const bool k_ok = k < k_end;
      const typename Side::KCtx kc = side.k_ctx(k_ok ? k : k0, job);
#pragma unroll
      for (int i = 0; i < kPasses; ++i) {
        const float* src = (k_ok && row_ok[i]) ? side.src(rows[i], kc) : nullptr;
        cp_async16(tile + Shape::offset(line0 + i * kLinesPerPass, chunk * 4), src ? src : side.base(),
                   src != nullptr);
      }
    } else {
#pragma unroll
      for (int i = 0; i < kPasses; ++i) {
        const int line = line0 + i * kLinesPerPass;
        const int64_t k = k0 + line;
        const float* src = (k < k_end && row_ok[0]) ? side.src(rows[0], side.k_ctx(k, job)) : nullptr;
        cp_async16(tile + Shape::offset(chunk * 4, line), src ? src : side.base(), src != nullptr);
      }
    }
  }
};

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES> struct TileConfig {
  static constexpr int kBM = BM, kBN = BN, kWarpsM = WARPS_M, kWarpsN = WARPS_N, kStages = STAGES;
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
};

template <class P, class Cfg> struct PipelineLayout {
  static constexpr int kThreads = Cfg::kThreads;
  using LoaderA = ChunkLoader<typename P::ASide, Cfg::kBM, kThreads, typename P::Job>;
  using LoaderB = ChunkLoader<typename P::BSide, Cfg::kBN, kThreads, typename P::Job>;
  static constexpr int kStageFloats = LoaderA::Shape::kFloats + LoaderB::Shape::kFloats;
  static constexpr int kLdC = Cfg::kBM + 4;  // epilogue tile [BN][BM + 4]: m contiguous, conflict-free
  static constexpr int kMainFloats = Cfg::kStages * kStageFloats;
  static constexpr int kEpilogueFloats = Cfg::kBN * kLdC;
  static constexpr size_t kSmemBytes =
      sizeof(float) * size_t(kMainFloats > kEpilogueFloats ? kMainFloats : kEpilogueFloats);
};

// Blocks per SM the kernels are compiled for: 2 caps registers at 128 per thread for the 256-thread
// configurations (no spills with nvcc 13), so two blocks share an SM and hide each other's waits.
#ifndef MEDKERN_TF32_MIN_BLOCKS
#define MEDKERN_TF32_MIN_BLOCKS 2
#endif

template <class P, class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, MEDKERN_TF32_MIN_BLOCKS) tf32_gemm_kernel(const P prob) {
  using L = PipelineLayout<P, Cfg>;
  constexpr int BM = Cfg::kBM, BN = Cfg::kBN, THREADS = Cfg::kThreads, STAGES = Cfg::kStages;
  constexpr int WM = BM / Cfg::kWarpsM, WN = BN / Cfg::kWarpsN, MI = WM / 16, NI = WN / 8;
  static_assert(WM % 16 == 0 && WN % 8 == 0, "warp tile must be whole m16n8 tiles");
  static_assert(THREADS % BM == 0, "the epilogue keeps one output row per thread");
  using ShapeA = typename L::LoaderA::Shape;
  using ShapeB = typename L::LoaderB::Shape;
  extern __shared__ __align__(16) float smem[];

  const typename P::Job job = prob.job(int(blockIdx.z));
  const int64_t m0 = int64_t(blockIdx.x) * BM, n0 = int64_t(blockIdx.y) * BN;
  if (m0 >= job.M) return;  // the whole block: slices (stride phases) have different row counts
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = (warp / Cfg::kWarpsN) * WM, wn = (warp % Cfg::kWarpsN) * WN;
  const int grp = lane >> 2, tig = lane & 3;

  typename L::LoaderA la;
  typename L::LoaderB lb;
  la.init(prob.a, tid, m0, job.M, job);
  lb.init(prob.b, tid, n0, prob.N, job);

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  const int64_t k_begin = job.k_begin, k_end = job.k_end;
  const int tiles = k_end > k_begin ? int((k_end - k_begin + kBK - 1) / kBK) : 0;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < tiles) {
      float* stage = smem + s * L::kStageFloats;
      la.load(prob.a, stage, k_begin + int64_t(s) * kBK, k_end, job);
      lb.load(prob.b, stage + ShapeA::kFloats, k_begin + int64_t(s) * kBK, k_end, job);
    }
    cp_async_commit();  // empty groups keep the wait counts uniform
  }

  for (int t = 0; t < tiles; ++t) {
    cp_async_wait<STAGES - 2>();  // tile t has landed (this thread's copies) ...
    __syncthreads();              // ... everyone's, and the stage refilled below is no longer read
    {
      const int next = t + STAGES - 1;
      if (next < tiles) {
        float* stage = smem + (next % STAGES) * L::kStageFloats;
        la.load(prob.a, stage, k_begin + int64_t(next) * kBK, k_end, job);
        lb.load(prob.b, stage + ShapeA::kFloats, k_begin + int64_t(next) * kBK, k_end, job);
      }
      cp_async_commit();
    }
    const float* As = smem + (t % STAGES) * L::kStageFloats;
    const float* Bs = As + ShapeA::kFloats;
#pragma unroll
    for (int ks = 0; ks < kBK; ks += 8) {
      uint32_t af[MI][4], bf[NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        const int r = wm + i * 16 + grp;
        af[i][0] = __float_as_uint(As[ShapeA::offset(r, ks + tig)]);
        af[i][1] = __float_as_uint(As[ShapeA::offset(r + 8, ks + tig)]);
        af[i][2] = __float_as_uint(As[ShapeA::offset(r, ks + tig + 4)]);
        af[i][3] = __float_as_uint(As[ShapeA::offset(r + 8, ks + tig + 4)]);
      }
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        const int c = wn + j * 8 + grp;
        bf[j][0] = __float_as_uint(Bs[ShapeB::offset(c, ks + tig)]);
        bf[j][1] = __float_as_uint(Bs[ShapeB::offset(c, ks + tig + 4)]);
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) mma_tile<MathMode::TF32>(acc[i][j], af[i], bf[j]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the pipeline's buffers are free: reuse them for the epilogue tile

  float* Cs = smem;
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = wm + i * 16 + grp + (e >> 1) * 8;
        const int col = wn + j * 8 + tig * 2 + (e & 1);
        Cs[col * L::kLdC + row] = acc[i][j][e];
      }
  __syncthreads();
  const int m_local = tid % BM;
  const int64_t m = m0 + m_local;
  if (m < job.M) {
    const typename P::OutRow out = prob.out_row(m, job);
#pragma unroll 4
    for (int n_local = tid / BM; n_local < BN; n_local += THREADS / BM) {
      const int64_t n = n0 + n_local;
      if (n < prob.N) prob.store(out, n, Cs[n_local * L::kLdC + m_local]);
    }
  }
}

// Shared memory one block may opt into on the current device (99 KiB on sm_86/89, 163 KiB on
// A100, 227 KiB on H100/H200).
inline size_t smem_optin_bytes() {
  int device = 0, bytes = 0;
  MEDKERN_CUDA_CHECK(cudaGetDevice(&device));
  MEDKERN_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return static_cast<size_t>(bytes);
}

// Whether configuration Cfg of problem P fits this device's shared memory.
template <class P, class Cfg> bool fits_device() { return PipelineLayout<P, Cfg>::kSmemBytes <= smem_optin_bytes(); }

// Launches prob on `grid` with configuration Cfg (dynamic shared memory above 48 KiB is opted into
// once per device; the launchers only pick configurations that fit_device()).
template <class P, class Cfg>
void launch_tf32_gemm(const P& prob, dim3 grid, cudaStream_t stream, const char* name) {
  using L = PipelineLayout<P, Cfg>;
  auto kernel = tf32_gemm_kernel<P, Cfg>;
  static std::atomic<uint64_t> opted_in{0};  // bit d: done on device d (devices 0..63)
  int device = 0;
  MEDKERN_CUDA_CHECK(cudaGetDevice(&device));
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (bit == 0 || !(opted_in.load(std::memory_order_acquire) & bit)) {
    MEDKERN_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(L::kSmemBytes)));
    opted_in.fetch_or(bit, std::memory_order_release);
  }
  kernel<<<grid, Cfg::kThreads, L::kSmemBytes, stream>>>(prob);
  MEDKERN_CUDA_CHECK_LAUNCH(name);
}

}  // namespace medkern::cuda::pipeline
