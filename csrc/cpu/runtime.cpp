// cpu/runtime.cpp — run-time choices shared by all CPU kernels: the SIMD level (detected from
// cpuid, lowered by MEDKERN_SIMD) and the per-thread workspace buffers.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>

#include "medkern/simd.h"
#include "medkern/workspace.h"

namespace medkern::cpu {
namespace {

SimdLevel detect_simd_level() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return SimdLevel::AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::AVX2;
#endif
  return SimdLevel::Scalar;
}

SimdLevel hardware_level() {
  static const SimdLevel level = detect_simd_level();
  return level;
}

SimdLevel initial_level() {
  SimdLevel level = hardware_level();
  if (const char* env = std::getenv("MEDKERN_SIMD")) {
    SimdLevel wanted = level;
    if (!std::strcmp(env, "scalar")) wanted = SimdLevel::Scalar;
    else if (!std::strcmp(env, "avx2")) wanted = SimdLevel::AVX2;
    else if (!std::strcmp(env, "avx512")) wanted = SimdLevel::AVX512;
    if (static_cast<int>(wanted) < static_cast<int>(level)) level = wanted;
  }
  return level;
}

SimdLevel& current_level() {
  static SimdLevel level = initial_level();
  return level;
}

struct AlignedFree { void operator()(void* p) const { std::free(p); } };
struct ThreadBuffer { std::unique_ptr<void, AlignedFree> data; std::size_t bytes = 0; };
constexpr int kSlots = 9;

}  // namespace

SimdLevel simd_level() { return current_level(); }

void set_simd_level(SimdLevel level) {
  current_level() = static_cast<int>(level) < static_cast<int>(hardware_level()) ? level : hardware_level();
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::AVX512: return "avx512";
    case SimdLevel::AVX2: return "avx2";
    default: return "scalar";
  }
}

void* thread_workspace(std::size_t bytes, int slot) {
  thread_local ThreadBuffer buffers[kSlots];
  if (slot < 0 || slot >= kSlots) throw std::out_of_range("thread_workspace: slot out of range");
  ThreadBuffer& b = buffers[slot];
  if (b.bytes < bytes) {
    std::size_t want = ((bytes + bytes / 4 + 63) / 64) * 64;  // grow with slack, 64-byte multiple
    void* p = std::aligned_alloc(64, want);
    if (!p) throw std::bad_alloc();
    b.data.reset(p);
    b.bytes = want;
  }
  return b.data.get();
}

}  // namespace medkern::cpu
