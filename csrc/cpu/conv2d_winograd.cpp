// cpu/conv2d_winograd.cpp — F(2x2, 3x3) Winograd convolution on the CPU (see the header). The
// weights are transformed and packed once per call (16 K x C panels), or once per layer for
// inference (conv2d_winograd_prepare_weights); the output's tile rows
// are taken in blocks per thread: input transform of the block into V (16 x C x tiles), 16
// GEMMs M[xi] = U[xi] V[xi] on the packed micro-kernel, output transform (+ bias, relu) into y.
// The tile transforms run one tile row at a time (cpu/simd/winograd_kernels.h, vectorized).
#include "cpu/conv2d_winograd.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/gemm_driver.h"
#include "cpu/simd/winograd_kernels.h"
#include "medkern/parallel.h"
#include "medkern/simd.h"
#include "medkern/workspace.h"

namespace medkern::cpu {

namespace {

// Workspace slots: conv.cpp's assignment (columns 0, partial 3, output 4; the packed-weight
// slot 6 is the GEMM's packed-A slot, left alone when the GEMM gets a pre-packed A).
constexpr int kSlotTransformed = 0, kSlotRawU = 3, kSlotProducts = 4, kSlotPackedU = 6;
constexpr int kPoints = 16;  // 4 x 4 transform points

struct BaseIsaTag {};

using InputRow = void (*)(const float* const[4], int64_t, float*, int64_t);
using OutputRow = void (*)(const float*, int64_t, int64_t, float, bool, float*, float*);

struct Transforms {
  InputRow input;
  OutputRow output;
};

Transforms transforms_for_machine() {
  switch (simd_level()) {
    case SimdLevel::AVX512: return {&simd_avx512::winograd_input_row, &simd_avx512::winograd_output_row};
    case SimdLevel::AVX2: return {&simd_avx2::winograd_input_row, &simd_avx2::winograd_output_row};
    default: return {&winograd_input_row_body<BaseIsaTag>, &winograd_output_row_body<BaseIsaTag>};
  }
}

// U = G g G^T for one 3x3 filter g (row-major), G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
void transform_filter(const float g[9], float u[16]) {
  float t[4][3];
  for (int j = 0; j < 3; ++j) {
    t[0][j] = g[j];
    t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
    t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
    t[3][j] = g[6 + j];
  }
  for (int a = 0; a < 4; ++a) {
    u[4 * a + 0] = t[a][0];
    u[4 * a + 1] = 0.5f * (t[a][0] + t[a][1] + t[a][2]);
    u[4 * a + 2] = 0.5f * (t[a][0] - t[a][1] + t[a][2]);
    u[4 * a + 3] = t[a][2];
  }
}

}  // namespace

bool conv2d_winograd_applies(int64_t C, int64_t K, int64_t P, int64_t Q, int64_t R, int64_t S,
                             const ConvParams& p) {
  // Measured on a 2-core AVX-512 machine against the im2col GEMM (N = 128): 64 channels at 28x28
  // 41 -> 36 ms, 128 at 14x14 39 -> 29 ms; on 7x7 and 4x4 maps (tile waste, weight panels
  // streamed per block) and with 32 channels it was slower, so those keep the GEMM path.
  return R == 3 && S == 3 && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 && p.dilation_w == 1 &&
         p.groups == 1 && C >= 64 && K >= 64 && P >= 12 && Q >= 12;
}

int64_t conv2d_winograd_weight_elements(int64_t K, int64_t C) { return kPoints * packed_a_size<float>(K, C); }

void conv2d_winograd_prepare_weights(const float* w, int64_t K, int64_t C, bool transposed_weight, float* dst) {
  // U[xi] (K x C), transformed, then packed for the micro-kernel
  float* raw = thread_workspace_as<float>(static_cast<size_t>(kPoints * K * C), kSlotRawU);
  parallel_for(0, K, 1, [&](int64_t kb, int64_t ke) {
    float g[9], u[16];
    for (int64_t k = kb; k < ke; ++k)
      for (int64_t c = 0; c < C; ++c) {
        for (int i = 0; i < 9; ++i) g[i] = transposed_weight ? w[(c * K + k) * 9 + (8 - i)] : w[(k * C + c) * 9 + i];
        transform_filter(g, u);
        for (int xi = 0; xi < kPoints; ++xi) raw[(xi * K + k) * C + c] = u[xi];
      }
  });
  const int64_t panel = packed_a_size<float>(K, C);
  for (int xi = 0; xi < kPoints; ++xi)
    pack_a<float>(K, C, dense_matrix<const float>(raw + xi * K * C, C), dst + xi * panel, true);
}

void conv2d_winograd_forward(const float* x, const int64_t shape[4], const int64_t xs[4], const float* w, int64_t K,
                             bool transposed_weight, const float* bias, float* y, int64_t P, int64_t Q, int64_t pad_h,
                             int64_t pad_w, bool relu, const float* prepared) {
  const int64_t N = shape[0], C = shape[1], H = shape[2], W = shape[3];
  const Transforms tf = transforms_for_machine();
  const int64_t panel = packed_a_size<float>(K, C);
  if (!prepared) {
    float* packed = thread_workspace_as<float>(static_cast<size_t>(kPoints * panel), kSlotPackedU);
    conv2d_winograd_prepare_weights(w, K, C, transposed_weight, packed);
    prepared = packed;
  }
  PackedA<float> panels[kPoints];
  for (int xi = 0; xi < kPoints; ++xi) panels[xi] = packed_a_at<float>(K, C, prepared + xi * panel);

  // blocks of whole tile rows; V (16 x C x tiles) and M (16 x K x tiles) of a block stay near
  // the size of a core's L2
  const int64_t TH = (P + 1) / 2, TW = (Q + 1) / 2, tile_rows = N * TH;
  const int64_t target_tiles = std::clamp<int64_t>((int64_t(1) << 15) / std::max(C, K), 32, 512);
  const int64_t rows_per_block = std::max<int64_t>(1, target_tiles / TW);
  const int64_t blocks = (tile_rows + rows_per_block - 1) / rows_per_block;
  parallel_for(0, blocks, 1, [&](int64_t bb, int64_t be) {
    // a block's tile rows side by side: row lr holds TW + 1 tiles (the last one reads past the
    // row and is discarded), so each transform call runs over the whole block
    const int64_t seg_tiles = TW + 1, seg_len = 2 * seg_tiles, max_tiles = rows_per_block * seg_tiles;
    float* V = thread_workspace_as<float>(static_cast<size_t>(kPoints * C * max_tiles), kSlotTransformed);
    float* M = thread_workspace_as<float>(static_cast<size_t>(kPoints * K * max_tiles), kSlotProducts);
    const int64_t rows_len = rows_per_block * seg_len + 2;
    std::vector<float> rows(static_cast<size_t>(4 * rows_len), 0.0f), out_rows(static_cast<size_t>(2 * 2 * max_tiles));
    const float* row_ptr[4] = {rows.data(), rows.data() + rows_len, rows.data() + 2 * rows_len,
                               rows.data() + 3 * rows_len};
    for (int64_t b = bb; b < be; ++b) {
      const int64_t r0 = b * rows_per_block, nr = std::min(rows_per_block, tile_rows - r0), nt = nr * seg_tiles;
      for (int64_t c = 0; c < C; ++c) {
        for (int64_t lr = 0; lr < nr; ++lr) {
          const int64_t n = (r0 + lr) / TH, th = (r0 + lr) % TH;
          const float* plane = x + n * xs[0] + c * xs[1];
          for (int a = 0; a < 4; ++a) {
            // input row 2 th - pad_h + a, columns -pad_w .. -pad_w + seg_len - 1, zero outside
            float* dst = rows.data() + a * rows_len + lr * seg_len;
            const int64_t h = 2 * th - pad_h + a;
            if (h < 0 || h >= H) {
              std::fill(dst, dst + seg_len, 0.0f);
              continue;
            }
            const float* src = plane + h * xs[2];
            const int64_t first = std::min<int64_t>(pad_w, seg_len), last = std::min<int64_t>(seg_len, W + pad_w);
            std::fill(dst, dst + first, 0.0f);
            if (xs[3] == 1) {
              if (last > first) std::memcpy(dst + first, src + (first - pad_w), static_cast<size_t>(last - first) * sizeof(float));
            } else {
              for (int64_t i = first; i < last; ++i) dst[i] = src[(i - pad_w) * xs[3]];
            }
            std::fill(dst + std::max(first, last), dst + seg_len, 0.0f);
          }
        }
        tf.input(row_ptr, nt, V + c * kPoints * nt, nt);
      }
      for (int xi = 0; xi < kPoints; ++xi)
        gemm_blocked<float>(nt, panels[xi], dense_matrix<const float>(V + xi * nt, kPoints * nt),
                            dense_matrix<float>(M + xi * nt, kPoints * nt), false, nullptr, nullptr, false, false);
      for (int64_t k = 0; k < K; ++k) {
        tf.output(M + k * kPoints * nt, nt, nt, bias ? bias[k] : 0.0f, relu, out_rows.data(), out_rows.data() + 2 * nt);
        for (int64_t lr = 0; lr < nr; ++lr) {
          const int64_t n = (r0 + lr) / TH, th = (r0 + lr) % TH;
          float* dst = y + ((n * K + k) * P + 2 * th) * Q;
          std::memcpy(dst, out_rows.data() + lr * seg_len, static_cast<size_t>(Q) * sizeof(float));
          if (2 * th + 1 < P)
            std::memcpy(dst + Q, out_rows.data() + 2 * nt + lr * seg_len, static_cast<size_t>(Q) * sizeof(float));
        }
      }
    }
  });
}

}  // namespace medkern::cpu
