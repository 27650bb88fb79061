// cpu/simd/pooling_scalar.cpp — the pooling kernels of pooling_kernels.h compiled for scalar
// (CMake gives this file its -m flags); pooling.cpp picks one at run time.
#define MEDKERN_SIMD_NS simd_scalar
#include "cpu/simd/pooling_kernels.h"
