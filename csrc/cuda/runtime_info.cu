// cuda/runtime_info.cu — device discovery for `medkern info`. Every call tolerates a machine
// with no driver or no GPU (the CI case): it reports nothing rather than failing.
#include <cuda_runtime.h>

#include "medkern/cuda_runtime_info.h"

namespace medkern::cuda {

std::vector<DeviceInfo> visible_devices() {
  std::vector<DeviceInfo> devices;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return devices;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) { cudaGetLastError(); continue; }
    devices.push_back({i, prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                       static_cast<long long>(prop.totalGlobalMem)});
  }
  return devices;
}

int runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

int driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) { cudaGetLastError(); return 0; }
  return v;
}

}  // namespace medkern::cuda
