// cpu/simd/group_norm_avx2.cpp — the group-norm row passes of group_norm_kernels.h compiled for
// avx2 (CMake gives this file its -m flags); group_norm.cpp picks one at run time.
#define MEDKERN_SIMD_NS simd_avx2
#include "cpu/simd/group_norm_kernels.h"
