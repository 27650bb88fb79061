// cpu/simd/gemm_avx512.cpp — AVX-512 instantiation of the GEMM tile kernel: 8 rows x 3 zmm
// (48 floats / 24 doubles) = 24 accumulators, leaving registers for 3 B vectors and a broadcast.
#include <immintrin.h>

#include "cpu/gemm_kernels.h"

namespace {
struct VecF32 {
  using T = float; using Reg = __m512; static constexpr int W = 16;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg load(const T* p) { return _mm512_load_ps(p); }
  static Reg loadu(const T* p) { return _mm512_loadu_ps(p); }
  static void storeu(T* p, Reg x) { _mm512_storeu_ps(p, x); }
  static Reg broadcast(T x) { return _mm512_set1_ps(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
};
struct VecF64 {
  using T = double; using Reg = __m512d; static constexpr int W = 8;
  static Reg zero() { return _mm512_setzero_pd(); }
  static Reg load(const T* p) { return _mm512_load_pd(p); }
  static Reg loadu(const T* p) { return _mm512_loadu_pd(p); }
  static void storeu(T* p, Reg x) { _mm512_storeu_pd(p, x); }
  static Reg broadcast(T x) { return _mm512_set1_pd(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_pd(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_pd(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_pd(a, b); }
};
#include "cpu/simd/gemm_microkernel.h"
}  // namespace

namespace medkern::cpu {
GemmKernel<float> gemm_kernel_f32_avx512() { return make_gemm_kernel<VecF32, 8, 3>(); }
GemmKernel<double> gemm_kernel_f64_avx512() { return make_gemm_kernel<VecF64, 8, 3>(); }
}  // namespace medkern::cpu
