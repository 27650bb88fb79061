// cpu/simd/gemm_avx2.cpp — AVX2+FMA instantiation of the GEMM tile kernel: 4 rows x 3 ymm
// (24 floats / 12 doubles) = 12 accumulators of the 16 ymm registers.
#include <immintrin.h>

#include "cpu/gemm_kernels.h"

namespace {
struct VecF32 {
  using T = float; using Reg = __m256; static constexpr int W = 8;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg load(const T* p) { return _mm256_load_ps(p); }
  static Reg loadu(const T* p) { return _mm256_loadu_ps(p); }
  static void storeu(T* p, Reg x) { _mm256_storeu_ps(p, x); }
  static Reg broadcast(T x) { return _mm256_set1_ps(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
};
struct VecF64 {
  using T = double; using Reg = __m256d; static constexpr int W = 4;
  static Reg zero() { return _mm256_setzero_pd(); }
  static Reg load(const T* p) { return _mm256_load_pd(p); }
  static Reg loadu(const T* p) { return _mm256_loadu_pd(p); }
  static void storeu(T* p, Reg x) { _mm256_storeu_pd(p, x); }
  static Reg broadcast(T x) { return _mm256_set1_pd(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_pd(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_pd(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_pd(a, b); }
};
#include "cpu/simd/gemm_microkernel.h"
}  // namespace

namespace medkern::cpu {
GemmKernel<float> gemm_kernel_f32_avx2() { return make_gemm_kernel<VecF32, 4, 3>(); }
GemmKernel<double> gemm_kernel_f64_avx2() { return make_gemm_kernel<VecF64, 4, 3>(); }
}  // namespace medkern::cpu
