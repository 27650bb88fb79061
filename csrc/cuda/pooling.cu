// cuda/pooling.cu — 2-D max / average pooling on the GPU, one thread per output (forward) or per
// input element (backward). Both backward passes are gathers over the outputs whose windows cover
// an input element (pool_output_range; the tap-by-tap conv_output_coord search for dilated max
// pooling), so they need no atomics, no zero-fill and are deterministic. These kernels are
// memory-bound, so their index math must stay cheap: when the tensors fit, it runs in 32 bits
// with multiply-shift dividers instead of divisions.
#include <cmath>
#include <limits>
#include <type_traits>

#include "common/conv2d_math.h"
#include "common/pooling_math.h"
#include "cuda/cuda_check.cuh"
#include "cuda/dtype_dispatch.cuh"
#include "cuda/fast_divmod.cuh"
#include "medkern/pooling.h"

namespace medkern::cuda {
namespace {

struct PoolDims {
  int64_t N, C, H, W, P, Q;
};

struct Strides4 {
  int64_t n, c, h, w;
};
Strides4 strides_of(const TensorView& v) { return {v.strides[0], v.strides[1], v.strides[2], v.strides[3]}; }

constexpr int kThreads = 256;

// x / d for the index type: a multiply-shift divider in 32 bits, a real division in 64 bits.
struct Divide32 {
  FastDivmod f;
  __device__ __forceinline__ int32_t operator()(int32_t n) const { return int32_t(f.div(uint32_t(n))); }
};
struct Divide64 {
  int64_t d;
  __device__ __forceinline__ int64_t operator()(int64_t n) const { return n / d; }
};
template <class I> using DivideFor = std::conditional_t<std::is_same_v<I, int32_t>, Divide32, Divide64>;
template <class I> DivideFor<I> make_divide(int64_t d) {
  if constexpr (std::is_same_v<I, int32_t>) return {FastDivmod(d)};
  else return {d > 0 ? d : 1};
}

// Dividers for one kernel: the flat index's (C, Y, X) extents and the pooling strides.
template <class I> struct PoolIndex {
  I C, Y, X;
  DivideFor<I> by_c, by_y, by_x, by_stride_h, by_stride_w;
};
template <class I> PoolIndex<I> pool_index(int64_t C, int64_t Y, int64_t X, const Pool2dParams& p) {
  return {I(C), I(Y), I(X), make_divide<I>(C), make_divide<I>(Y), make_divide<I>(X),
          make_divide<I>(p.stride_h), make_divide<I>(p.stride_w)};
}

// Splits a flat index over (n, c, y, x) of a (N, C, Y, X) shape.
template <class I> struct Coord4 {
  I n, c, y, x;
};
template <class I> __device__ __forceinline__ Coord4<I> unflatten(I i, const PoolIndex<I>& ix) {
  Coord4<I> r;
  const I q1 = ix.by_x(i);
  r.x = i - q1 * ix.X;
  const I q2 = ix.by_y(q1);
  r.y = q1 - q2 * ix.Y;
  r.n = ix.by_c(q2);
  r.c = q2 - r.n * ix.C;
  return r;
}

template <class T, class I>
__global__ void max_pool2d_forward_kernel(const T* __restrict__ x, Strides4 sx, T* __restrict__ y, Strides4 sy,
                                          int64_t* __restrict__ indices, Strides4 si, PoolDims d, Pool2dParams p,
                                          PoolIndex<I> ix) {
  using Acc = acc_t<T>;
  const I total = I(d.N) * I(d.C) * I(d.P) * I(d.Q);
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(gridDim.x) * I(blockDim.x)) {
    const Coord4<I> o = unflatten<I>(i, ix);
    // window arithmetic in the index type: 32 bits whenever the tensors' spans fit (fits_32bit)
    const T* plane = x + (I(o.n) * I(sx.n) + I(o.c) * I(sx.c));
    const I h0 = o.y * I(p.stride_h) - I(p.pad_h), w0 = o.x * I(p.stride_w) - I(p.pad_w);
    const I H = I(d.H), W = I(d.W), sh = I(sx.h), sw = I(sx.w), dh = I(p.dilation_h), dw = I(p.dilation_w);
    const I KH = I(p.kernel_h), KW = I(p.kernel_w);
    Acc best = -std::numeric_limits<Acc>::infinity();
    I best_index = -1;
    for (I kh = 0; kh < KH; ++kh) {
      const I h = h0 + kh * dh;
      if (h < 0 || h >= H) continue;
      for (I kw = 0; kw < KW; ++kw) {
        const I w = w0 + kw * dw;
        if (w < 0 || w >= W) continue;
        const Acc v = to_acc<Acc>(plane[h * sh + w * sw]);
        // NaN wins (torch propagates it); the first maximum wins ties
        if (best_index < 0 || v > best || (v != v && best == best)) {
          best = v;
          best_index = h * W + w;
        }
      }
    }
    y[I(o.n) * I(sy.n) + I(o.c) * I(sy.c) + o.y * I(sy.h) + o.x * I(sy.w)] = from_acc<T>(best);
    // null indices = values only (inference); the pointer is the same for every thread
    if (indices != nullptr)
      indices[o.n * si.n + o.c * si.c + o.y * si.h + o.x * si.w] = best_index < 0 ? 0 : int64_t(best_index);
  }
}

template <class T, class I>
__global__ void max_pool2d_backward_kernel(const T* __restrict__ dy, Strides4 sdy, const int64_t* __restrict__ indices,
                                           Strides4 si, T* __restrict__ dx, Strides4 sdx, PoolDims d, Pool2dParams p,
                                           PoolIndex<I> ix) {
  using Acc = acc_t<T>;
  const I total = I(d.N) * I(d.C) * I(d.H) * I(d.W);
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(gridDim.x) * I(blockDim.x)) {
    const Coord4<I> e = unflatten<I>(i, ix);
    const int64_t self = int64_t(e.y) * d.W + e.x;
    const T* g = dy + e.n * sdy.n + e.c * sdy.c;
    const int64_t* idx = indices + e.n * si.n + e.c * si.c;
    Acc acc = Acc(0);
    if (p.dilation_h == 1 && p.dilation_w == 1) {
      const OutputRange<I> ry = pool_output_range<I>(e.y, I(p.kernel_h), I(p.pad_h), I(d.P), ix.by_stride_h);
      const OutputRange<I> rx = pool_output_range<I>(e.x, I(p.kernel_w), I(p.pad_w), I(d.Q), ix.by_stride_w);
      for (I py = ry.start; py < ry.end; ++py)
        for (I px = rx.start; px < rx.end; ++px)
          if (idx[py * si.h + px * si.w] == self) acc += to_acc<Acc>(g[py * sdy.h + px * sdy.w]);
    } else {  // dilated windows cover inputs sparsely: search tap by tap
      for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
        const int64_t py = conv_output_coord(e.y, kh, p.stride_h, p.pad_h, p.dilation_h, d.P);
        if (py < 0) continue;
        for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
          const int64_t px = conv_output_coord(e.x, kw, p.stride_w, p.pad_w, p.dilation_w, d.Q);
          if (px < 0) continue;
          if (idx[py * si.h + px * si.w] == self) acc += to_acc<Acc>(g[py * sdy.h + px * sdy.w]);
        }
      }
    }
    dx[e.n * sdx.n + e.c * sdx.c + e.y * sdx.h + e.x * sdx.w] = from_acc<T>(acc);
  }
}

template <class T, class I>
__global__ void avg_pool2d_forward_kernel(const T* __restrict__ x, Strides4 sx, T* __restrict__ y, Strides4 sy,
                                          PoolDims d, Pool2dParams p, PoolIndex<I> ix) {
  using Acc = acc_t<T>;
  const I total = I(d.N) * I(d.C) * I(d.P) * I(d.Q);
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(gridDim.x) * I(blockDim.x)) {
    const Coord4<I> o = unflatten<I>(i, ix);
    const PoolWindow wh = avg_pool_window(o.y, d.H, p.kernel_h, p.stride_h, p.pad_h);
    const PoolWindow ww = avg_pool_window(o.x, d.W, p.kernel_w, p.stride_w, p.pad_w);
    const T* plane = x + o.n * sx.n + o.c * sx.c;
    Acc acc = Acc(0);
    for (int64_t h = wh.start; h < wh.end; ++h)
      for (int64_t w = ww.start; w < ww.end; ++w) acc += to_acc<Acc>(plane[h * sx.h + w * sx.w]);
    const int64_t divisor = avg_pool_divisor(wh, ww, p.count_include_pad, p.divisor_override);
    y[o.n * sy.n + o.c * sy.c + o.y * sy.h + o.x * sy.w] = from_acc<T>(divisor > 0 ? acc / Acc(divisor) : Acc(0));
  }
}

template <class T, class I>
__global__ void avg_pool2d_backward_kernel(const T* __restrict__ dy, Strides4 sdy, T* __restrict__ dx, Strides4 sdx,
                                           PoolDims d, Pool2dParams p, PoolIndex<I> ix) {
  using Acc = acc_t<T>;
  const I total = I(d.N) * I(d.C) * I(d.H) * I(d.W);
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(gridDim.x) * I(blockDim.x)) {
    const Coord4<I> e = unflatten<I>(i, ix);
    const T* g = dy + e.n * sdy.n + e.c * sdy.c;
    Acc acc = Acc(0);
    const OutputRange<I> ry = pool_output_range<I>(e.y, I(p.kernel_h), I(p.pad_h), I(d.P), ix.by_stride_h);
    const OutputRange<I> rx = pool_output_range<I>(e.x, I(p.kernel_w), I(p.pad_w), I(d.Q), ix.by_stride_w);
    for (I py = ry.start; py < ry.end; ++py) {
      const PoolWindow wh = avg_pool_window(py, d.H, p.kernel_h, p.stride_h, p.pad_h);
      for (I px = rx.start; px < rx.end; ++px) {
        const PoolWindow ww = avg_pool_window(px, d.W, p.kernel_w, p.stride_w, p.pad_w);
        const int64_t divisor = avg_pool_divisor(wh, ww, p.count_include_pad, p.divisor_override);
        if (divisor > 0) acc += to_acc<Acc>(g[py * sdy.h + px * sdy.w]) / Acc(divisor);
      }
    }
    dx[e.n * sdx.n + e.c * sdx.c + e.y * sdx.h + e.x * sdx.w] = from_acc<T>(acc);
  }
}

PoolDims pool_dims(const TensorView& x_like, const TensorView& y_like) {
  return {x_like.shape[0], x_like.shape[1], x_like.shape[2], x_like.shape[3], y_like.shape[2], y_like.shape[3]};
}

// 32-bit index math when every element count (and so every offset) fits; otherwise 64-bit.
bool fits_32bit(const TensorView& a, const TensorView& b) {
  auto span = [](const TensorView& v) {
    int64_t s = 1;
    for (int i = 0; i < v.ndim; ++i) s += (v.shape[i] - 1) * (v.strides[i] < 0 ? -v.strides[i] : v.strides[i]);
    return std::max(s, v.numel());
  };
  constexpr int64_t limit = int64_t{1} << 31;
  return span(a) < limit && span(b) < limit;
}

}  // namespace

void max_pool2d_forward(const TensorView& input, const TensorView& output, const TensorView& indices,
                        const Pool2dParams& p, Stream stream) {
  if (output.numel() == 0) return;
  DeviceGuard guard(output);
  const PoolDims d = pool_dims(input, output);
  const cudaStream_t s = as_cuda_stream(stream);
  const bool small = fits_32bit(input, output);
  dispatch_floating(input.dtype, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const unsigned blocks = grid_for(output.numel(), kThreads);
    if (small) {
      max_pool2d_forward_kernel<T, int32_t><<<blocks, kThreads, 0, s>>>(
          input.ptr<const T>(), strides_of(input), output.ptr<T>(), strides_of(output), indices.ptr<int64_t>(),
          strides_of(indices), d, p, pool_index<int32_t>(d.C, d.P, d.Q, p));
    } else {
      max_pool2d_forward_kernel<T, int64_t><<<blocks, kThreads, 0, s>>>(
          input.ptr<const T>(), strides_of(input), output.ptr<T>(), strides_of(output), indices.ptr<int64_t>(),
          strides_of(indices), d, p, pool_index<int64_t>(d.C, d.P, d.Q, p));
    }
    MEDKERN_CUDA_CHECK_LAUNCH("max_pool2d_forward_kernel");
  });
}

void max_pool2d_backward(const TensorView& grad_output, const TensorView& indices, const TensorView& grad_input,
                         const Pool2dParams& p, Stream stream) {
  if (grad_input.numel() == 0) return;
  DeviceGuard guard(grad_input);
  const PoolDims d = pool_dims(grad_input, grad_output);
  const cudaStream_t s = as_cuda_stream(stream);
  const bool small = fits_32bit(grad_input, grad_output);
  dispatch_floating(grad_output.dtype, "grad_output", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const unsigned blocks = grid_for(grad_input.numel(), kThreads);
    if (small) {
      max_pool2d_backward_kernel<T, int32_t><<<blocks, kThreads, 0, s>>>(
          grad_output.ptr<const T>(), strides_of(grad_output), indices.ptr<const int64_t>(), strides_of(indices),
          grad_input.ptr<T>(), strides_of(grad_input), d, p, pool_index<int32_t>(d.C, d.H, d.W, p));
    } else {
      max_pool2d_backward_kernel<T, int64_t><<<blocks, kThreads, 0, s>>>(
          grad_output.ptr<const T>(), strides_of(grad_output), indices.ptr<const int64_t>(), strides_of(indices),
          grad_input.ptr<T>(), strides_of(grad_input), d, p, pool_index<int64_t>(d.C, d.H, d.W, p));
    }
    MEDKERN_CUDA_CHECK_LAUNCH("max_pool2d_backward_kernel");
  });
}

void avg_pool2d_forward(const TensorView& input, const TensorView& output, const Pool2dParams& p, Stream stream) {
  if (output.numel() == 0) return;
  DeviceGuard guard(output);
  const PoolDims d = pool_dims(input, output);
  const cudaStream_t s = as_cuda_stream(stream);
  const bool small = fits_32bit(input, output);
  dispatch_floating(input.dtype, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const unsigned blocks = grid_for(output.numel(), kThreads);
    if (small) {
      avg_pool2d_forward_kernel<T, int32_t><<<blocks, kThreads, 0, s>>>(
          input.ptr<const T>(), strides_of(input), output.ptr<T>(), strides_of(output), d, p,
          pool_index<int32_t>(d.C, d.P, d.Q, p));
    } else {
      avg_pool2d_forward_kernel<T, int64_t><<<blocks, kThreads, 0, s>>>(
          input.ptr<const T>(), strides_of(input), output.ptr<T>(), strides_of(output), d, p,
          pool_index<int64_t>(d.C, d.P, d.Q, p));
    }
    MEDKERN_CUDA_CHECK_LAUNCH("avg_pool2d_forward_kernel");
  });
}

void avg_pool2d_backward(const TensorView& grad_output, const TensorView& grad_input, const Pool2dParams& p,
                         Stream stream) {
  if (grad_input.numel() == 0) return;
  DeviceGuard guard(grad_input);
  const PoolDims d = pool_dims(grad_input, grad_output);
  const cudaStream_t s = as_cuda_stream(stream);
  const bool small = fits_32bit(grad_input, grad_output);
  dispatch_floating(grad_output.dtype, "grad_output", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const unsigned blocks = grid_for(grad_input.numel(), kThreads);
    if (small) {
      avg_pool2d_backward_kernel<T, int32_t><<<blocks, kThreads, 0, s>>>(
          grad_output.ptr<const T>(), strides_of(grad_output), grad_input.ptr<T>(), strides_of(grad_input), d, p,
          pool_index<int32_t>(d.C, d.H, d.W, p));
    } else {
      avg_pool2d_backward_kernel<T, int64_t><<<blocks, kThreads, 0, s>>>(
          grad_output.ptr<const T>(), strides_of(grad_output), grad_input.ptr<T>(), strides_of(grad_input), d, p,
          pool_index<int64_t>(d.C, d.H, d.W, p));
    }
    MEDKERN_CUDA_CHECK_LAUNCH("avg_pool2d_backward_kernel");
  });
}

}  // namespace medkern::cuda
