// cuda/pooling.cu — 2-D and 3-D max / average pooling on the GPU, one thread per output (forward)
// or per input element (backward). Every view is (N, C, D, H, W); a kernel compiled with
// Depth = false is the 2-D case (unit depth axis), whose depth math folds away at compile time.
// Both backward passes are gathers over the outputs whose windows cover an input element
// (pool_output_range; the tap-by-tap conv_output_coord search for dilated max pooling), so they
// need no atomics, no zero-fill and are deterministic. These kernels are memory-bound, so their
// index math must stay cheap: when the tensors fit, it runs in 32 bits with multiply-shift
// dividers instead of divisions. The window math is common/pooling_math.h's, as on the CPU.
#include <cmath>
#include <limits>
#include <type_traits>

#include "common/conv_math.h"
#include "common/pooling_math.h"
#include "cuda/cuda_check.cuh"
#include "cuda/dtype_dispatch.cuh"
#include "cuda/fast_divmod.cuh"
#include "medkern/pooling.h"

namespace medkern::cuda {
namespace {

struct PoolDims {
  int64_t N, C, D, H, W, OD, P, Q;
};

struct Strides5 {
  int64_t n, c, d, h, w;
};
// A values-only call passes an indices view without dimensions: its strides read as 0.
Strides5 strides_of(const TensorView& v) {
  return {v.strides[0], v.strides[1], v.strides[2], v.strides[3], v.strides[4]};
}

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

// Dividers for one kernel: the flat index's (C, Z, Y, X) extents and the pooling strides.
template <class I> struct PoolIndex {
  I C, Z, Y, X;
  DivideFor<I> by_c, by_z, by_y, by_x, by_stride_d, by_stride_h, by_stride_w;
};
template <class I> PoolIndex<I> pool_index(int64_t C, int64_t Z, int64_t Y, int64_t X, const PoolParams& p) {
  return {I(C), I(Z), I(Y), I(X), make_divide<I>(C), make_divide<I>(Z), make_divide<I>(Y), make_divide<I>(X),
          make_divide<I>(p.d.stride), make_divide<I>(p.h.stride), make_divide<I>(p.w.stride)};
}

// Splits a flat index over (n, c, z, y, x) of a (N, C, Z, Y, X) shape; without Depth, Z is 1.
template <class I> struct Coord5 {
  I n, c, z, y, x;
};
template <class I, bool Depth> __device__ __forceinline__ Coord5<I> unflatten(I i, const PoolIndex<I>& ix) {
  Coord5<I> r;
  const I q1 = ix.by_x(i);
  r.x = i - q1 * ix.X;
  I q2 = ix.by_y(q1);
  r.y = q1 - q2 * ix.Y;
  r.z = 0;
  if constexpr (Depth) {
    const I q3 = ix.by_z(q2);
    r.z = q2 - q3 * ix.Z;
    q2 = q3;
  }
  r.n = ix.by_c(q2);
  r.c = q2 - r.n * ix.C;
  return r;
}

// One axis's max-pool taps in the index type; the unit depth axis of 2-D pooling has one tap at 0.
template <class I, bool Active>
__device__ __forceinline__ AxisTaps<I> axis_taps(I o, const PoolAxis& a, int64_t size) {
  if constexpr (!Active) return AxisTaps<I>{0, 0, 1, 1};
  else return max_pool_taps<I>(o, I(a.kernel), I(a.stride), I(a.pad), I(a.dilation), I(size));
}

template <bool Active>
__device__ __forceinline__ PoolWindow avg_axis_window(int64_t o, const PoolAxis& a, int64_t size) {
  if constexpr (!Active) return unit_pool_window();
  else return avg_pool_window(o, size, a.kernel, a.stride, a.pad);
}

// Outputs whose undilated window covers input coordinate `in` along one axis ([0, 1) on the unit
// depth axis).
template <class I, bool Active, class Divide>
__device__ __forceinline__ OutputRange<I> covering_outputs(I in, const PoolAxis& a, int64_t out_size,
                                                          const Divide& by_stride) {
  if constexpr (!Active) return OutputRange<I>{0, 1};
  else return pool_output_range<I>(in, I(a.kernel), I(a.pad), I(out_size), by_stride);
}

template <class T, class I, bool Depth>
__global__ void max_pool_forward_kernel(const T* __restrict__ x, Strides5 sx, T* __restrict__ y, Strides5 sy,
                                        int64_t* __restrict__ indices, Strides5 si, PoolDims d, PoolParams p,
                                        PoolIndex<I> ix) {
  using Acc = acc_t<T>;
  const I total = I(d.N) * I(d.C) * I(d.OD) * I(d.P) * I(d.Q);
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(gridDim.x) * I(blockDim.x)) {
    const Coord5<I> o = unflatten<I, Depth>(i, ix);
    // window arithmetic in the index type: 32 bits whenever the tensors' spans fit (fits_32bit)
    const T* plane = x + (I(o.n) * I(sx.n) + I(o.c) * I(sx.c));
    const I sd = I(sx.d), sh = I(sx.h), sw = I(sx.w);
    const MaxPoolResult<Acc, I> r = max_pool_window<Acc>(
        axis_taps<I, Depth>(o.z, p.d, d.D), axis_taps<I, true>(o.y, p.h, d.H), axis_taps<I, true>(o.x, p.w, d.W),
        I(d.H), I(d.W), [&](I z, I h, I w) { return to_acc<Acc>(plane[z * sd + h * sh + w * sw]); });
    y[I(o.n) * I(sy.n) + I(o.c) * I(sy.c) + o.z * I(sy.d) + o.y * I(sy.h) + o.x * I(sy.w)] = from_acc<T>(r.value);
    // null indices = values only (inference); the pointer is the same for every thread
    if (indices != nullptr)
      indices[o.n * si.n + o.c * si.c + o.z * si.d + o.y * si.h + o.x * si.w] = int64_t(r.index);
  }
}

template <class T, class I, bool Depth>
__global__ void max_pool_backward_kernel(const T* __restrict__ dy, Strides5 sdy, const int64_t* __restrict__ indices,
                                         Strides5 si, T* __restrict__ dx, Strides5 sdx, PoolDims d, PoolParams p,
                                         PoolIndex<I> ix) {
  using Acc = acc_t<T>;
  const I total = I(d.N) * I(d.C) * I(d.D) * I(d.H) * I(d.W);
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(gridDim.x) * I(blockDim.x)) {
    const Coord5<I> e = unflatten<I, Depth>(i, ix);
    const int64_t self = (int64_t(e.z) * d.H + e.y) * d.W + e.x;
    const T* g = dy + e.n * sdy.n + e.c * sdy.c;
    const int64_t* idx = indices + e.n * si.n + e.c * si.c;
    Acc acc = Acc(0);
    auto take_if_chosen = [&](I oz, I oy, I ox) {
      if (idx[oz * si.d + oy * si.h + ox * si.w] == self) acc += to_acc<Acc>(g[oz * sdy.d + oy * sdy.h + ox * sdy.w]);
    };
    if (p.d.dilation == 1 && p.h.dilation == 1 && p.w.dilation == 1) {
      const OutputRange<I> rz = covering_outputs<I, Depth>(e.z, p.d, d.OD, ix.by_stride_d);
      const OutputRange<I> ry = covering_outputs<I, true>(e.y, p.h, d.P, ix.by_stride_h);
      const OutputRange<I> rx = covering_outputs<I, true>(e.x, p.w, d.Q, ix.by_stride_w);
      for (I oz = rz.start; oz < rz.end; ++oz)
        for (I oy = ry.start; oy < ry.end; ++oy)
          for (I ox = rx.start; ox < rx.end; ++ox) take_if_chosen(oz, oy, ox);
    } else {  // dilated windows cover inputs sparsely: search tap by tap
      for (int64_t kz = 0; kz < (Depth ? p.d.kernel : 1); ++kz) {
        const int64_t oz = Depth ? conv_output_coord(e.z, kz, p.d.stride, p.d.pad, p.d.dilation, d.OD) : 0;
        if (oz < 0) continue;
        for (int64_t ky = 0; ky < p.h.kernel; ++ky) {
          const int64_t oy = conv_output_coord(e.y, ky, p.h.stride, p.h.pad, p.h.dilation, d.P);
          if (oy < 0) continue;
          for (int64_t kx = 0; kx < p.w.kernel; ++kx) {
            const int64_t ox = conv_output_coord(e.x, kx, p.w.stride, p.w.pad, p.w.dilation, d.Q);
            if (ox >= 0) take_if_chosen(I(oz), I(oy), I(ox));
          }
        }
      }
    }
    dx[e.n * sdx.n + e.c * sdx.c + e.z * sdx.d + e.y * sdx.h + e.x * sdx.w] = from_acc<T>(acc);
  }
}

template <class T, class I, bool Depth>
__global__ void avg_pool_forward_kernel(const T* __restrict__ x, Strides5 sx, T* __restrict__ y, Strides5 sy,
                                        PoolDims d, PoolParams p, PoolIndex<I> ix) {
  using Acc = acc_t<T>;
  const I total = I(d.N) * I(d.C) * I(d.OD) * I(d.P) * I(d.Q);
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(gridDim.x) * I(blockDim.x)) {
    const Coord5<I> o = unflatten<I, Depth>(i, ix);
    const PoolWindow wd = avg_axis_window<Depth>(o.z, p.d, d.D);
    const PoolWindow wh = avg_axis_window<true>(o.y, p.h, d.H);
    const PoolWindow ww = avg_axis_window<true>(o.x, p.w, d.W);
    const T* plane = x + o.n * sx.n + o.c * sx.c;
    Acc acc = Acc(0);
    for (int64_t z = wd.start; z < wd.end; ++z)
      for (int64_t h = wh.start; h < wh.end; ++h)
        for (int64_t w = ww.start; w < ww.end; ++w) acc += to_acc<Acc>(plane[z * sx.d + h * sx.h + w * sx.w]);
    const int64_t divisor = avg_pool_divisor(wd, wh, ww, p.count_include_pad, p.divisor_override);
    y[o.n * sy.n + o.c * sy.c + o.z * sy.d + o.y * sy.h + o.x * sy.w] =
        from_acc<T>(divisor > 0 ? acc / Acc(divisor) : Acc(0));
  }
}

template <class T, class I, bool Depth>
__global__ void avg_pool_backward_kernel(const T* __restrict__ dy, Strides5 sdy, T* __restrict__ dx, Strides5 sdx,
                                         PoolDims d, PoolParams p, PoolIndex<I> ix) {
  using Acc = acc_t<T>;
  const I total = I(d.N) * I(d.C) * I(d.D) * I(d.H) * I(d.W);
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(gridDim.x) * I(blockDim.x)) {
    const Coord5<I> e = unflatten<I, Depth>(i, ix);
    const T* g = dy + e.n * sdy.n + e.c * sdy.c;
    Acc acc = Acc(0);
    const OutputRange<I> rz = covering_outputs<I, Depth>(e.z, p.d, d.OD, ix.by_stride_d);
    const OutputRange<I> ry = covering_outputs<I, true>(e.y, p.h, d.P, ix.by_stride_h);
    const OutputRange<I> rx = covering_outputs<I, true>(e.x, p.w, d.Q, ix.by_stride_w);
    for (I oz = rz.start; oz < rz.end; ++oz) {
      const PoolWindow wd = avg_axis_window<Depth>(oz, p.d, d.D);
      for (I oy = ry.start; oy < ry.end; ++oy) {
        const PoolWindow wh = avg_axis_window<true>(oy, p.h, d.H);
        for (I ox = rx.start; ox < rx.end; ++ox) {
          const PoolWindow ww = avg_axis_window<true>(ox, p.w, d.W);
          const int64_t divisor = avg_pool_divisor(wd, wh, ww, p.count_include_pad, p.divisor_override);
          if (divisor > 0) acc += to_acc<Acc>(g[oz * sdy.d + oy * sdy.h + ox * sdy.w]) / Acc(divisor);
        }
      }
    }
    dx[e.n * sdx.n + e.c * sdx.c + e.z * sdx.d + e.y * sdx.h + e.x * sdx.w] = from_acc<T>(acc);
  }
}

PoolDims pool_dims(const TensorView& x_like, const TensorView& y_like) {
  return {x_like.shape[0], x_like.shape[1], x_like.shape[2], x_like.shape[3],
          x_like.shape[4], y_like.shape[2], y_like.shape[3], y_like.shape[4]};
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


// Calls body(TypeTag<T>, I{}, Depth) for the tensors' dtype, the index type their sizes allow and whether
// the depth axis is a real one (a 2-D call's unit axis with a unit window is not).
template <class Body>
void dispatch_pool(DType dtype, const char* name, bool small, const PoolDims& d, const PoolParams& p, Body&& body) {
  const bool depth = !(d.D == 1 && d.OD == 1 && p.d.kernel == 1 && p.d.pad == 0);
  dispatch_floating(dtype, name, [&](auto tag) {
    if (small) {
      if (depth) body(tag, int32_t{}, std::true_type{});
      else body(tag, int32_t{}, std::false_type{});
    } else {
      if (depth) body(tag, int64_t{}, std::true_type{});
      else body(tag, int64_t{}, std::false_type{});
    }
  });
}

}  // namespace

void max_pool_forward(const TensorView& input, const TensorView& output, const TensorView& indices,
                      const PoolParams& p, Stream stream) {
  if (output.numel() == 0) return;
  DeviceGuard guard(output);
  const PoolDims d = pool_dims(input, output);
  const cudaStream_t s = as_cuda_stream(stream);
  dispatch_pool(input.dtype, "input", fits_32bit(input, output), d, p, [&](auto t, auto index, auto depth) {
    using T = typename decltype(t)::type;
    using I = decltype(index);
    max_pool_forward_kernel<T, I, decltype(depth)::value><<<grid_for(output.numel(), kThreads), kThreads, 0, s>>>(
        input.ptr<const T>(), strides_of(input), output.ptr<T>(), strides_of(output), indices.ptr<int64_t>(),
        strides_of(indices), d, p, pool_index<I>(d.C, d.OD, d.P, d.Q, p));
    MEDKERN_CUDA_CHECK_LAUNCH("max_pool_forward_kernel");
  });
}

void max_pool_backward(const TensorView& grad_output, const TensorView& indices, const TensorView& grad_input,
                       const PoolParams& p, Stream stream) {
  if (grad_input.numel() == 0) return;
  DeviceGuard guard(grad_input);
  const PoolDims d = pool_dims(grad_input, grad_output);
  const cudaStream_t s = as_cuda_stream(stream);
  dispatch_pool(grad_output.dtype, "grad_output", fits_32bit(grad_input, grad_output), d, p,
                [&](auto t, auto index, auto depth) {
    using T = typename decltype(t)::type;
    using I = decltype(index);
    max_pool_backward_kernel<T, I, decltype(depth)::value><<<grid_for(grad_input.numel(), kThreads), kThreads, 0, s>>>(
        grad_output.ptr<const T>(), strides_of(grad_output), indices.ptr<const int64_t>(), strides_of(indices),
        grad_input.ptr<T>(), strides_of(grad_input), d, p, pool_index<I>(d.C, d.D, d.H, d.W, p));
    MEDKERN_CUDA_CHECK_LAUNCH("max_pool_backward_kernel");
  });
}

void avg_pool_forward(const TensorView& input, const TensorView& output, const PoolParams& p, Stream stream) {
  if (output.numel() == 0) return;
  DeviceGuard guard(output);
  const PoolDims d = pool_dims(input, output);
  const cudaStream_t s = as_cuda_stream(stream);
  dispatch_pool(input.dtype, "input", fits_32bit(input, output), d, p, [&](auto t, auto index, auto depth) {
    using T = typename decltype(t)::type;
    using I = decltype(index);
    avg_pool_forward_kernel<T, I, decltype(depth)::value><<<grid_for(output.numel(), kThreads), kThreads, 0, s>>>(
        input.ptr<const T>(), strides_of(input), output.ptr<T>(), strides_of(output), d, p,
        pool_index<I>(d.C, d.OD, d.P, d.Q, p));
    MEDKERN_CUDA_CHECK_LAUNCH("avg_pool_forward_kernel");
  });
}

void avg_pool_backward(const TensorView& grad_output, const TensorView& grad_input, const PoolParams& p,
                       Stream stream) {
  if (grad_input.numel() == 0) return;
  DeviceGuard guard(grad_input);
  const PoolDims d = pool_dims(grad_input, grad_output);
  const cudaStream_t s = as_cuda_stream(stream);
  dispatch_pool(grad_output.dtype, "grad_output", fits_32bit(grad_input, grad_output), d, p,
                [&](auto t, auto index, auto depth) {
    using T = typename decltype(t)::type;
    using I = decltype(index);
    avg_pool_backward_kernel<T, I, decltype(depth)::value><<<grid_for(grad_input.numel(), kThreads), kThreads, 0, s>>>(
        grad_output.ptr<const T>(), strides_of(grad_output), grad_input.ptr<T>(), strides_of(grad_input), d, p,
        pool_index<I>(d.C, d.D, d.H, d.W, p));
    MEDKERN_CUDA_CHECK_LAUNCH("avg_pool_backward_kernel");
  });
}

}  // namespace medkern::cuda
