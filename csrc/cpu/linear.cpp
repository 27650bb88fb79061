// cpu/linear.cpp — fully connected layer on the shared blocked GEMM: y = x W^T + b and its
// three gradients. Operands are read through their strides (a transposed weight is just other
// strides), so nothing is copied before the GEMM packs its panels.
#include <vector>

#include "cpu/gemm_driver.h"
#include "medkern/linear.h"
#include "medkern/parallel.h"

namespace medkern::cpu {
namespace {

template <class T>
MatrixRef<const T> matrix_of(const TensorView& v, bool transposed = false) {
  return transposed ? dense_matrix<const T>(v.ptr<const T>(), v.stride(1), v.stride(0))
                    : dense_matrix<const T>(v.ptr<const T>(), v.stride(0), v.stride(1));
}

template <class T>
void forward_impl(const TensorView& x, const TensorView& w, const TensorView* bias, const TensorView& y) {
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  std::vector<T> b;
  if (bias) {
    b.resize(N);
    for (int64_t j = 0; j < N; ++j) b[j] = bias->ptr<const T>()[j * bias->stride(0)];
  }
  gemm_blocked<T>(M, N, K, matrix_of<T>(x), matrix_of<T>(w, true), dense_matrix<T>(y.ptr<T>(), N), false,
                  nullptr, bias ? b.data() : nullptr, false, true);
}

template <class T>
void backward_input_impl(const TensorView& dy, const TensorView& w, const TensorView& dx) {
  const int64_t M = dy.size(0), N = dy.size(1), K = w.size(1);
  gemm_blocked<T>(M, K, N, matrix_of<T>(dy), matrix_of<T>(w), dense_matrix<T>(dx.ptr<T>(), K), false, nullptr,
                  nullptr, false, true);
}

template <class T>
void backward_weight_impl(const TensorView& dy, const TensorView& x, const TensorView& dw) {
  const int64_t M = dy.size(0), N = dy.size(1), K = x.size(1);
  gemm_blocked<T>(N, K, M, matrix_of<T>(dy, true), matrix_of<T>(x), dense_matrix<T>(dw.ptr<T>(), K), false,
                  nullptr, nullptr, false, true);
}

template <class T>
void backward_bias_impl(const TensorView& dy, const TensorView& db) {
  const int64_t M = dy.size(0), N = dy.size(1);
  const T* d = dy.ptr<const T>();
  T* out = db.ptr<T>();
  parallel_for(0, N, 64, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      double s = 0;
      for (int64_t i = 0; i < M; ++i) s += d[i * dy.stride(0) + j * dy.stride(1)];
      out[j * db.stride(0)] = static_cast<T>(s);
    }
  });
}

}  // namespace

void linear_forward(const TensorView& input, const TensorView& weight, const TensorView* bias,
                    const TensorView& output) {
  if (input.dtype == DType::Float64) forward_impl<double>(input, weight, bias, output);
  else forward_impl<float>(input, weight, bias, output);
}

void linear_backward_input(const TensorView& grad_output, const TensorView& weight, const TensorView& grad_input) {
  if (weight.dtype == DType::Float64) backward_input_impl<double>(grad_output, weight, grad_input);
  else backward_input_impl<float>(grad_output, weight, grad_input);
}

void linear_backward_weight(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight) {
  if (input.dtype == DType::Float64) backward_weight_impl<double>(grad_output, input, grad_weight);
  else backward_weight_impl<float>(grad_output, input, grad_weight);
}

void linear_backward_bias(const TensorView& grad_output, const TensorView& grad_bias) {
  if (grad_output.dtype == DType::Float64) backward_bias_impl<double>(grad_output, grad_bias);
  else backward_bias_impl<float>(grad_output, grad_bias);
}

}  // namespace medkern::cpu
