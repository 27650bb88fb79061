// cpu/simd/preprocess_noise_scalar.cpp — the noise fill compiled with the scalar flag set (CMake
// sets per-file flags); the code is in preprocess_noise_impl.h.
#include "cpu/simd/preprocess_noise_impl.h"

namespace medkern::cpu {
void fill_normals_scalar(uint64_t seed, uint64_t sample, uint32_t stream, int64_t first_group, int groups, float* out) {
  detail::fill_normals_impl(seed, sample, stream, first_group, groups, out);
}
}  // namespace medkern::cpu
