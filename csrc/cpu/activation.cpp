// cpu/activation.cpp — relu and leaky_relu and their backward passes on the CPU. Point-wise and memory bound, so the
// goal is one streaming pass: dense tensors run as one flat, threaded, vectorizable loop;
// strided inputs run row by row over the last axis (outputs are always dense).
#include <algorithm>

#include "common/activation_math.h"
#include "medkern/activation.h"
#include "medkern/parallel.h"

namespace medkern::cpu {
namespace {

constexpr int64_t kGrain = 32768;  // elements per thread chunk worth a thread's start-up

// Offset of the first element of row `row` (rows = all indices but the last axis) in `v`.
int64_t row_offset(const TensorView& v, int64_t row) {
  int64_t off = 0;
  for (int d = v.ndim - 2; d >= 0; --d) {
    off += (row % v.shape[d]) * v.strides[d];
    row /= v.shape[d];
  }
  return off;
}

// Calls f(i, a_offset, b_offset) style loops: `body(a_ptr, a_stride, b_ptr, b_stride, out_ptr, len)`
// on chunks, where a/b are strided sources and out is dense.
template <class T, class Body>
void for_each_row(const TensorView& a, const TensorView* b, T* out, const Body& body) {
  const int64_t numel = a.numel();
  if (numel == 0) return;
  const bool dense = a.is_contiguous() && (!b || b->is_contiguous());
  if (dense || a.ndim == 0) {
    parallel_for(0, numel, kGrain, [&](int64_t s, int64_t e) {
      body(a.ptr<const T>() + s, int64_t(1), b ? b->ptr<const T>() + s : nullptr, int64_t(1), out + s, e - s);
    });
    return;
  }
  const int64_t len = a.shape[a.ndim - 1];
  const int64_t rows = numel / len;
  parallel_for(0, rows, std::max<int64_t>(1, kGrain / len), [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r)
      body(a.ptr<const T>() + row_offset(a, r), a.strides[a.ndim - 1],
           b ? b->ptr<const T>() + row_offset(*b, r) : nullptr, b ? b->strides[b->ndim - 1] : int64_t(1),
           out + r * len, len);
  });
}

template <class T>
void relu_forward_typed(const TensorView& input, const TensorView& output) {
  for_each_row<T>(input, nullptr, output.ptr<T>(),
                  [](const T* x, int64_t sx, const T*, int64_t, T* y, int64_t len) {
                    if (sx == 1) {
#pragma omp simd
                      for (int64_t i = 0; i < len; ++i) y[i] = relu(x[i]);
                    } else {
                      for (int64_t i = 0; i < len; ++i) y[i] = relu(x[i * sx]);
                    }
                  });
}

template <class T>
void relu_backward_typed(const TensorView& grad_output, const TensorView& output, const TensorView& grad_input) {
  for_each_row<T>(grad_output, &output, grad_input.ptr<T>(),
                  [](const T* g, int64_t sg, const T* o, int64_t so, T* gi, int64_t len) {
                    if (sg == 1 && so == 1) {
#pragma omp simd
                      for (int64_t i = 0; i < len; ++i) gi[i] = relu_grad_from_output(g[i], o[i]);
                    } else {
                      for (int64_t i = 0; i < len; ++i) gi[i] = relu_grad_from_output(g[i * sg], o[i * so]);
                    }
                  });
}

template <class T>
void leaky_relu_forward_typed(const TensorView& input, const TensorView& output, T slope) {
  for_each_row<T>(input, nullptr, output.ptr<T>(),
                  [slope](const T* x, int64_t sx, const T*, int64_t, T* y, int64_t len) {
                    if (sx == 1) {
#pragma omp simd
                      for (int64_t i = 0; i < len; ++i) y[i] = leaky_relu(x[i], slope);
                    } else {
                      for (int64_t i = 0; i < len; ++i) y[i] = leaky_relu(x[i * sx], slope);
                    }
                  });
}

template <class T>
void leaky_relu_backward_typed(const TensorView& grad_output, const TensorView& self, const TensorView& grad_input,
                               T slope) {
  for_each_row<T>(grad_output, &self, grad_input.ptr<T>(),
                  [slope](const T* g, int64_t sg, const T* o, int64_t so, T* gi, int64_t len) {
                    if (sg == 1 && so == 1) {
#pragma omp simd
                      for (int64_t i = 0; i < len; ++i) gi[i] = leaky_relu_grad(g[i], o[i], slope);
                    } else {
                      for (int64_t i = 0; i < len; ++i) gi[i] = leaky_relu_grad(g[i * sg], o[i * so], slope);
                    }
                  });
}

}  // namespace

void relu_forward(const TensorView& input, const TensorView& output) {
  if (input.dtype == DType::Float64) relu_forward_typed<double>(input, output);
  else relu_forward_typed<float>(input, output);
}

void relu_backward(const TensorView& grad_output, const TensorView& output, const TensorView& grad_input) {
  if (grad_output.dtype == DType::Float64) relu_backward_typed<double>(grad_output, output, grad_input);
  else relu_backward_typed<float>(grad_output, output, grad_input);
}

void leaky_relu_forward(const TensorView& input, const TensorView& output, double negative_slope) {
  if (input.dtype == DType::Float64) leaky_relu_forward_typed<double>(input, output, negative_slope);
  else leaky_relu_forward_typed<float>(input, output, static_cast<float>(negative_slope));
}

void leaky_relu_backward(const TensorView& grad_output, const TensorView& self, const TensorView& grad_input,
                         double negative_slope) {
  if (grad_output.dtype == DType::Float64)
    leaky_relu_backward_typed<double>(grad_output, self, grad_input, negative_slope);
  else
    leaky_relu_backward_typed<float>(grad_output, self, grad_input, static_cast<float>(negative_slope));
}

}  // namespace medkern::cpu
