// cuda/dtype_dispatch.cuh — the element types the CUDA kernels run on and their accumulators:
// float and double accumulate in themselves, float16 / bfloat16 accumulate in float (as cuDNN
// does), so every kernel is written once as a template over (storage type, accumulator type).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "medkern/errors.h"
#include "medkern/tensor_view.h"

namespace medkern::cuda {

template <class T> struct AccumulatorOf { using type = T; };
template <> struct AccumulatorOf<__half> { using type = float; };
template <> struct AccumulatorOf<__nv_bfloat16> { using type = float; };
template <class T> using acc_t = typename AccumulatorOf<T>::type;

template <class A, class T> __device__ __forceinline__ A to_acc(T v) { return static_cast<A>(v); }
template <> __device__ __forceinline__ float to_acc<float, __half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_acc<float, __nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <class T, class A> __device__ __forceinline__ T from_acc(A v) { return static_cast<T>(v); }
template <> __device__ __forceinline__ __half from_acc<__half, float>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16, float>(float v) {
  return __float2bfloat16_rn(v);
}

template <class T> struct TypeTag { using type = T; };

// Calls body(TypeTag<T>{}) for the view's floating dtype (C++17 generic lambdas take the tag); other dtypes are a TypeError
// naming the argument (bindings check first; this is the kernels' own guard).
template <class Body>
void dispatch_floating(DType dtype, const char* name, Body&& body) {
  switch (dtype) {
    case DType::Float32: body(TypeTag<float>{}); return;
    case DType::Float64: body(TypeTag<double>{}); return;
    case DType::Float16: body(TypeTag<__half>{}); return;
    case DType::BFloat16: body(TypeTag<__nv_bfloat16>{}); return;
    default:
      throw TypeError(concat("argument '", name, "' has dtype ", dtype_name(dtype),
                             "; the CUDA kernels support float32, float64, float16 and bfloat16"));
  }
}

// Per-channel parameters (batch-norm weight, running statistics) may be float32 while the
// activations are float16/bfloat16 (torch's mixed-precision batch norm), so they are read by
// their own dtype at run time; they are read once per channel, so the switch costs nothing.
struct ParamRef {
  void* data = nullptr;
  DType dtype = DType::Float32;
  int64_t stride = 1;
  __device__ __forceinline__ double load(int64_t i) const {
    const int64_t o = i * stride;
    switch (dtype) {
      case DType::Float64: return static_cast<const double*>(data)[o];
      case DType::Float16: return __half2float(static_cast<const __half*>(data)[o]);
      case DType::BFloat16: return __bfloat162float(static_cast<const __nv_bfloat16*>(data)[o]);
      default: return static_cast<const float*>(data)[o];
    }
  }
  __device__ __forceinline__ void store(int64_t i, double v) const {
    const int64_t o = i * stride;
    switch (dtype) {
      case DType::Float64: static_cast<double*>(data)[o] = v; return;
      case DType::Float16: static_cast<__half*>(data)[o] = __double2half(v); return;
      case DType::BFloat16: static_cast<__nv_bfloat16*>(data)[o] = __double2bfloat16(v); return;
      default: static_cast<float*>(data)[o] = static_cast<float>(v); return;
    }
  }
  __host__ __device__ bool valid() const { return data != nullptr; }
};

inline ParamRef param_ref(const TensorView* v) {
  if (v == nullptr) return {};
  return {v->data, v->dtype, v->ndim > 0 ? v->strides[0] : 1};
}

}  // namespace medkern::cuda
