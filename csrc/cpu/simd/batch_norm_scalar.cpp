// cpu/simd/batch_norm_scalar.cpp — the batch-norm element-wise passes of batch_norm_kernels.h
// compiled for scalar (CMake gives this file its -m flags); batch_norm.cpp picks one at run time.
#define MEDKERN_SIMD_NS simd_scalar
#include "cpu/simd/batch_norm_kernels.h"
