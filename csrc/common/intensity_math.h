// common/intensity_math.h — point-wise intensity steps of the fused pipeline (rescale/window as
// an affine map, clip, gamma, additive Gaussian noise) encoded as a short op list, plus the
// float -> float16/bfloat16 stores. NaN propagates through every step (comparisons keep it).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/macros.h"
#include "common/philox.h"

namespace medkern {

// One op = 4 floats: (kind, a, b, c).
//   Affine: x * a + b            (Rescale: a = slope, b = intercept; Window: 1/width, -(level - width/2)/width)
//   Clamp:  min(max(x, a), b)    (Window follows its affine with Clamp(0, 1))
//   Power:  max(x, 0) ** a       (Gamma on [0, 1] data)
//   Noise:  x + a * N(0, 1), N drawn from Philox stream (kNoiseStreamBit | c) per output element
//   BiasTerm, ..., BiasTerm, BiasApply: x * exp(sum of a * zn^ez * yn^ey * xn^ex) over the terms,
//           b = ez * 16 + ey * 4 + ex (bias_exponent_shift below), (zn, yn, xn) the output
//           position scaled to [-1, 1] per axis (a smooth multiplicative bias field, as MR coil
//           inhomogeneity); post ops only
enum class IntensityOp : int { Affine = 0, Clamp = 1, Power = 2, Noise = 3, BiasTerm = 4, BiasApply = 5 };
constexpr int kIntensityOpWidth = 4;

// Python's names of the ops (_C.INTENSITY_OP_CODES); nullptr past the last (see
// medkern/enum_names.h: no default, so an op added without a name fails the build).
constexpr const char* intensity_op_name(IntensityOp op) {
  switch (op) {
    case IntensityOp::Affine: return "affine";
    case IntensityOp::Clamp: return "clamp";
    case IntensityOp::Power: return "power";
    case IntensityOp::Noise: return "noise";
    case IntensityOp::BiasTerm: return "bias_term";
    case IntensityOp::BiasApply: return "bias_apply";
  }
  return nullptr;
}

// The bias field's polynomial: total degree <= kBiasFieldMaxOrder, evaluated along an output row
// as a cubic in xn. A term's exponents (ez, ey, ex) are packed into one small integer, a field of
// kBiasExponentBits bits per axis, x lowest (Python packs them with _C.BIAS_FIELD_EXPONENT_WEIGHTS).
constexpr int kBiasFieldMaxOrder = 3;
constexpr int kBiasExponentBits = 2;
static_assert((1 << kBiasExponentBits) > kBiasFieldMaxOrder, "a bias exponent field must hold the max order");

// Bit offset of axis `axis`'s exponent (0 = z, 1 = y, 2 = x) in a packed code: 4, 2, 0, so the
// code is ez * 16 + ey * 4 + ex.
MEDKERN_HD constexpr int bias_exponent_shift(int axis) { return (2 - axis) * kBiasExponentBits; }

MEDKERN_HD int bias_term_exponent(int code, int axis) {
  return (code >> bias_exponent_shift(axis)) & ((1 << kBiasExponentBits) - 1);
}

// Two independent selects (each is one max/min instruction on x86 and on the GPU, no branch);
// a NaN x fails both comparisons and passes through.
MEDKERN_HD float clamp_propagating_nan(float x, float lo, float hi) {
  x = lo > x ? lo : x;
  x = hi < x ? hi : x;
  return x;
}

// One deterministic op (a Noise op is the identity here; the kernels add noise per element,
// because it needs the element's Philox counter).
MEDKERN_HD float apply_intensity_op(float x, const float* op) {
  switch (static_cast<IntensityOp>(static_cast<int>(op[0]))) {
    case IntensityOp::Affine: return x * op[1] + op[2];
    case IntensityOp::Clamp: return clamp_propagating_nan(x, op[1], op[2]);
    case IntensityOp::Power: return x > 0.0f ? powf(x, op[1]) : (x == x ? 0.0f : x);
    case IntensityOp::Noise:
    case IntensityOp::BiasTerm:
    case IntensityOp::BiasApply: return x;
  }
  return x;
}

// The source-side list (no Noise allowed there; the planner never puts one).
MEDKERN_HD float apply_intensity_ops(float x, const float* ops, int count) {
  for (int i = 0; i < count; ++i) x = apply_intensity_op(x, ops + i * kIntensityOpWidth);
  return x;
}

MEDKERN_HD bool is_noise_op(const float* op) { return static_cast<int>(op[0]) == static_cast<int>(IntensityOp::Noise); }
MEDKERN_HD bool is_bias_op(const float* op) { return static_cast<int>(op[0]) == static_cast<int>(IntensityOp::BiasTerm); }

// Index i of an axis of n samples scaled to [-1, 1] (numpy's linspace(-1, 1, n)); 0 when n == 1.
MEDKERN_HD float unit_coordinate(int64_t i, int64_t n) {
  return n > 1 ? 2.0f * static_cast<float>(i) / static_cast<float>(n - 1) - 1.0f : 0.0f;
}

MEDKERN_HD float integer_power(float x, int e) {
  float r = 1.0f;
  for (int k = 0; k < e; ++k) r *= x;
  return r;
}

// Number of consecutive BiasTerm ops from ops[0] (the BiasApply op follows them).
MEDKERN_HD int bias_term_count(const float* ops, int remaining) {
  int t = 0;
  while (t < remaining && is_bias_op(ops + t * kIntensityOpWidth)) ++t;
  return t;
}

// The log-field along an output row as a cubic in xn: a[k] = sum of the terms with x^k at the
// row's (zn, yn).
MEDKERN_HD void bias_row_polynomial(const float* terms, int count, float zn, float yn,
                                    float a[kBiasFieldMaxOrder + 1]) {
  for (int k = 0; k <= kBiasFieldMaxOrder; ++k) a[k] = 0.0f;
  for (int t = 0; t < count; ++t) {
    const float* op = terms + t * kIntensityOpWidth;
    const int code = static_cast<int>(op[2]);
    a[bias_term_exponent(code, 2)] +=
        op[1] * integer_power(zn, bias_term_exponent(code, 0)) * integer_power(yn, bias_term_exponent(code, 1));
  }
}

static_assert(kBiasFieldMaxOrder == 3, "bias_from_polynomial evaluates a cubic");
MEDKERN_HD float bias_from_polynomial(const float a[kBiasFieldMaxOrder + 1], float xn) {
  return expf(a[0] + xn * (a[1] + xn * (a[2] + xn * a[3])));
}

// The multiplicative field exp(sum of the terms) at the unit position (zn, yn, xn).
MEDKERN_HD float bias_field_value(const float* terms, int count, float zn, float yn, float xn) {
  float a[kBiasFieldMaxOrder + 1];
  bias_row_polynomial(terms, count, zn, yn, a);
  return bias_from_polynomial(a, xn);
}

MEDKERN_HD uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}
MEDKERN_HD float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}

// float32 -> IEEE half, round to nearest even (overflow -> inf, NaN stays NaN, subnormals kept).
MEDKERN_HD uint16_t float_to_half_bits(float value) {
  uint32_t f = float_bits(value);
  const uint32_t sign = f & 0x80000000u;
  f ^= sign;
  uint32_t out;
  if (f >= 0x47800000u) {              // >= 65536 (after rounding): inf, or NaN
    out = f > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (f < 0x38800000u) {        // below half's smallest normal: let the FPU round the subnormal
    const float shifted = bits_float(f) + bits_float(0x3f000000u);
    out = float_bits(shifted) - 0x3f000000u;
  } else {
    const uint32_t mantissa_odd = (f >> 13) & 1u;
    f += 0xc8000fffu;                  // rebias exponent (15 - 127) << 23, plus the rounding bias
    f += mantissa_odd;
    out = f >> 13;
  }
  return static_cast<uint16_t>(out | (sign >> 16));
}

// float32 -> bfloat16, round to nearest even; NaN stays a quiet NaN.
MEDKERN_HD uint16_t float_to_bfloat16_bits(float value) {
  const uint32_t f = float_bits(value);
  if ((f & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((f >> 16) | 0x0040u);
  return static_cast<uint16_t>((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
}

}  // namespace medkern
