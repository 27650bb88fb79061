// medkern/gemm.h — the CPU matrix product every layer with weights runs on (convolution via
// im2col, linear, and their backward passes): packed, cache-blocked, SIMD micro-kernel.
// Row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, op = transpose when asked.
#pragma once
#include <cstdint>

namespace medkern::cpu {

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace medkern::cpu
