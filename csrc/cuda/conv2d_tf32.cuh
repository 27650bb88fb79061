// cuda/conv2d_tf32.cuh — entry points of the TF32 tensor-core convolution path (conv2d_tf32.cu).
// Each returns true when it took the op (float32, TF32 allowed, a large enough workspace, a shape
// the path supports) and false, having launched nothing, otherwise.
#pragma once
#include <cuda_runtime.h>

#include "medkern/conv2d.h"

namespace medkern::cuda {

bool conv2d_forward_tf32(const TensorView& input, const TensorView& weight, const TensorView* bias,
                         const TensorView& output, const Conv2dParams& p, bool allow_tf32,
                         const TensorView* workspace, cudaStream_t stream);
bool conv2d_backward_input_tf32(const TensorView& grad_output, const TensorView& weight,
                                const TensorView& grad_input, const Conv2dParams& p, bool allow_tf32,
                                const TensorView* workspace, cudaStream_t stream);
bool conv2d_backward_weight_tf32(const TensorView& grad_output, const TensorView& input,
                                 const TensorView& grad_weight, const Conv2dParams& p, bool allow_tf32,
                                 const TensorView* workspace, cudaStream_t stream);

}  // namespace medkern::cuda
