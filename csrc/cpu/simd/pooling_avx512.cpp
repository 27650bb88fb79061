// cpu/simd/pooling_avx512.cpp — the pooling kernels of pooling_kernels.h compiled for avx512
// (CMake gives this file its -m flags); pooling.cpp picks one at run time.
#define MEDKERN_SIMD_NS simd_avx512
#include "cpu/simd/pooling_kernels.h"
