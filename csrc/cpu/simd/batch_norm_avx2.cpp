// cpu/simd/batch_norm_avx2.cpp — the batch-norm element-wise passes of batch_norm_kernels.h
// compiled for avx2 (CMake gives this file its -m flags); batch_norm.cpp picks one at run time.
#define MEDKERN_SIMD_NS simd_avx2
#include "cpu/simd/batch_norm_kernels.h"
