// cpu/gemm_driver.h — the blocked GEMM every weighted layer runs on, over matrices described by
// strides plus "column segments", so conv code can hand in NCHW tensors directly: column j of a
// matrix lives at (j / seg_len) * seg_stride + (j % seg_len) * col_stride. With this one shape,
// (sample, pixel) columns of an activation tensor form a single matrix without copying.
#pragma once
#include <cstdint>
#include <limits>

namespace medkern::cpu {

template <class T>
struct MatrixRef {
  T* data = nullptr;
  int64_t row_stride = 0;
  int64_t col_stride = 1;
  int64_t seg_len = std::numeric_limits<int64_t>::max();  // columns per segment
  int64_t seg_stride = 0;                                 // element distance between segments

  int64_t col_offset(int64_t j) const { return (j / seg_len) * seg_stride + (j % seg_len) * col_stride; }
};

template <class T>
MatrixRef<T> dense_matrix(T* data, int64_t row_stride, int64_t col_stride = 1) {
  MatrixRef<T> m;
  m.data = data; m.row_stride = row_stride; m.col_stride = col_stride;
  return m;
}

// A packed once into the register tile's row panels, reusable across many GEMMs with the same
// left operand (a conv's weights across sample chunks). `mr` records the tile it was packed for.
template <class T>
struct PackedA {
  const T* data = nullptr;
  int64_t M = 0, K = 0;
  int mr = 0;
};

// Elements needed to pack an M x K left operand for the current SIMD level.
template <class T>
int64_t packed_a_size(int64_t M, int64_t K);

// Packs A into dst (packed_a_size elements); threaded when allow_threads.
template <class T>
PackedA<T> pack_a(int64_t M, int64_t K, const MatrixRef<const T>& A, T* dst, bool allow_threads);

// An A that pack_a wrote to `data` earlier in this process (a convolution's prepared weights).
template <class T>
PackedA<T> packed_a_at(int64_t M, int64_t K, const T* data);

// A right operand the caller packs itself, panel by panel (an implicit im2col): pack(ctx, j0, nr,
// k0, kc, NR, dst) writes rows [k0, k0+kc) x columns [j0, j0+nr) as dst[k*NR + j], zeros in
// columns nr..NR-1. Called from several threads at once when the GEMM is threaded.
template <class T>
struct BPanelSource {
  void (*pack)(const void* ctx, int64_t j0, int nr, int64_t k0, int64_t kc, int NR, T* dst) = nullptr;
  const void* ctx = nullptr;
};

template <class T>
void gemm_blocked(int64_t N, const PackedA<T>& A, const BPanelSource<T>& B, const MatrixRef<T>& C,
                  bool accumulate, const T* row_bias, const T* col_bias, bool relu, bool allow_threads);

// As below, with A already packed.
template <class T>
void gemm_blocked(int64_t N, const PackedA<T>& A, const MatrixRef<const T>& B, const MatrixRef<T>& C,
                  bool accumulate, const T* row_bias, const T* col_bias, bool relu, bool allow_threads);

// C[M,N] (+)= A[M,K] * B[K,N] (+ row_bias[i]) (+ col_bias[j]), then max(.,0) when relu.
// C must have col_stride 1. Uses thread_workspace slots 6 (packed A) and 7 (packed B) of each
// thread; callers use slots 0..5. With allow_threads the work is split over OpenMP threads
// (over column and row blocks); inside a parallel region it runs on the calling thread.
template <class T>
void gemm_blocked(int64_t M, int64_t N, int64_t K, const MatrixRef<const T>& A, const MatrixRef<const T>& B,
                  const MatrixRef<T>& C, bool accumulate, const T* row_bias, const T* col_bias, bool relu,
                  bool allow_threads);

}  // namespace medkern::cpu
