// cpu/simd/pooling_avx2.cpp — the pooling kernels of pooling_kernels.h compiled for avx2
// (CMake gives this file its -m flags); pooling.cpp picks one at run time.
#define MEDKERN_SIMD_NS simd_avx2
#include "cpu/simd/pooling_kernels.h"
