// common/activation_math.h — point-wise activation math shared by the CPU and CUDA kernels, and
// by the normalization kernels that apply an activation in the same pass (batch, group and
// instance norm followed by ReLU / LeakyReLU). Templates on the activation for the SIMD loops,
// a run-time switch for the GPU kernels (a uniform branch there).
#pragma once
#include "common/macros.h"
#include "medkern/activation.h"

namespace medkern {

// Each formula selects before it multiplies, so no arithmetic sits under a branch: compilers
// keep FP arithmetic out of speculation (it may trap), and a branch would keep the loop scalar.

// NaN propagates (as torch's relu does): NaN > 0 is false, so return x itself for NaN.
template <class T> MEDKERN_HD T relu(T x) {
  const T clipped = x > T(0) ? x : T(0);
  return x != x ? x : clipped;
}
// Gradient through relu from its output: positive output <=> positive input.
template <class T> MEDKERN_HD T relu_grad_from_output(T grad, T out) { return out > T(0) ? grad : T(0); }

// torch's leaky_relu: x > 0 ? x : x * slope (NaN * slope stays NaN).
template <class T> MEDKERN_HD T leaky_relu(T x, T slope) { return x * (x > T(0) ? T(1) : slope); }
// torch's leaky_relu_backward: `self` is the input, or the output when slope >= 0.
template <class T> MEDKERN_HD T leaky_relu_grad(T grad, T self, T slope) {
  return grad * (self > T(0) ? T(1) : slope);
}

// The activation of a pre-activation value z (A known at compile time: the CPU's vector loops).
template <Activation A, class T> MEDKERN_HD T activate(T z, T slope) {
  if constexpr (A == Activation::Relu) return relu(z);
  else if constexpr (A == Activation::LeakyRelu) return leaky_relu(z, slope);
  else return z;
}
// d activation(z) / dz times grad, from the pre-activation z.
template <Activation A, class T> MEDKERN_HD T activation_grad(T grad, T z, T slope) {
  if constexpr (A == Activation::Relu) return relu_grad_from_output(grad, z);
  else if constexpr (A == Activation::LeakyRelu) return leaky_relu_grad(grad, z, slope);
  else return grad;
}

// The same with the activation chosen at run time (GPU kernels).
template <class T> MEDKERN_HD T activate(T z, Activation a, T slope) {
  return a == Activation::Relu ? relu(z) : a == Activation::LeakyRelu ? leaky_relu(z, slope) : z;
}
template <class T> MEDKERN_HD T activation_grad(T grad, T z, Activation a, T slope) {
  return a == Activation::Relu ? relu_grad_from_output(grad, z)
         : a == Activation::LeakyRelu ? leaky_relu_grad(grad, z, slope) : grad;
}

}  // namespace medkern
