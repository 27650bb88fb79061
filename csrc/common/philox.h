// common/philox.h — Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC'11), a counter-based generator: output = bijection(counter, key), no state. Augmentation
// draws are keyed by (seed, sample index, stream, draw index), so CPU, GPU and any batch split
// or worker count see the same numbers and any sample can be replayed alone.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/macros.h"

namespace medkern {

struct Philox4x32 { uint32_t v[4]; };

MEDKERN_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

// Ten rounds; the key is bumped by the Weyl constants between rounds (Random123's schedule).
MEDKERN_HD Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
  }
  return {{c0, c1, c2, c3}};
}

// The counter layout used by every medkern draw: (index lo, index hi, sample, stream); key = seed.
// Parameter draws use stream = transform position; per-element noise sets the top bit of stream.
constexpr uint32_t kNoiseStreamBit = 0x80000000u;

MEDKERN_HD Philox4x32 philox_block(uint64_t seed, uint64_t sample, uint32_t stream, uint64_t index) {
  return philox4x32_10(static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                       static_cast<uint32_t>(sample), stream, static_cast<uint32_t>(seed),
                       static_cast<uint32_t>(seed >> 32));
}

// Uniform in [0, 1) with 24 random bits (exactly representable in float32).
MEDKERN_HD float uniform_float_from_bits(uint32_t bits) { return static_cast<float>(bits >> 8) * 5.9604644775390625e-8f; }
// Uniform in (0, 1]: safe under log().
MEDKERN_HD float uniform_float_open_zero(uint32_t bits) {
  return static_cast<float>((bits >> 8) + 1u) * 5.9604644775390625e-8f;
}
// Uniform in [0, 1) with 53 random bits from two words (parameter draws).
MEDKERN_HD double uniform_double_from_bits(uint32_t a, uint32_t b) {
  const uint64_t bits = (static_cast<uint64_t>(a >> 5) << 26) | static_cast<uint64_t>(b >> 6);
  return static_cast<double>(bits) * 1.1102230246251565e-16;  // 2^-53
}

// float bit casts without <cstring> (usable in device code).
MEDKERN_HD uint32_t philox_float_bits(float f) {
  union { float f; uint32_t u; } v{f};
  return v.u;
}
MEDKERN_HD float philox_bits_float(uint32_t u) {
  union { uint32_t u; float f; } v{u};
  return v.f;
}

// ln(x) for normal positive floats, by exponent split and the atanh series on a mantissa in
// [sqrt(1/2), sqrt(2)); |relative error| < 3e-7. Our own polynomial (not libm / CUDA's logf) so
// the CPU and the GPU draw the same normals, and it is several times cheaper than logf.
MEDKERN_HD float philox_log(float x) {
  const uint32_t bits = philox_float_bits(x);
  int exponent = static_cast<int>((bits >> 23) & 0xffu) - 127;
  // mantissa in [1, 2); above sqrt(2) halve it (exponent bit arithmetic, exact) and count one
  // more in the exponent. Integer masks instead of branches: the CPU loop vectorizes.
  const uint32_t mantissa_bits = (bits & 0x7fffffu) | 0x3f800000u;
  const uint32_t upper = mantissa_bits > 0x3fb504f3u ? 1u : 0u;  // 0x3fb504f3 = sqrt(2)
  const float m = philox_bits_float(mantissa_bits - (upper << 23));
  exponent += static_cast<int>(upper);
  const float t = (m - 1.0f) / (m + 1.0f), t2 = t * t;
  const float series = t * (2.0f + t2 * (0.666666667f + t2 * (0.4f + t2 * (0.285714286f + t2 * 0.222222222f))));
  return series + static_cast<float>(exponent) * 0.693147181f;
}

// sin and cos of 2*pi*u for u in [0, 1): quarter-turn reduction (exact in float), then Taylor
// polynomials on [0, pi/2); |error| < 1e-7.
MEDKERN_HD void philox_sincos_turns(float u, float& s, float& c) {
  const float q = u * 4.0f;
  const int quadrant = static_cast<int>(q);
  const float a = (q - static_cast<float>(quadrant)) * 1.57079633f, a2 = a * a;
  const float sa = a * (1.0f + a2 * (-1.66666667e-1f + a2 * (8.33333333e-3f + a2 * (-1.98412698e-4f +
                   a2 * (2.75573192e-6f + a2 * -2.50521084e-8f)))));
  const float ca = 1.0f + a2 * (-0.5f + a2 * (4.16666667e-2f + a2 * (-1.38888889e-3f + a2 * (2.48015873e-5f +
                   a2 * (-2.75573192e-7f + a2 * 2.08767570e-9f)))));
  // quadrant k: (sin, cos)(k pi/2 + a) = (sa, ca), (ca, -sa), (-sa, -ca), (-ca, sa)
  // (bit masks rather than branches, so the CPU loop vectorizes; results are exact selects)
  const uint32_t k = static_cast<uint32_t>(quadrant);
  const uint32_t swap = 0u - (k & 1u);
  const uint32_t sa_bits = philox_float_bits(sa), ca_bits = philox_float_bits(ca);
  const uint32_t s_abs = (ca_bits & swap) | (sa_bits & ~swap), c_abs = (sa_bits & swap) | (ca_bits & ~swap);
  s = philox_bits_float(s_abs ^ ((k & 2u) << 30));
  c = philox_bits_float(c_abs ^ (((k + 1u) & 2u) << 30));
}

// Box-Muller on two uniforms -> two independent standard normals.
MEDKERN_HD void box_muller(uint32_t bits_radius, uint32_t bits_angle, float& z0, float& z1) {
  const float u1 = uniform_float_open_zero(bits_radius);
  const float u2 = uniform_float_from_bits(bits_angle);
  const float r = sqrtf(-2.0f * philox_log(u1));
  float s, c;
  philox_sincos_turns(u2, s, c);
  z0 = r * c;
  z1 = r * s;
}

// Four standard normals for the aligned group of four elements starting at 4 * group.
MEDKERN_HD void philox_normal4(uint64_t seed, uint64_t sample, uint32_t stream, uint64_t group, float out[4]) {
  const Philox4x32 r = philox_block(seed, sample, stream, group);
  box_muller(r.v[0], r.v[1], out[0], out[1]);
  box_muller(r.v[2], r.v[3], out[2], out[3]);
}

// The standard normal of one element (index = flat element index within its sample's output).
MEDKERN_HD float philox_normal_at(uint64_t seed, uint64_t sample, uint32_t stream, uint64_t index) {
  float z[4];
  philox_normal4(seed, sample, stream, index >> 2, z);
  return z[index & 3];
}

}  // namespace medkern
