// cpu/simd/gemm_scalar.cpp — portable instantiation of the GEMM tile kernel (one lane per
// "vector", 4x4 tile), for CPUs without AVX2 and as the reference path in tests.
#include "cpu/gemm_kernels.h"

namespace {
template <class Scalar>
struct VecScalar {
  using T = Scalar; using Reg = Scalar; static constexpr int W = 1;
  static Reg zero() { return Reg(0); }
  static Reg load(const T* p) { return *p; }
  static Reg loadu(const T* p) { return *p; }
  static void storeu(T* p, Reg x) { *p = x; }
  static Reg broadcast(T x) { return x; }
  static Reg fma(Reg a, Reg b, Reg c) { return a * b + c; }
  static Reg add(Reg a, Reg b) { return a + b; }
  static Reg max(Reg a, Reg b) { return a > b ? a : b; }
};
#include "cpu/simd/gemm_microkernel.h"
}  // namespace

namespace medkern::cpu {
GemmKernel<float> gemm_kernel_f32_scalar() { return make_gemm_kernel<VecScalar<float>, 4, 4>(); }
GemmKernel<double> gemm_kernel_f64_scalar() { return make_gemm_kernel<VecScalar<double>, 4, 4>(); }
}  // namespace medkern::cpu
