// cpu/pooling.cpp — 2-D max and average pooling on the CPU with torch's semantics (the shape
// validation, pool2d_output_shape, is in core/pooling.cpp). Work is split over the N*C planes;
// the max pool's hot loop lives in simd/pooling_kernels.h, compiled per instruction set.
#include <algorithm>
#include <cstring>

#include "common/pooling_math.h"
#include "cpu/simd/pooling_kernels.h"
#include "medkern/parallel.h"
#include "medkern/pooling.h"
#include "medkern/simd.h"

namespace medkern::cpu {
namespace {

// Planes per thread chunk: enough output elements that a thread's start-up cost is hidden.
int64_t plane_grain(int64_t plane_elems) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(plane_elems, 1)); }

template <class T>
void max_pool2d_forward_typed(const TensorView& input, const TensorView& output, const TensorView& indices,
                              const Pool2dParams& p) {
  MaxPoolPlanes<T> a{input.ptr<const T>(), input.size(1), input.stride(0), input.stride(1), input.stride(2),
                     input.stride(3), input.size(2), input.size(3), output.ptr<T>(), indices.ptr<int64_t>(),  // null: values only
                     output.size(2), output.size(3), p};
  const SimdLevel level = simd_level();
  const int64_t planes = input.size(0) * input.size(1);
  parallel_for(0, planes, plane_grain(a.out_h * a.out_w * p.kernel_h * p.kernel_w), [&](int64_t b, int64_t e) {
    if (level != SimdLevel::Scalar) simd_avx2::max_pool2d_planes(a, b, e);  // AVX-512: see pooling_kernels.h
    else simd_scalar::max_pool2d_planes(a, b, e);
  });
}

// Each plane's gradient is scattered by its own thread, so no two threads touch one element.
template <class T>
void max_pool2d_backward_typed(const TensorView& grad_output, const TensorView& indices, const TensorView& grad_input,
                               const Pool2dParams& p) {
  const int64_t C = grad_output.size(1), P = grad_output.size(2), Q = grad_output.size(3);
  const int64_t HW = grad_input.size(2) * grad_input.size(3);
  const T* go = grad_output.ptr<const T>();
  const int64_t* idx = indices.ptr<const int64_t>();
  T* gi = grad_input.ptr<T>();
  const int64_t gs_n = grad_output.stride(0), gs_c = grad_output.stride(1), gs_h = grad_output.stride(2),
                gs_w = grad_output.stride(3);
  const int64_t is_n = indices.stride(0), is_c = indices.stride(1), is_h = indices.stride(2), is_w = indices.stride(3);
  parallel_for(0, grad_output.size(0) * C, plane_grain(HW), [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const int64_t n = plane / C, c = plane % C;
      T* g = gi + plane * HW;
      std::fill(g, g + HW, T(0));
      const T* gop = go + n * gs_n + c * gs_c;
      const int64_t* ip = idx + n * is_n + c * is_c;
      for (int64_t oh = 0; oh < P; ++oh)
        for (int64_t ow = 0; ow < Q; ++ow) {
          const int64_t i = ip[oh * is_h + ow * is_w];
          if (i >= 0 && i < HW) g[i] += gop[oh * gs_h + ow * gs_w];
        }
    }
  });
}

template <class T>
void avg_pool2d_forward_typed(const TensorView& input, const TensorView& output, const Pool2dParams& p) {
  const int64_t C = input.size(1), H = input.size(2), W = input.size(3), P = output.size(2), Q = output.size(3);
  const int64_t s_n = input.stride(0), s_c = input.stride(1), s_h = input.stride(2), s_w = input.stride(3);
  const T* in = input.ptr<const T>();
  T* out = output.ptr<T>();
  parallel_for(0, input.size(0) * C, plane_grain(P * Q * p.kernel_h * p.kernel_w), [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const T* ip = in + (plane / C) * s_n + (plane % C) * s_c;
      T* op = out + plane * P * Q;
      for (int64_t oh = 0; oh < P; ++oh) {
        const PoolWindow wh = avg_pool_window(oh, H, p.kernel_h, p.stride_h, p.pad_h);
        for (int64_t ow = 0; ow < Q; ++ow) {
          const PoolWindow ww = avg_pool_window(ow, W, p.kernel_w, p.stride_w, p.pad_w);
          if (wh.start >= wh.end || ww.start >= ww.end) { op[oh * Q + ow] = T(0); continue; }
          T sum = 0;
          for (int64_t h = wh.start; h < wh.end; ++h)
            for (int64_t w = ww.start; w < ww.end; ++w) sum += ip[h * s_h + w * s_w];
          op[oh * Q + ow] = sum / static_cast<T>(avg_pool_divisor(wh, ww, p.count_include_pad, p.divisor_override));
        }
      }
    }
  });
}

template <class T>
void avg_pool2d_backward_typed(const TensorView& grad_output, const TensorView& grad_input, const Pool2dParams& p) {
  const int64_t C = grad_output.size(1), P = grad_output.size(2), Q = grad_output.size(3);
  const int64_t H = grad_input.size(2), W = grad_input.size(3);
  const int64_t gs_n = grad_output.stride(0), gs_c = grad_output.stride(1), gs_h = grad_output.stride(2),
                gs_w = grad_output.stride(3);
  const T* go = grad_output.ptr<const T>();
  T* gi = grad_input.ptr<T>();
  parallel_for(0, grad_output.size(0) * C, plane_grain(H * W), [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const T* gop = go + (plane / C) * gs_n + (plane % C) * gs_c;
      T* g = gi + plane * H * W;
      std::fill(g, g + H * W, T(0));
      for (int64_t oh = 0; oh < P; ++oh) {
        const PoolWindow wh = avg_pool_window(oh, H, p.kernel_h, p.stride_h, p.pad_h);
        for (int64_t ow = 0; ow < Q; ++ow) {
          const PoolWindow ww = avg_pool_window(ow, W, p.kernel_w, p.stride_w, p.pad_w);
          if (wh.start >= wh.end || ww.start >= ww.end) continue;
          const T share = gop[oh * gs_h + ow * gs_w] /
                          static_cast<T>(avg_pool_divisor(wh, ww, p.count_include_pad, p.divisor_override));
          for (int64_t h = wh.start; h < wh.end; ++h)
            for (int64_t w = ww.start; w < ww.end; ++w) g[h * W + w] += share;
        }
      }
    }
  });
}

}  // namespace

void max_pool2d_forward(const TensorView& input, const TensorView& output, const TensorView& indices,
                        const Pool2dParams& p) {
  if (input.dtype == DType::Float64) max_pool2d_forward_typed<double>(input, output, indices, p);
  else max_pool2d_forward_typed<float>(input, output, indices, p);
}

void max_pool2d_backward(const TensorView& grad_output, const TensorView& indices, const TensorView& grad_input,
                         const Pool2dParams& p) {
  if (grad_output.dtype == DType::Float64) max_pool2d_backward_typed<double>(grad_output, indices, grad_input, p);
  else max_pool2d_backward_typed<float>(grad_output, indices, grad_input, p);
}

void avg_pool2d_forward(const TensorView& input, const TensorView& output, const Pool2dParams& p) {
  if (input.dtype == DType::Float64) avg_pool2d_forward_typed<double>(input, output, p);
  else avg_pool2d_forward_typed<float>(input, output, p);
}

void avg_pool2d_backward(const TensorView& grad_output, const TensorView& grad_input, const Pool2dParams& p) {
  if (grad_output.dtype == DType::Float64) avg_pool2d_backward_typed<double>(grad_output, grad_input, p);
  else avg_pool2d_backward_typed<float>(grad_output, grad_input, p);
}

}  // namespace medkern::cpu
