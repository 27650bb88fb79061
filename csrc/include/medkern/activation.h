// medkern/activation.h — point-wise activations and the activation a normalization may apply in
// its own pass. relu / leaky_relu backward read the forward output (for a non-negative slope,
// out > 0 <=> in > 0), so the input need not be kept alive for autograd.
#pragma once
#include "medkern/tensor_view.h"

namespace medkern {

// The activation a normalization kernel applies to its result (Python: _C.ACTIVATION_CODES).
enum class Activation : int { Identity = 0, Relu = 1, LeakyRelu = 2 };

// Python's names of the activations; nullptr past the last (see medkern/enum_names.h).
constexpr const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Identity: return "identity";
    case Activation::Relu: return "relu";
    case Activation::LeakyRelu: return "leaky_relu";
  }
  return nullptr;
}

namespace cpu {
void relu_forward(const TensorView& input, const TensorView& output);  // output may alias input
void relu_backward(const TensorView& grad_output, const TensorView& output, const TensorView& grad_input);
void leaky_relu_forward(const TensorView& input, const TensorView& output, double negative_slope);
// `self` is the forward input, or its output when negative_slope >= 0 (the sign is the same).
void leaky_relu_backward(const TensorView& grad_output, const TensorView& self, const TensorView& grad_input,
                         double negative_slope);
}  // namespace cpu

namespace cuda {
void relu_forward(const TensorView& input, const TensorView& output, Stream stream);
void relu_backward(const TensorView& grad_output, const TensorView& output, const TensorView& grad_input,
                   Stream stream);
void leaky_relu_forward(const TensorView& input, const TensorView& output, double negative_slope, Stream stream);
void leaky_relu_backward(const TensorView& grad_output, const TensorView& self, const TensorView& grad_input,
                         double negative_slope, Stream stream);
}  // namespace cuda

}  // namespace medkern
