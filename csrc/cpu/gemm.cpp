// cpu/gemm.cpp — the portable half of the CPU GEMM: kernel choice, packing and cache blocking
// (BLIS-style: A packed once into MR-row panels, B packed one kc x NR panel at a time that stays
// in L1 while A's row panels sweep it; B may also come from a caller's panel packer, e.g. an
// implicit im2col), and the public medkern::cpu::gemm.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "cpu/gemm_driver.h"
#include "cpu/gemm_kernels.h"
#include "medkern/errors.h"
#include "medkern/gemm.h"
#include "medkern/parallel.h"
#include "medkern/workspace.h"

namespace medkern::cpu {

template <>
GemmKernel<float> gemm_kernel_for<float>(SimdLevel level) {
  switch (level) {
    case SimdLevel::AVX512: return gemm_kernel_f32_avx512();
    case SimdLevel::AVX2: return gemm_kernel_f32_avx2();
    default: return gemm_kernel_f32_scalar();
  }
}

template <>
GemmKernel<double> gemm_kernel_for<double>(SimdLevel level) {
  switch (level) {
    case SimdLevel::AVX512: return gemm_kernel_f64_avx512();
    case SimdLevel::AVX2: return gemm_kernel_f64_avx2();
    default: return gemm_kernel_f64_scalar();
  }
}

namespace {

constexpr int64_t kBlockK = 256;       // kc: an A panel (MR x kc) stays in L1
constexpr int64_t kBlockNTarget = 512; // nc: a packed B block (kc x nc) stays in L2
constexpr int kSlotPackedA = 6, kSlotPackedB = 7;
constexpr int kMaxTile = 8 * 48;       // largest MR x NR among the kernels

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Calls f(j, offset) for columns j0..j1-1 without a division per column.
template <class T, class F>
void for_column_offsets(const MatrixRef<T>& m, int64_t j0, int64_t j1, const F& f) {
  if (j0 >= j1) return;
  int64_t seg = j0 / m.seg_len, r = j0 % m.seg_len;
  int64_t base = seg * m.seg_stride;
  for (int64_t j = j0; j < j1; ++j) {
    f(j, base + r * m.col_stride);
    if (++r == m.seg_len) { r = 0; base += m.seg_stride; }
  }
}

// Packs rows [i0, i0+MR) x columns [k0, k0+kc) of A as dst[k*MR + i], zero rows past M.
template <class T>
void pack_a_panel(const MatrixRef<const T>& A, int64_t M, int64_t i0, int64_t k0, int64_t kc, int mr, T* dst) {
  const int rows = static_cast<int>(std::min<int64_t>(mr, M - i0));
  if (rows < mr) std::fill(dst, dst + kc * mr, T(0));
  for_column_offsets(A, k0, k0 + kc, [&](int64_t k, int64_t off) {
    const T* src = A.data + i0 * A.row_stride + off;
    T* d = dst + (k - k0) * mr;
    for (int i = 0; i < rows; ++i) d[i] = src[i * A.row_stride];
  });
}

// Packs rows [k0, k0+kc) x columns [j0, j0+nr) of B as dst[k*NR + j], zero columns past nr.
template <class T>
void pack_b_panel(const MatrixRef<const T>& B, int64_t j0, int nr, int64_t k0, int64_t kc, int NR, T* dst) {
  int64_t off[64];
  for_column_offsets(B, j0, j0 + nr, [&](int64_t j, int64_t o) { off[j - j0] = o; });
  bool contiguous = nr == NR;
  for (int t = 1; t < nr && contiguous; ++t) contiguous = off[t] == off[0] + t;
  const T* base = B.data + k0 * B.row_stride;
  if (contiguous) {
    // a compile-time row length, so the copy is a few vector moves rather than a scalar loop
    auto rows = [&](auto width) {
      constexpr int nr_fixed = decltype(width)::value;
      for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * nr_fixed, base + k * B.row_stride + off[0], sizeof(T) * nr_fixed);
    };
    switch (NR) {
      case 8: rows(std::integral_constant<int, 8>{}); return;
      case 12: rows(std::integral_constant<int, 12>{}); return;
      case 16: rows(std::integral_constant<int, 16>{}); return;
      case 24: rows(std::integral_constant<int, 24>{}); return;
      case 32: rows(std::integral_constant<int, 32>{}); return;
      case 48: rows(std::integral_constant<int, 48>{}); return;
      default:
        for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * NR, base + k * B.row_stride + off[0], sizeof(T) * NR);
        return;
    }
  }
  for (int64_t k = 0; k < kc; ++k) {
    const T* src = base + k * B.row_stride;
    T* d = dst + k * NR;
    int t = 0;
    for (; t < nr; ++t) d[t] = src[off[t]];
    for (; t < NR; ++t) d[t] = T(0);
  }
}

}  // namespace

template <class T>
int64_t packed_a_size(int64_t M, int64_t K) {
  const int MR = gemm_kernel_for<T>(simd_level()).mr;
  return ceil_div(M, MR) * MR * std::max<int64_t>(K, 1);
}

// Layout: k block kb at [k0 * m_padded], row panel p inside it at [p * MR * kc], dst[k*MR + i].
template <class T>
PackedA<T> pack_a(int64_t M, int64_t K, const MatrixRef<const T>& A, T* dst, bool allow_threads) {
  const int MR = gemm_kernel_for<T>(simd_level()).mr;
  const int64_t m_panels = ceil_div(M, MR), m_padded = m_panels * MR;
  const int64_t k_blocks = ceil_div(K, kBlockK);
  auto pack_range = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t kb = t / m_panels, p = t % m_panels;
      const int64_t k0 = kb * kBlockK, kc = std::min(kBlockK, K - k0);
      pack_a_panel(A, M, p * MR, k0, kc, MR, dst + k0 * m_padded + p * MR * kc);
    }
  };
  if (allow_threads && M * K >= (int64_t(1) << 16)) parallel_for(0, k_blocks * m_panels, 4, pack_range);
  else pack_range(0, k_blocks * m_panels);
  return {dst, M, K, MR};
}

template <class T>
PackedA<T> packed_a_at(int64_t M, int64_t K, const T* data) {
  return {data, M, K, gemm_kernel_for<T>(simd_level()).mr};
}

template <class T>
void gemm_blocked(int64_t M, int64_t N, int64_t K, const MatrixRef<const T>& A, const MatrixRef<const T>& B,
                  const MatrixRef<T>& C, bool accumulate, const T* row_bias, const T* col_bias, bool relu,
                  bool allow_threads) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // the product is empty: C = (C or 0) + bias
    for (int64_t i = 0; i < M; ++i)
      for_column_offsets(C, 0, N, [&](int64_t j, int64_t off) {
        T& c = C.data[i * C.row_stride + off];
        T x = (accumulate ? c : T(0)) + (row_bias ? row_bias[i] : T(0)) + (col_bias ? col_bias[j] : T(0));
        c = relu && x < T(0) ? T(0) : x;
      });
    return;
  }
  T* buffer = thread_workspace_as<T>(static_cast<size_t>(packed_a_size<T>(M, K)), kSlotPackedA);
  const bool threaded = allow_threads && M * N * K >= (int64_t(1) << 20);
  const PackedA<T> packed = pack_a(M, K, A, buffer, threaded);
  gemm_blocked(N, packed, B, C, accumulate, row_bias, col_bias, relu, allow_threads);
}

namespace {

// The blocked GEMM over any B-panel packer pack_b(j0, nr, k0, kc, NR, dst).
template <class T, class PackB>
void gemm_blocked_impl(int64_t N, const PackedA<T>& A, const PackB& pack_b_panel_of, const MatrixRef<T>& C,
                       bool accumulate, const T* row_bias, const T* col_bias, bool relu, bool allow_threads) {
  const int64_t M = A.M, K = A.K;
  if (M <= 0 || N <= 0 || K <= 0) return;
  MEDKERN_CHECK_RUNTIME(C.col_stride == 1, "gemm: C must have unit column stride");
  const GemmKernel<T> kernel = gemm_kernel_for<T>(simd_level());
  MEDKERN_CHECK_RUNTIME(kernel.mr == A.mr, "gemm: A was packed for another SIMD level");
  const int MR = kernel.mr, NR = kernel.nr;
  const int64_t m_panels = ceil_div(M, MR);
  const int64_t m_padded = m_panels * MR;
  const T* packed_a = A.data;
  // Below ~1M multiply-adds waking a second thread costs more than it saves (and far more on a
  // loaded machine, where the other thread may not be scheduled soon).
  const int threads = allow_threads && M * N * K >= (int64_t(1) << 20) ? num_threads() : 1;

  // Work items: column blocks of nc x row blocks; split rows only when columns are too few.
  int64_t nc = std::max<int64_t>(NR, (kBlockNTarget / NR) * NR);
  if (threads > 1 && ceil_div(N, nc) < 2 * threads)
    nc = std::max<int64_t>(NR, ceil_div(ceil_div(N, 2 * threads), NR) * NR);
  const int64_t n_blocks = ceil_div(N, nc);
  int64_t m_blocks = 1;
  if (threads > 1 && n_blocks < 2 * threads) m_blocks = std::min(m_panels, ceil_div(2 * threads, n_blocks));
  const int64_t panels_per_m_block = ceil_div(m_panels, m_blocks);

  auto run_items = [&](int64_t b, int64_t e) {
    T* packed_b = thread_workspace_as<T>(static_cast<size_t>(kBlockK * NR), kSlotPackedB);
    alignas(64) T tile[kMaxTile];
    alignas(64) T row_bias_pad[8];
    alignas(64) T col_bias_pad[64];
    for (int64_t item = b; item < e; ++item) {
      const int64_t nb = item / m_blocks, mb = item % m_blocks;
      const int64_t j_begin = nb * nc, j_end = std::min(N, j_begin + nc);
      const int64_t p_begin = mb * panels_per_m_block, p_end = std::min(m_panels, p_begin + panels_per_m_block);
      const int64_t n_panels = ceil_div(j_end - j_begin, NR);
      for (int64_t k0 = 0; k0 < K; k0 += kBlockK) {
        const int64_t kc = std::min(kBlockK, K - k0);
        const bool last = k0 + kc == K;
        // BLIS order: one packed B panel (kc x NR) stays in L1 while the row panels of A
        // (this item's rows x kc, L2-resident) sweep past it.
        for (int64_t q = 0; q < n_panels; ++q) {
          const int64_t j0 = j_begin + q * NR;
          const int cols = static_cast<int>(std::min<int64_t>(NR, j_end - j0));
          // packed just before use, so it never leaves L1
          T* b_panel = packed_b;
          pack_b_panel_of(j0, cols, k0, kc, NR, b_panel);
          const int64_t r = j0 % C.seg_len;
          const bool dense_cols = cols == NR && r + NR <= C.seg_len;
          int64_t off[64];
          if (!dense_cols) for_column_offsets(C, j0, j0 + cols, [&](int64_t j, int64_t o) { off[j - j0] = o; });
          const T* cb = nullptr;
          if (last && col_bias) {
            if (cols == NR) cb = col_bias + j0;
            else {
              for (int t = 0; t < NR; ++t) col_bias_pad[t] = t < cols ? col_bias[j0 + t] : T(0);
              cb = col_bias_pad;
            }
          }
          for (int64_t p = p_begin; p < p_end; ++p) {
            const int64_t i0 = p * MR;
            const int rows = static_cast<int>(std::min<int64_t>(MR, M - i0));
            const T* a_panel = packed_a + k0 * m_padded + p * MR * kc;
            TileEpilogue<T> ep;
            ep.accumulate = accumulate || k0 > 0;
            if (last) {
              ep.relu = relu;
              ep.col_bias = cb;
              if (row_bias) {
                if (rows == MR) ep.row_bias = row_bias + i0;
                else {
                  for (int i = 0; i < MR; ++i) row_bias_pad[i] = i < rows ? row_bias[i0 + i] : T(0);
                  ep.row_bias = row_bias_pad;
                }
              }
            }
            if (rows == MR && dense_cols) {
              T* c = C.data + i0 * C.row_stride + (j0 / C.seg_len) * C.seg_stride + r;
              kernel.tile(kc, a_panel, b_panel, c, C.row_stride, ep);
              continue;
            }
            // Edge or segment-crossing tile: run on a dense copy, then scatter the valid part.
            if (dense_cols) for (int t = 0; t < cols; ++t) off[t] = (j0 / C.seg_len) * C.seg_stride + r + t;
            T* c0 = C.data + i0 * C.row_stride;
            if (ep.accumulate)
              for (int i = 0; i < rows; ++i)
                for (int t = 0; t < cols; ++t) tile[i * NR + t] = c0[i * C.row_stride + off[t]];
            kernel.tile(kc, a_panel, b_panel, tile, NR, ep);
            for (int i = 0; i < rows; ++i)
              for (int t = 0; t < cols; ++t) c0[i * C.row_stride + off[t]] = tile[i * NR + t];
          }
        }
      }
    }
  };
  const int64_t items = n_blocks * m_blocks;
  if (threads > 1) parallel_for(0, items, 1, run_items);
  else run_items(0, items);
}

}  // namespace

template <class T>
void gemm_blocked(int64_t N, const PackedA<T>& A, const MatrixRef<const T>& B, const MatrixRef<T>& C,
                  bool accumulate, const T* row_bias, const T* col_bias, bool relu, bool allow_threads) {
  gemm_blocked_impl<T>(N, A, [&](int64_t j0, int nr, int64_t k0, int64_t kc, int NR, T* dst) {
    pack_b_panel(B, j0, nr, k0, kc, NR, dst);
  }, C, accumulate, row_bias, col_bias, relu, allow_threads);
}

template <class T>
void gemm_blocked(int64_t N, const PackedA<T>& A, const BPanelSource<T>& B, const MatrixRef<T>& C,
                  bool accumulate, const T* row_bias, const T* col_bias, bool relu, bool allow_threads) {
  gemm_blocked_impl<T>(N, A, [&](int64_t j0, int nr, int64_t k0, int64_t kc, int NR, T* dst) {
    B.pack(B.ctx, j0, nr, k0, kc, NR, dst);
  }, C, accumulate, row_bias, col_bias, relu, allow_threads);
}

template int64_t packed_a_size<float>(int64_t, int64_t);
template int64_t packed_a_size<double>(int64_t, int64_t);
template PackedA<float> packed_a_at<float>(int64_t, int64_t, const float*);
template PackedA<double> packed_a_at<double>(int64_t, int64_t, const double*);
template PackedA<float> pack_a<float>(int64_t, int64_t, const MatrixRef<const float>&, float*, bool);
template PackedA<double> pack_a<double>(int64_t, int64_t, const MatrixRef<const double>&, double*, bool);
template void gemm_blocked<float>(int64_t, const PackedA<float>&, const BPanelSource<float>&,
                                  const MatrixRef<float>&, bool, const float*, const float*, bool, bool);
template void gemm_blocked<double>(int64_t, const PackedA<double>&, const BPanelSource<double>&,
                                   const MatrixRef<double>&, bool, const double*, const double*, bool, bool);
template void gemm_blocked<float>(int64_t, const PackedA<float>&, const MatrixRef<const float>&,
                                  const MatrixRef<float>&, bool, const float*, const float*, bool, bool);
template void gemm_blocked<double>(int64_t, const PackedA<double>&, const MatrixRef<const double>&,
                                   const MatrixRef<double>&, bool, const double*, const double*, bool, bool);
template void gemm_blocked<float>(int64_t, int64_t, int64_t, const MatrixRef<const float>&,
                                  const MatrixRef<const float>&, const MatrixRef<float>&, bool, const float*,
                                  const float*, bool, bool);
template void gemm_blocked<double>(int64_t, int64_t, int64_t, const MatrixRef<const double>&,
                                   const MatrixRef<const double>&, const MatrixRef<double>&, bool, const double*,
                                   const double*, bool, bool);

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  // alpha and general beta are folded outside the kernel: the hot path is alpha = 1, beta in {0, 1}.
  if (beta != T(0) && beta != T(1))
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] *= beta;
  if (alpha == T(0)) {
    if (beta == T(0))
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, T(0));
    return;
  }
  MatrixRef<const T> a = trans_a ? dense_matrix(A, 1, lda) : dense_matrix(A, lda, 1);
  MatrixRef<const T> b = trans_b ? dense_matrix(B, 1, ldb) : dense_matrix(B, ldb, 1);
  if (alpha != T(1)) {
    // Rare: scale a copy of op(A) (the smaller operand for the layer shapes we see).
    T* scaled = thread_workspace_as<T>(static_cast<size_t>(M * K), 0);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t k = 0; k < K; ++k) scaled[i * K + k] = alpha * a.data[i * a.row_stride + k * a.col_stride];
    a = dense_matrix<const T>(scaled, K, 1);
  }
  gemm_blocked<T>(M, N, K, a, b, dense_matrix(C, ldc, 1), beta != T(0), nullptr, nullptr, false, true);
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                          int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);

}  // namespace medkern::cpu
