// medkern/activation.h — point-wise activations. relu backward reads the forward output
// (out > 0 <=> in > 0), so the input need not be kept alive for autograd.
#pragma once
#include "medkern/tensor_view.h"

namespace medkern {

namespace cpu {
void relu_forward(const TensorView& input, const TensorView& output);  // output may alias input
void relu_backward(const TensorView& grad_output, const TensorView& output, const TensorView& grad_input);
}  // namespace cpu

namespace cuda {
void relu_forward(const TensorView& input, const TensorView& output, Stream stream);
void relu_backward(const TensorView& grad_output, const TensorView& output, const TensorView& grad_input,
                   Stream stream);
}  // namespace cuda

}  // namespace medkern
