// common/activation_math.h — point-wise activation math shared by the CPU and CUDA kernels.
#pragma once
#include "common/macros.h"

namespace medkern {

// NaN propagates (as torch's relu does): NaN > 0 is false, so return x itself for NaN.
template <class T> MEDKERN_HD T relu(T x) { return x > T(0) ? x : (x != x ? x : T(0)); }
// Gradient through relu from its output: positive output <=> positive input.
template <class T> MEDKERN_HD T relu_grad_from_output(T grad, T out) { return out > T(0) ? grad : T(0); }

}  // namespace medkern
