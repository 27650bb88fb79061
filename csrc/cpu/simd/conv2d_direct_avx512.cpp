// cpu/simd/conv2d_direct_avx512.cpp — the direct convolution loop nest compiled for avx512 (this
// file's CMake flags); the kernel itself is in conv2d_direct_kernel.h.
#include "cpu/conv_direct.h"

namespace {
#include "cpu/simd/conv2d_direct_kernel.h"
}  // namespace

namespace medkern::cpu {
DirectRowsFn<float> conv2d_direct_rows_f32_avx512() { return &conv2d_direct_dispatch<float>; }
DirectRowsFn<double> conv2d_direct_rows_f64_avx512() { return &conv2d_direct_dispatch<double>; }
DirectWeightGradFn<float> conv2d_direct_weight_grad_f32_avx512() { return &conv2d_direct_weight_grad<float>; }
DirectWeightGradFn<double> conv2d_direct_weight_grad_f64_avx512() { return &conv2d_direct_weight_grad<double>; }
}  // namespace medkern::cpu
