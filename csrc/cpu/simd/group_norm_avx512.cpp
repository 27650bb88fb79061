// cpu/simd/group_norm_avx512.cpp — the group-norm row passes of group_norm_kernels.h compiled for
// avx512 (CMake gives this file its -m flags); group_norm.cpp picks one at run time.
#define MEDKERN_SIMD_NS simd_avx512
#include "cpu/simd/group_norm_kernels.h"
