// medkern/cuda_runtime_info.h — what the CUDA part of the build can tell without torch:
// visible devices and their names. Declared always; defined only when CUDA is compiled in.
#pragma once
#include <string>
#include <vector>

namespace medkern::cuda {

struct DeviceInfo {
  int index;
  std::string name;
  int major, minor;
  int multiprocessors;
  long long total_memory;
};

// Devices visible now; empty (never an error) when there is no driver or no GPU.
std::vector<DeviceInfo> visible_devices();
int runtime_version();
int driver_version();

}  // namespace medkern::cuda
