// cpu/simd/resample_avx2.cpp — the resampler's vector row kernel (resample_kernels.h) compiled
// for AVX2 (CMake gives this file its -m flags and -ffp-contract=off).
#define MEDKERN_SIMD_NS simd_avx2
#include "cpu/simd/resample_kernels.h"
