// cpu/simd/resample_avx512.cpp — the resampler's vector row kernel (resample_kernels.h) compiled
// for AVX-512 (CMake gives this file its -m flags and -ffp-contract=off).
// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_*(), which its
// -Wmaybe-uninitialized reports as a use of an uninitialized value: a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define MEDKERN_SIMD_NS simd_avx512
#include "cpu/simd/resample_kernels.h"
