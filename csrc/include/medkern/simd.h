// medkern/simd.h — the SIMD level chosen at run time. Kernels with vector code are compiled
// once per level (csrc/cpu/simd/*_avx512.cpp, *_avx2.cpp, *_scalar.cpp) and dispatch on this,
// so one build runs on any x86-64 and uses what the machine has. MEDKERN_SIMD=scalar|avx2|avx512
// lowers the level (for testing each path); it never raises it above what the CPU supports.
#pragma once

namespace medkern::cpu {

enum class SimdLevel : int { Scalar = 0, AVX2 = 1, AVX512 = 2 };

SimdLevel simd_level();               // detected once, then cached
void set_simd_level(SimdLevel level); // clamped to what the CPU supports
const char* simd_level_name(SimdLevel level);

}  // namespace medkern::cpu
