// cuda/block_reduce.cuh — warp- and block-level sums, the block-level (count, mean, M2) combine
// of the normalization statistics, and the atomic add used by split reductions. Shuffle trees
// inside a warp, one shared-memory slot per warp across warps: the standard shape, kept in one
// place so every reduction kernel sums the same way.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/batch_norm_math.h"

namespace medkern::cuda {

template <class A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block; the result is valid in thread 0. Needs blockDim.x a multiple of 32 and
// at most 1024; `scratch` holds 32 values. Ends with a barrier so scratch can be reused.
template <class A> __device__ __forceinline__ A block_sum(A v, A* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  A total = A(0);
  if (warp == 0) {
    total = lane < warps ? scratch[lane] : A(0);
    total = warp_sum(total);
  }
  __syncthreads();
  return total;
}

__device__ __forceinline__ MeanM2 shfl_down(const MeanM2& v, int offset) {
  return {__shfl_down_sync(0xffffffffu, v.count, offset), __shfl_down_sync(0xffffffffu, v.mean, offset),
          __shfl_down_sync(0xffffffffu, v.m2, offset)};
}

// Combines every thread's (count, mean, M2); the result is valid in thread 0.
__device__ __forceinline__ MeanM2 block_mean_m2(MeanM2 v) {
  __shared__ MeanM2 warp_totals[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v = mean_m2_combine(v, shfl_down(v, offset));
  if (lane == 0) warp_totals[warp] = v;
  __syncthreads();
  MeanM2 total{};
  if (warp == 0) {
    total = lane < warps ? warp_totals[lane] : MeanM2{};
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) total = mean_m2_combine(total, shfl_down(total, offset));
  }
  __syncthreads();
  return total;
}

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(__half* p, float v) { atomicAdd(p, __float2half_rn(v)); }
__device__ __forceinline__ void atomic_add(__nv_bfloat16* p, float v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  atomicAdd(p, __float2bfloat16_rn(v));
#else
  (void)p; (void)v; __trap();  // reduced-precision outputs never take the split (atomic) path
#endif
}

}  // namespace medkern::cuda
