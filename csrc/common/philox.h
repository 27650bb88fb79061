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

// Box-Muller on two uniforms -> two independent standard normals.
MEDKERN_HD void box_muller(uint32_t bits_radius, uint32_t bits_angle, float& z0, float& z1) {
  const float u1 = uniform_float_open_zero(bits_radius);
  const float u2 = uniform_float_from_bits(bits_angle);
  const float r = sqrtf(-2.0f * logf(u1));
  const float theta = 6.283185307179586f * u2;
  z0 = r * cosf(theta);
  z1 = r * sinf(theta);
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
