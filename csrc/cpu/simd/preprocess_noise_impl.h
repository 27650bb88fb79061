// cpu/simd/preprocess_noise_impl.h — the Philox normal fill of the noise op, included by one
// .cpp per SIMD level so the compiler vectorizes the same source for AVX-512, AVX2 and scalar
// builds (structure of arrays: Philox words first, then Box-Muller, both plain loops).
#pragma once
#include <cstdint>

#include "common/philox.h"

namespace medkern::cpu::detail {

// out[4 g + lane] = normal `lane` of group (first_group + g), for g in [0, groups); groups <= 128.
inline void fill_normals_impl(uint64_t seed, uint64_t sample, uint32_t stream, int64_t first_group, int groups,
                              float* out) {
  uint32_t w0[128], w1[128], w2[128], w3[128];
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const uint32_t c2 = static_cast<uint32_t>(sample);
  for (int g = 0; g < groups; ++g) {
    const uint64_t index = static_cast<uint64_t>(first_group + g);
    const Philox4x32 r = philox4x32_10(static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), c2, stream,
                                       k0, k1);
    w0[g] = r.v[0]; w1[g] = r.v[1]; w2[g] = r.v[2]; w3[g] = r.v[3];
  }
  float z0[128], z1[128], z2[128], z3[128];
  for (int g = 0; g < groups; ++g) {
    box_muller(w0[g], w1[g], z0[g], z1[g]);
    box_muller(w2[g], w3[g], z2[g], z3[g]);
  }
  for (int g = 0; g < groups; ++g) {
    out[4 * g] = z0[g]; out[4 * g + 1] = z1[g]; out[4 * g + 2] = z2[g]; out[4 * g + 3] = z3[g];
  }
}

}  // namespace medkern::cpu::detail
