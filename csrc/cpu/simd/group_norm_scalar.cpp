// cpu/simd/group_norm_scalar.cpp — the group-norm row passes of group_norm_kernels.h compiled for
// scalar (CMake gives this file its -m flags); group_norm.cpp picks one at run time.
#define MEDKERN_SIMD_NS simd_scalar
#include "cpu/simd/group_norm_kernels.h"
