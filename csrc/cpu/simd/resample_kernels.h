// cpu/simd/resample_kernels.h — the vector paths of the fused resampler: Philox normals for the
// noise op (the loops of fill_normals_body vectorize), and the hot sampling case: (bi/tri)linear
// samples along an output row, simple pre ops (affine + clamp), unit column stride, int16 /
// uint16 / float32 source. A vector of lanes whose taps are all inside the source reads them with
// gathers (one 32-bit gather fetches both 16-bit x taps of a row); other lanes take the generic
// sample_source of common/geometry_math.h. The arithmetic is the generic loop's, operation for
// operation and without FMA contraction (CMake gives these files -ffp-contract=off), so the
// vector and scalar paths give the same floats. Compiled per instruction set
// (resample_avx2.cpp / resample_avx512.cpp); preprocess.cpp picks one at run time.
#pragma once
#include <cstdint>

#include "common/geometry_math.h"
#include "common/philox.h"

namespace medkern::cpu {

// out[4 g + lane] = normal `lane` of group (first_group + g), g in [0, groups), groups <= 72:
// Philox words for all groups, then Box-Muller, as structure-of-arrays loops the compiler
// vectorizes. Instantiated once per instruction set with a tag type of internal linkage, so the
// copies never merge at link time; with -ffp-contract=off every copy draws the same bits.
template <class IsaTag>
void fill_normals_body(uint64_t seed, uint64_t sample, uint32_t stream, int64_t first_group, int groups, float* out) {
  uint32_t w[4][72];
  for (int g = 0; g < groups; ++g) {
    const Philox4x32 r = philox_block(seed, sample, stream, static_cast<uint64_t>(first_group + g));
    w[0][g] = r.v[0]; w[1][g] = r.v[1]; w[2][g] = r.v[2]; w[3][g] = r.v[3];
  }
  float z[4][72];
  for (int g = 0; g < groups; ++g) {
    box_muller(w[0][g], w[1][g], z[0][g], z[1][g]);
    box_muller(w[2][g], w[3][g], z[2][g], z[3][g]);
  }
  for (int g = 0; g < groups; ++g) {
    out[4 * g] = z[0][g]; out[4 * g + 1] = z[1][g]; out[4 * g + 2] = z[2][g]; out[4 * g + 3] = z[3][g];
  }
}

// One output row segment: output i (0 <= i < count) samples the source at
// base + step * (first + i) per axis (z, y, x; 2D: z unused).
struct RowSegment {
  float base[3], step[3];
  int64_t first;
  int count;
};

#define MEDKERN_DECLARE_RESAMPLE_KERNELS(ns)                                                              \
  namespace ns {                                                                                          \
  void sample_row_linear(const SourcePlane<int16_t, false>& s, Padding pad, int dims, const RowSegment& r,  \
                         float* out);                                                                     \
  void sample_row_linear(const SourcePlane<uint16_t, false>& s, Padding pad, int dims, const RowSegment& r, \
                         float* out);                                                                     \
  void sample_row_linear(const SourcePlane<float, false>& s, Padding pad, int dims, const RowSegment& r,     \
                         float* out);                                                                     \
  void fill_normals(uint64_t seed, uint64_t sample, uint32_t stream, int64_t first_group, int groups,        \
                    float* out);                                                                          \
  }
MEDKERN_DECLARE_RESAMPLE_KERNELS(simd_avx2)
MEDKERN_DECLARE_RESAMPLE_KERNELS(simd_avx512)
#undef MEDKERN_DECLARE_RESAMPLE_KERNELS

}  // namespace medkern::cpu

#ifdef MEDKERN_SIMD_NS
#include <immintrin.h>

#include <type_traits>

namespace medkern::cpu::MEDKERN_SIMD_NS {
namespace {

// The few vector operations the row kernel needs, per instruction set.
#if defined(__AVX512F__)
struct Vec {
  static constexpr int kLanes = 16;
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;
  static F set1(float v) { return _mm512_set1_ps(v); }
  static F iota() { return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F max_keep_nan(F lo, F x) { return _mm512_max_ps(lo, x); }  // x if x is NaN (second operand)
  static F min_keep_nan(F hi, F x) { return _mm512_min_ps(hi, x); }
  static F floor(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static I to_int(F a) { return _mm512_cvttps_epi32(a); }
  static F to_float(I a) { return _mm512_cvtepi32_ps(a); }
  static M tail(int n) { return static_cast<M>(n >= 16 ? 0xffff : (1u << n) - 1u); }
  // lanes with lo <= a <= hi (false for NaN)
  static M within(F a, float lo, float hi) {
    return _mm512_cmp_ps_mask(a, set1(lo), _CMP_GE_OQ) & _mm512_cmp_ps_mask(a, set1(hi), _CMP_LE_OQ);
  }
  static M both(M a, M b) { return static_cast<M>(a & b); }
  static bool all(M m, M tail_mask) { return (m & tail_mask) == tail_mask; }
  static I madd(I a, int b, I c) { return _mm512_add_epi32(_mm512_mullo_epi32(a, _mm512_set1_epi32(b)), c); }
  static I add_int(I a, int b) { return _mm512_add_epi32(a, _mm512_set1_epi32(b)); }
  template <int Scale>
  static I gather(const void* base, I index, M m) {
    return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, index, base, Scale);
  }
  static I low16_signed(I g) { return _mm512_srai_epi32(_mm512_slli_epi32(g, 16), 16); }
  static I high16_signed(I g) { return _mm512_srai_epi32(g, 16); }
  static I low16_unsigned(I g) { return _mm512_and_si512(g, _mm512_set1_epi32(0xffff)); }
  static I high16_unsigned(I g) { return _mm512_srli_epi32(g, 16); }
  static F as_float(I a) { return _mm512_castsi512_ps(a); }
  static void store(float* out, F v, M m) { _mm512_mask_storeu_ps(out, m, v); }
};
#else  // AVX2
struct Vec {
  static constexpr int kLanes = 8;
  using F = __m256;
  using I = __m256i;
  using M = __m256i;  // all-ones lanes
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F iota() { return _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F max_keep_nan(F lo, F x) { return _mm256_max_ps(lo, x); }
  static F min_keep_nan(F hi, F x) { return _mm256_min_ps(hi, x); }
  static F floor(F a) { return _mm256_floor_ps(a); }
  static I to_int(F a) { return _mm256_cvttps_epi32(a); }
  static F to_float(I a) { return _mm256_cvtepi32_ps(a); }
  static M tail(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static M within(F a, float lo, float hi) {
    return _mm256_castps_si256(_mm256_and_ps(_mm256_cmp_ps(a, set1(lo), _CMP_GE_OQ),
                                             _mm256_cmp_ps(a, set1(hi), _CMP_LE_OQ)));
  }
  static M both(M a, M b) { return _mm256_and_si256(a, b); }
  static bool all(M m, M tail_mask) {
    return _mm256_testc_si256(m, tail_mask);  // every tail lane set in m
  }
  static I madd(I a, int b, I c) { return _mm256_add_epi32(_mm256_mullo_epi32(a, _mm256_set1_epi32(b)), c); }
  static I add_int(I a, int b) { return _mm256_add_epi32(a, _mm256_set1_epi32(b)); }
  template <int Scale>
  static I gather(const void* base, I index, M m) {
    return _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), static_cast<const int*>(base), index, m, Scale);
  }
  static I low16_signed(I g) { return _mm256_srai_epi32(_mm256_slli_epi32(g, 16), 16); }
  static I high16_signed(I g) { return _mm256_srai_epi32(g, 16); }
  static I low16_unsigned(I g) { return _mm256_and_si256(g, _mm256_set1_epi32(0xffff)); }
  static I high16_unsigned(I g) { return _mm256_srli_epi32(g, 16); }
  static F as_float(I a) { return _mm256_castsi256_ps(a); }
  static void store(float* out, F v, M m) { _mm256_maskstore_ps(out, m, v); }
};
#endif

// The two x taps (x0, x0 + 1) of one source row for each lane, intensity-mapped.
template <class In>
inline void row_taps(const SourcePlane<In, false>& s, typename Vec::I offset, typename Vec::M m,
                     typename Vec::F& left, typename Vec::F& right) {
  using F = typename Vec::F;
  if constexpr (std::is_same_v<In, float>) {
    left = Vec::as_float(Vec::template gather<4>(s.base, offset, m));
    right = Vec::as_float(Vec::template gather<4>(s.base, Vec::add_int(offset, 1), m));
  } else {
    // one 32-bit load at (x0) holds x0 in its low half and x0 + 1 in its high half
    const typename Vec::I pair = Vec::template gather<2>(s.base, offset, m);
    if constexpr (std::is_same_v<In, int16_t>) {
      left = Vec::to_float(Vec::low16_signed(pair));
      right = Vec::to_float(Vec::high16_signed(pair));
    } else {
      left = Vec::to_float(Vec::low16_unsigned(pair));
      right = Vec::to_float(Vec::high16_unsigned(pair));
    }
  }
  const F scale = Vec::set1(s.scale), shift = Vec::set1(s.shift), lo = Vec::set1(s.lo), hi = Vec::set1(s.hi);
  left = Vec::min_keep_nan(hi, Vec::max_keep_nan(lo, Vec::add(Vec::mul(left, scale), shift)));
  right = Vec::min_keep_nan(hi, Vec::max_keep_nan(lo, Vec::add(Vec::mul(right, scale), shift)));
}

template <class In, int Dims>
void sample_row(const SourcePlane<In, false>& s, Padding pad, const RowSegment& r, float* out) {
  using F = typename Vec::F;
  using I = typename Vec::I;
  const F one = Vec::set1(1.0f);
  const int sy = static_cast<int>(s.stride[1]), sz = static_cast<int>(s.stride[0]);
  for (int i = 0; i < r.count; i += Vec::kLanes) {
    const int n = r.count - i < Vec::kLanes ? r.count - i : Vec::kLanes;
    const auto tail = Vec::tail(n);
    const F fx = Vec::add(Vec::set1(static_cast<float>(r.first + i)), Vec::iota());
    F c[3] = {Vec::set1(0.0f), Vec::set1(0.0f), Vec::set1(0.0f)};
    for (int d = 3 - Dims; d < 3; ++d) c[d] = Vec::add(Vec::set1(r.base[d]), Vec::mul(Vec::set1(r.step[d]), fx));
    F f0[3] = {c[0], c[0], c[0]};
    auto inside = Vec::tail(Vec::kLanes);
    for (int d = 3 - Dims; d < 3; ++d) {
      f0[d] = Vec::floor(c[d]);
      inside = Vec::both(inside, Vec::within(f0[d], 0.0f, static_cast<float>(s.size[d] - 2)));
    }
    if (!Vec::all(inside, tail)) {
      // some lane reads padding (or a NaN coordinate): the generic path, lane by lane
      alignas(64) float cz[Vec::kLanes] = {}, cy[Vec::kLanes], cx[Vec::kLanes];
      if (Dims == 3) Vec::store(cz, c[0], Vec::tail(Vec::kLanes));
      Vec::store(cy, c[1], Vec::tail(Vec::kLanes));
      Vec::store(cx, c[2], Vec::tail(Vec::kLanes));
      for (int k = 0; k < n; ++k)
        out[i + k] = sample_source<SourcePlane<In, false>, Dims, true>(s, pad, cz[k], cy[k], cx[k]);
      continue;
    }
    const F fy = Vec::sub(c[1], f0[1]), fxr = Vec::sub(c[2], f0[2]);
    I offset = Vec::madd(Vec::to_int(f0[1]), sy, Vec::to_int(f0[2]));
    if (Dims == 3) offset = Vec::madd(Vec::to_int(f0[0]), sz, offset);
    const F wx0 = Vec::sub(one, fxr), wy0 = Vec::sub(one, fy);
    F acc = Vec::set1(0.0f);
    for (int a = 0; a < (Dims == 3 ? 2 : 1); ++a) {
      const I plane = a == 0 ? offset : Vec::add_int(offset, sz);
      F l0, r0, l1, r1;
      row_taps<In>(s, plane, tail, l0, r0);
      row_taps<In>(s, Vec::add_int(plane, sy), tail, l1, r1);
      const F top = Vec::add(Vec::mul(wx0, l0), Vec::mul(fxr, r0));
      const F bottom = Vec::add(Vec::mul(wx0, l1), Vec::mul(fxr, r1));
      const F value = Vec::add(Vec::mul(wy0, top), Vec::mul(fy, bottom));
      if (Dims == 3) {
        const F fz = Vec::sub(c[0], f0[0]);
        acc = Vec::add(acc, Vec::mul(a == 0 ? Vec::sub(one, fz) : fz, value));
      } else {
        acc = Vec::add(acc, value);
      }
    }
    Vec::store(out + i, acc, tail);
  }
}

template <class In>
void dispatch_row(const SourcePlane<In, false>& s, Padding pad, int dims, const RowSegment& r, float* out) {
  if (dims == 3) sample_row<In, 3>(s, pad, r, out);
  else sample_row<In, 2>(s, pad, r, out);
}

struct IsaTag {};

}  // namespace

void fill_normals(uint64_t seed, uint64_t sample, uint32_t stream, int64_t first_group, int groups, float* out) {
  fill_normals_body<IsaTag>(seed, sample, stream, first_group, groups, out);
}

void sample_row_linear(const SourcePlane<int16_t, false>& s, Padding pad, int dims, const RowSegment& r, float* out) {
  dispatch_row(s, pad, dims, r, out);
}
void sample_row_linear(const SourcePlane<uint16_t, false>& s, Padding pad, int dims, const RowSegment& r,
                       float* out) {
  dispatch_row(s, pad, dims, r, out);
}
void sample_row_linear(const SourcePlane<float, false>& s, Padding pad, int dims, const RowSegment& r, float* out) {
  dispatch_row(s, pad, dims, r, out);
}

}  // namespace medkern::cpu::MEDKERN_SIMD_NS
#endif
