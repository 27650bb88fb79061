// cuda/conv2d_tf32.cuh — entry points of the TF32 tensor-core convolution path (conv2d_tf32.cu),
// 2-D only: they take 4-D views (conv.cu drops the unit depth axis of a depth-1 convolution).
// Each returns true when it took the op (float32, TF32 allowed, a large enough workspace, a shape
// the path supports) and false, having launched nothing, otherwise.
#pragma once
#include <cuda_runtime.h>

#include "medkern/conv.h"

namespace medkern::cuda {

bool conv2d_forward_tf32(const TensorView& input, const TensorView& weight, const TensorView* bias,
                         const TensorView& output, const ConvParams& p, bool allow_tf32,
                         const TensorView* workspace, cudaStream_t stream);
bool conv2d_backward_input_tf32(const TensorView& grad_output, const TensorView& weight, const TensorView* bias,
                                const TensorView& grad_input, const ConvParams& p, bool allow_tf32,
                                const TensorView* workspace, cudaStream_t stream);
bool conv2d_backward_weight_tf32(const TensorView& grad_output, const TensorView& input,
                                 const TensorView& grad_weight, const ConvParams& p, bool allow_tf32,
                                 const TensorView* workspace, cudaStream_t stream);

}  // namespace medkern::cuda
