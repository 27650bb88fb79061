// cpu/simd/winograd_avx2.cpp — the Winograd tile transforms (winograd_kernels.h) compiled for
// AVX2 (CMake gives this file its -m flags).
#define MEDKERN_SIMD_NS simd_avx2
#include "cpu/simd/winograd_kernels.h"
