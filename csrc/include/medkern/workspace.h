// medkern/workspace.h — per-thread scratch memory for CPU kernels (im2col columns, packed GEMM
// panels). Buffers grow and are kept, so repeated calls do not map and page-fault fresh memory.
#pragma once
#include <cstddef>

namespace medkern::cpu {

// A 64-byte aligned buffer of at least `bytes`, owned by the calling thread, one per `slot`
// (0..8: conv2d/gemm use 0 and 2-7, the percentile normalization 1 and 8). Valid until the same
// thread asks for the same slot again.
void* thread_workspace(std::size_t bytes, int slot);

template <class T>
T* thread_workspace_as(std::size_t count, int slot) {
  return static_cast<T*>(thread_workspace(count * sizeof(T), slot));
}

}  // namespace medkern::cpu
