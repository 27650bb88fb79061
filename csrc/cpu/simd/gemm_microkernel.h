// cpu/simd/gemm_microkernel.h — the GEMM register-tile kernel, written once as a template over a
// vector type (Vec: lane count W, load/store/broadcast/fma/max) and instantiated per ISA file
// (gemm_avx512.cpp, gemm_avx2.cpp, gemm_scalar.cpp), each compiled with its own -m flags.
// Include only from those files, inside their anonymous namespace, so no ISA leaks across.
#pragma once
#include <cstdint>

#include "cpu/gemm_kernels.h"

// Computes an MR x (NV*W) tile C = A_panel * B_panel (+ C) (+ bias) (relu) in registers.
// a: kc x MR (a[k*MR + i]), b: kc x NR (b[k*NR + j]), both packed and zero-padded, so the
// loop has no edge cases; c: row stride ldc, NR contiguous columns per row.
template <class Vec, int MR, int NV>
void gemm_microkernel(int64_t kc, const typename Vec::T* a, const typename Vec::T* b, typename Vec::T* c,
                      int64_t ldc, const medkern::cpu::TileEpilogue<typename Vec::T>& ep) {
  using T = typename Vec::T;
  using R = typename Vec::Reg;
  constexpr int W = Vec::W;
  constexpr int NR = NV * W;
  R acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[i][v] = Vec::zero();
  for (int64_t k = 0; k < kc; ++k) {
    R bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = Vec::load(b + v * W);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const R av = Vec::broadcast(a[i]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[i][v] = Vec::fma(av, bv[v], acc[i][v]);
    }
    a += MR;
    b += NR;
  }
  R col_bias[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) col_bias[v] = ep.col_bias ? Vec::loadu(ep.col_bias + v * W) : Vec::zero();
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    T* row = c + i * ldc;
    const R rb = Vec::broadcast(ep.row_bias ? ep.row_bias[i] : T(0));
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      R x = acc[i][v];
      if (ep.accumulate) x = Vec::add(x, Vec::loadu(row + v * W));
      if (ep.row_bias) x = Vec::add(x, rb);
      if (ep.col_bias) x = Vec::add(x, col_bias[v]);
      if (ep.relu) x = Vec::max(x, Vec::zero());
      Vec::storeu(row + v * W, x);
    }
  }
}

// The kernel table entry for one (Vec, MR, NV) choice.
template <class Vec, int MR, int NV>
medkern::cpu::GemmKernel<typename Vec::T> make_gemm_kernel() {
  return {MR, NV * Vec::W, &gemm_microkernel<Vec, MR, NV>};
}
