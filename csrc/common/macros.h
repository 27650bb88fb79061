// common/macros.h — MEDKERN_HD marks per-element math that both the CPU loops and the CUDA
// kernels call, so each formula exists once (see DESIGN.md, "Write the math once").
#pragma once
#if defined(__CUDACC__)
#define MEDKERN_HD __host__ __device__ __forceinline__
#else
#define MEDKERN_HD inline
#endif
