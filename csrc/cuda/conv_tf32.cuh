// cuda/conv_tf32.cuh — entry points of the TF32 tensor-core convolution path (conv_tf32.cu), for
// 2-D and 3-D convolutions alike: they take conv.cu's 5-D views (a 2-D convolution with its unit
// depth axis). Each returns true when it took the op (float32, TF32 allowed, a large enough
// workspace, a shape the path supports) and false, having launched nothing, otherwise.
#pragma once
#include <cuda_runtime.h>

#include "medkern/conv.h"

namespace medkern::cuda {

bool conv_forward_tf32(const TensorView& input, const TensorView& weight, const TensorView* bias,
                       const TensorView& output, const ConvParams& p, bool allow_tf32, const TensorView* workspace,
                       cudaStream_t stream);
bool conv_backward_input_tf32(const TensorView& grad_output, const TensorView& weight, const TensorView* bias,
                              const TensorView& grad_input, const ConvParams& p, bool allow_tf32,
                              const TensorView* workspace, cudaStream_t stream);
bool conv_backward_weight_tf32(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                               const ConvParams& p, bool allow_tf32, const TensorView* workspace,
                               cudaStream_t stream);

}  // namespace medkern::cuda
