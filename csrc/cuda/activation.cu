// cuda/activation.cu — relu and leaky_relu forward / backward. Dense tensors take a vectorized path (4 elements
// per thread and per load), anything else an N-d strided path; both are grid-stride loops over
// a memory-bound map, so the only goal is full-width loads.
#include <cstdint>

#include "common/activation_math.h"
#include "cuda/cuda_check.cuh"
#include "cuda/dtype_dispatch.cuh"
#include "medkern/activation.h"

namespace medkern::cuda {
namespace {

constexpr int kThreads = 256;

struct Layout {
  int ndim;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
};
Layout layout_of(const TensorView& v) {
  Layout l{};
  l.ndim = v.ndim;
  for (int i = 0; i < v.ndim; ++i) { l.shape[i] = v.shape[i]; l.strides[i] = v.strides[i]; }
  return l;
}
__device__ __forceinline__ int64_t offset_of(int64_t i, const Layout& l) {
  int64_t off = 0;
  for (int d = l.ndim - 1; d >= 0; --d) {
    const int64_t c = i % l.shape[d];
    i /= l.shape[d];
    off += c * l.strides[d];
  }
  return off;
}

// The element-wise op on accumulator values: relu (unary) or relu's gradient (binary).
struct ReluOp {
  template <class A> __device__ A operator()(A x, A /*unused*/) const { return relu(x); }
};
struct ReluGradOp {
  template <class A> __device__ A operator()(A grad, A out) const { return relu_grad_from_output(grad, out); }
};

struct LeakyReluOp {
  double slope;
  template <class A> __device__ A operator()(A x, A /*unused*/) const { return leaky_relu(x, A(slope)); }
};
struct LeakyReluGradOp {
  double slope;
  template <class A> __device__ A operator()(A grad, A self) const { return leaky_relu_grad(grad, self, A(slope)); }
};

// y = op(a, b) over dense tensors, one 16-byte pack per thread and load when every pointer is
// 16-byte aligned (kPacked); a scalar tail handles the rest. a may alias y (in-place relu).
template <class T> struct alignas(16) Pack16 {
  static constexpr int kCount = 16 / sizeof(T);
  T v[kCount];
};

template <class T, class Op, bool kPacked>
__global__ void map_dense_kernel(const T* a, const T* b, T* y, int64_t n, Op op) {
  using Acc = acc_t<T>;
  using P = Pack16<T>;
  constexpr int V = kPacked ? P::kCount : 1;
  const int64_t vec_n = kPacked ? n / V : 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  if constexpr (kPacked) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < vec_n; i += stride) {
      const P av = reinterpret_cast<const P*>(a)[i];
      const P bv = b ? reinterpret_cast<const P*>(b)[i] : av;
      P yv;
#pragma unroll
      for (int j = 0; j < V; ++j) yv.v[j] = from_acc<T>(op(to_acc<Acc>(av.v[j]), to_acc<Acc>(bv.v[j])));
      reinterpret_cast<P*>(y)[i] = yv;
    }
  }
  for (int64_t i = vec_n * V + blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += stride) {
    const Acc av = to_acc<Acc>(a[i]);
    y[i] = from_acc<T>(op(av, b ? to_acc<Acc>(b[i]) : av));
  }
}

template <class T, class Op>
__global__ void map_strided_kernel(const T* a, Layout la, const T* b, Layout lb, T* y, Layout ly, int64_t n, Op op) {
  using Acc = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const Acc av = to_acc<Acc>(a[offset_of(i, la)]);
    const Acc bv = b ? to_acc<Acc>(b[offset_of(i, lb)]) : av;
    y[offset_of(i, ly)] = from_acc<T>(op(av, bv));
  }
}

template <class Op>
void launch_map(const TensorView& a, const TensorView* b, const TensorView& y, Op op, Stream stream,
                const char* name, const char* arg_name) {
  const int64_t n = y.numel();
  if (n == 0) return;
  DeviceGuard guard(y);
  const cudaStream_t s = as_cuda_stream(stream);
  dispatch_floating(a.dtype, arg_name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* bp = b ? b->ptr<const T>() : nullptr;
    const bool dense = a.is_contiguous() && y.is_contiguous() && (!b || b->is_contiguous());
    if (dense) {
      auto aligned = [](const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0; };
      if (aligned(a.data) && aligned(y.data) && (!b || aligned(b->data))) {
        const int64_t packs = (n + Pack16<T>::kCount - 1) / Pack16<T>::kCount;
        map_dense_kernel<T, Op, true><<<grid_for(packs, kThreads), kThreads, 0, s>>>(a.ptr<const T>(), bp,
                                                                                     y.ptr<T>(), n, op);
      } else {
        map_dense_kernel<T, Op, false><<<grid_for(n, kThreads), kThreads, 0, s>>>(a.ptr<const T>(), bp,
                                                                                  y.ptr<T>(), n, op);
      }
    } else {
      map_strided_kernel<T, Op><<<grid_for(n, kThreads), kThreads, 0, s>>>(
          a.ptr<const T>(), layout_of(a), bp, b ? layout_of(*b) : Layout{}, y.ptr<T>(), layout_of(y), n, op);
    }
    MEDKERN_CUDA_CHECK_LAUNCH(name);
  });
}

}  // namespace

void relu_forward(const TensorView& input, const TensorView& output, Stream stream) {
  launch_map(input, nullptr, output, ReluOp{}, stream, "relu_forward", "input");
}

void relu_backward(const TensorView& grad_output, const TensorView& output, const TensorView& grad_input,
                   Stream stream) {
  launch_map(grad_output, &output, grad_input, ReluGradOp{}, stream, "relu_backward", "grad_output");
}

void leaky_relu_forward(const TensorView& input, const TensorView& output, double negative_slope, Stream stream) {
  launch_map(input, nullptr, output, LeakyReluOp{negative_slope}, stream, "leaky_relu_forward", "input");
}

void leaky_relu_backward(const TensorView& grad_output, const TensorView& self, const TensorView& grad_input,
                         double negative_slope, Stream stream) {
  launch_map(grad_output, &self, grad_input, LeakyReluGradOp{negative_slope}, stream, "leaky_relu_backward",
             "grad_output");
}

}  // namespace medkern::cuda
