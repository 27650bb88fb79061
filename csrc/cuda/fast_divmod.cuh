// cuda/fast_divmod.cuh — division by a run-time constant with a multiply and a shift, for the
// index decompositions inside kernels (GEMM tile loads, pooling gathers), where a real 32- or
// 64-bit division would cost more than the arithmetic around it.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace medkern::cuda {

// Granlund-Montgomery (round-up variant). Numerators must be < 2^31; callers check the sizes.
struct FastDivmod {
  uint32_t divisor = 1, multiplier = 0, shift = 0;
  FastDivmod() = default;
  explicit FastDivmod(int64_t d) : divisor(static_cast<uint32_t>(d > 0 ? d : 1)) {  // 0 only for empty shapes
    while ((uint64_t{1} << shift) < divisor) ++shift;
    multiplier = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - divisor)) / divisor + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const {
    return static_cast<uint32_t>((static_cast<uint64_t>(__umulhi(n, multiplier)) + n) >> shift);
  }
  __device__ __forceinline__ void divmod(uint32_t n, uint32_t& q, uint32_t& r) const {
    q = div(n);
    r = n - q * divisor;
  }
};

}  // namespace medkern::cuda
