// cuda/preprocess_filter.cu — CUDA driver of the separable filter stage (filter.h): one thread
// per output element (grid-stride, 64-bit indices) finds its input line and output coordinate
// along the filtered axis and calls the same tap dot product as the CPU loop (common/filter_math.h).
// Runs on the caller's stream; allocates nothing and never synchronizes.
#include <cuda_runtime.h>

#include <cstdint>

#include "common/filter_math.h"
#include "cuda/cuda_check.cuh"
#include "medkern/filter.h"

namespace medkern::cuda {

namespace {

constexpr int kFilterThreads = 256;

struct FilterGeometry {
  FilterAxisGeometry axis;
  int64_t in_len = 0, taps = 0, total = 0;
  int64_t per_sample = 0;      // output elements of one sample
  int64_t sample_weights = 0;  // weights of one sample (0: one set shared by all samples)
};

__global__ void filter_axis_kernel(const float* in, const int64_t* indices, const float* weights, void* out,
                                   DType out_dtype, FilterGeometry g) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < g.total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t i = 0;
    const int64_t offset = g.axis.source_offset(e, g.axis.ndim - 1, &i);
    const float* sample_weights = weights + (e / g.per_sample) * g.sample_weights;
    const float v = filter_dot(in + offset, g.axis.in_strides[g.axis.filtered], g.in_len, indices + i * g.taps,
                               sample_weights + i * g.taps, g.taps);
    filter_store(out, out_dtype, e, v);
  }
}

}  // namespace

void filter_axis(const TensorView& input, const TensorView& indices, const TensorView& weights,
                 const TensorView& output, int axis, Stream stream) {
  FilterGeometry g;
  g.axis = filter_axis_geometry(input, output, axis);
  g.in_len = input.shape[g.axis.filtered];
  g.taps = indices.shape[1];
  g.total = output.numel();
  if (g.total == 0) return;
  g.per_sample = g.total / output.shape[0];
  g.sample_weights = weights.ndim == 3 ? indices.shape[0] * g.taps : 0;
  DeviceGuard guard(input);
  filter_axis_kernel<<<grid_for(g.total, kFilterThreads), kFilterThreads, 0, as_cuda_stream(stream)>>>(
      input.ptr<float>(), indices.ptr<int64_t>(), weights.ptr<float>(), output.data, output.dtype, g);
  MEDKERN_CUDA_CHECK_LAUNCH("filter_axis_kernel");
}

}  // namespace medkern::cuda
