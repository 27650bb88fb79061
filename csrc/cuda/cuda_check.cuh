// cuda/cuda_check.cuh — error checks for CUDA calls and launches. They throw (never exit), so a
// failed launch reaches Python as a RuntimeError naming the kernel, file and line.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "medkern/errors.h"
#include "medkern/tensor_view.h"

#define MEDKERN_CUDA_CHECK(expr)                                                                      \
  do {                                                                                               \
    cudaError_t medkern_err_ = (expr);                                                               \
    if (medkern_err_ != cudaSuccess)                                                                 \
      throw std::runtime_error(::medkern::concat("CUDA error ", cudaGetErrorString(medkern_err_),     \
                                                 " in ", #expr, " at ", __FILE__, ":", __LINE__));   \
  } while (0)

// After every launch: catches bad configurations at once (asynchronous faults surface later).
#define MEDKERN_CUDA_CHECK_LAUNCH(kernel_name)                                                       \
  do {                                                                                               \
    cudaError_t medkern_err_ = cudaGetLastError();                                                   \
    if (medkern_err_ != cudaSuccess)                                                                 \
      throw std::runtime_error(::medkern::concat("CUDA launch of ", kernel_name, " failed: ",         \
                                                 cudaGetErrorString(medkern_err_), " at ", __FILE__, \
                                                 ":", __LINE__));                                    \
  } while (0)

namespace medkern::cuda {

inline cudaStream_t as_cuda_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// Blocks for a grid-stride loop over n elements: enough to fill the GPU, never more than needed.
inline unsigned grid_for(int64_t n, int threads, int max_blocks = 65535 * 8) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > max_blocks) blocks = max_blocks;
  return static_cast<unsigned>(blocks);
}

}  // namespace medkern::cuda

namespace medkern::cuda {

// Makes the view's device current for the op's duration and restores the caller's device, so a
// tensor on cuda:1 works while cuda:0 is current (torch does the same with its device guard).
class DeviceGuard {
 public:
  explicit DeviceGuard(const TensorView& v) {
    MEDKERN_CUDA_CHECK(cudaGetDevice(&previous_));
    if (v.device.index != previous_) {
      MEDKERN_CUDA_CHECK(cudaSetDevice(v.device.index));
      switched_ = true;
    }
  }
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool switched_ = false;
};

}  // namespace medkern::cuda
