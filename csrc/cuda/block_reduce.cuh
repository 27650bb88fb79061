// cuda/block_reduce.cuh — warp- and block-level sums and the atomic add used by split
// reductions. Shuffle trees inside a warp, one shared-memory slot per warp across warps:
// the standard shape, kept in one place so every reduction kernel sums the same way.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

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
