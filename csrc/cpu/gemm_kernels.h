// cpu/gemm_kernels.h — the interface between the portable GEMM driver (gemm.cpp, packing and
// blocking) and the per-ISA register-tile kernels (simd/gemm_*.cpp): a tile shape and a function
// pointer, picked once per call from cpu::simd_level().
#pragma once
#include <cstdint>

#include "medkern/simd.h"

namespace medkern::cpu {

// What the tile kernel does after its k loop; applied on the last k block only.
template <class T>
struct TileEpilogue {
  bool accumulate = false;    // add the tile to what C holds (beta = 1)
  const T* row_bias = nullptr; // MR values, one per tile row (conv: per output channel)
  const T* col_bias = nullptr; // NR values, one per tile column (linear: per output feature)
  bool relu = false;
};

template <class T>
using GemmTileFn = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, const TileEpilogue<T>& ep);

template <class T>
struct GemmKernel {
  int mr = 0, nr = 0;
  GemmTileFn<T> tile = nullptr;
};

GemmKernel<float> gemm_kernel_f32_avx512();
GemmKernel<double> gemm_kernel_f64_avx512();
GemmKernel<float> gemm_kernel_f32_avx2();
GemmKernel<double> gemm_kernel_f64_avx2();
GemmKernel<float> gemm_kernel_f32_scalar();
GemmKernel<double> gemm_kernel_f64_scalar();

template <class T>
GemmKernel<T> gemm_kernel_for(SimdLevel level);

}  // namespace medkern::cpu
