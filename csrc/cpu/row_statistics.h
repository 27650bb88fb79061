// cpu/row_statistics.h — pieces the CPU normalization kernels (batch norm, group / instance norm)
// share: the (N, C, S) view of an (N, C, *) tensor whose spatial axes collapse to one strided
// run, and the (count, mean, M2) statistics of one such row, reduced chunk by chunk while the
// chunk sits in L1 (two sweeps per chunk: no sum-of-squares cancellation) and merged with
// mean_m2_combine.
#pragma once
#include <algorithm>
#include <cstdint>

#include "common/batch_norm_math.h"
#include "medkern/errors.h"
#include "medkern/tensor_view.h"

namespace medkern::cpu {

struct RowLayout {
  int64_t N, C, S, stride_n, stride_c, stride_s;
};

inline RowLayout row_layout(const TensorView& v, const char* name) {
  RowLayout r{v.size(0), v.size(1), 1, v.stride(0), v.stride(1), 1};
  if (v.ndim > 2) {
    r.stride_s = v.stride(v.ndim - 1);
    int64_t expected = v.stride(v.ndim - 1);
    for (int d = v.ndim - 1; d >= 2; --d) {
      if (v.size(d) != 1)
        MEDKERN_CHECK_VALUE(v.stride(d) == expected, "argument '", name,
                            "': its spatial axes must be collapsible to one strided axis (shape ", v.shape_string(),
                            "); make it contiguous first");
      expected *= v.size(d);
      r.S *= v.size(d);
    }
    if (r.S == 1) r.stride_s = 1;
  }
  return r;
}

template <class T>
MeanM2 row_mean_m2(const T* x, int64_t S, int64_t stride) {
  constexpr int64_t kChunk = 2048;  // stays in L1 between the two sweeps
  MeanM2 acc;
  for (int64_t s0 = 0; s0 < S; s0 += kChunk) {
    const int64_t len = std::min(kChunk, S - s0);
    const T* p = x + s0 * stride;
    T sum = 0;
    if (stride == 1) {
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < len; ++i) sum += p[i];
    } else {
      for (int64_t i = 0; i < len; ++i) sum += p[i * stride];
    }
    const T mean = sum / static_cast<T>(len);
    T m2 = 0;
    if (stride == 1) {
#pragma omp simd reduction(+ : m2)
      for (int64_t i = 0; i < len; ++i) m2 += (p[i] - mean) * (p[i] - mean);
    } else {
      for (int64_t i = 0; i < len; ++i) m2 += (p[i * stride] - mean) * (p[i * stride] - mean);
    }
    acc = mean_m2_combine(acc, MeanM2{static_cast<double>(len), static_cast<double>(mean), static_cast<double>(m2)});
  }
  return acc;
}

}  // namespace medkern::cpu
