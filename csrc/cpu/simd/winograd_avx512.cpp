// cpu/simd/winograd_avx512.cpp — the Winograd tile transforms (winograd_kernels.h) compiled for
// AVX-512 (CMake gives this file its -m flags).
#define MEDKERN_SIMD_NS simd_avx512
#include "cpu/simd/winograd_kernels.h"
