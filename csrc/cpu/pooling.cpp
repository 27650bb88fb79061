// cpu/pooling.cpp — 2-D and 3-D max and average pooling on the CPU with torch's semantics (the
// shape validation, pool_output_shape, is in core/pooling.cpp). Every view is (N, C, D, H, W), 2-D
// pooling having D = 1. Work is split over the N*C planes; the max pool's hot loop lives in
// simd/pooling_kernels.h, compiled per instruction set.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/pooling_math.h"
#include "cpu/simd/pooling_kernels.h"
#include "medkern/parallel.h"
#include "medkern/pooling.h"
#include "medkern/simd.h"

namespace medkern::cpu {
namespace {

// Planes per thread chunk: enough output elements that a thread's start-up cost is hidden.
int64_t plane_grain(int64_t plane_elems) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(plane_elems, 1)); }

int64_t window_volume(const PoolParams& p) { return p.d.kernel * p.h.kernel * p.w.kernel; }

// An (n, c) plane's 5-D strides and extents: the output-side views (grad_output, indices) are
// read through them, so they may be any layout.
struct PlaneStrides {
  int64_t n, c, d, h, w;
};
PlaneStrides plane_strides(const TensorView& v) { return {v.stride(0), v.stride(1), v.stride(2), v.stride(3), v.stride(4)}; }

// The per-axis average-pooling windows of one output row (od, oh); the column window varies
// inside the row.
struct AvgRow {
  PoolWindow d, h;
};
AvgRow avg_row(int64_t od, int64_t oh, int64_t D, int64_t H, const PoolParams& p) {
  return {avg_pool_window(od, D, p.d.kernel, p.d.stride, p.d.pad), avg_pool_window(oh, H, p.h.kernel, p.h.stride, p.h.pad)};
}

template <class T>
void max_pool_forward_typed(const TensorView& input, const TensorView& output, const TensorView& indices,
                            const PoolParams& p) {
  MaxPoolPlanes<T> a{input.ptr<const T>(), input.size(1), input.stride(0), input.stride(1), input.stride(2),
                     input.stride(3), input.stride(4), input.size(2), input.size(3), input.size(4), output.ptr<T>(),
                     indices.ptr<int64_t>(),  // null: values only
                     output.size(2), output.size(3), output.size(4), p};
  const SimdLevel level = simd_level();
  const int64_t planes = input.size(0) * input.size(1);
  parallel_for(0, planes, plane_grain(a.out_d * a.out_h * a.out_w * window_volume(p)), [&](int64_t b, int64_t e) {
    if (level != SimdLevel::Scalar) simd_avx2::max_pool_planes(a, b, e);  // AVX-512: see pooling_kernels.h
    else simd_scalar::max_pool_planes(a, b, e);
  });
}

// Each plane's gradient is scattered by its own thread, so no two threads touch one element.
template <class T>
void max_pool_backward_typed(const TensorView& grad_output, const TensorView& indices, const TensorView& grad_input,
                             const PoolParams& p) {
  const int64_t C = grad_output.size(1), OD = grad_output.size(2), P = grad_output.size(3), Q = grad_output.size(4);
  const uint64_t volume = static_cast<uint64_t>(grad_input.size(2) * grad_input.size(3) * grad_input.size(4));
  const T* go = grad_output.ptr<const T>();
  const int64_t* idx = indices.ptr<const int64_t>();
  T* gi = grad_input.ptr<T>();
  const PlaneStrides gs = plane_strides(grad_output), is = plane_strides(indices);
  parallel_for(0, grad_output.size(0) * C, plane_grain(static_cast<int64_t>(volume)), [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const int64_t n = plane / C, c = plane % C;
      T* g = gi + plane * static_cast<int64_t>(volume);
      std::fill(g, g + volume, T(0));
      for (int64_t od = 0; od < OD; ++od)
        for (int64_t oh = 0; oh < P; ++oh) {
          const T* grow = go + n * gs.n + c * gs.c + od * gs.d + oh * gs.h;
          const int64_t* irow = idx + n * is.n + c * is.c + od * is.d + oh * is.h;
          for (int64_t ow = 0; ow < Q; ++ow) {
            const uint64_t i = static_cast<uint64_t>(irow[ow * is.w]);
            if (i < volume) g[i] += grow[ow * gs.w];  // an index outside the plane (never torch's) is skipped
          }
        }
    }
  });
}

// Average pooling runs by output row (od, oh): the input rows of the row's window are summed
// column by column once (a vector loop), then each output adds its columns of that sum, so an
// input element is read once per output row instead of once per window that holds it.
template <class T>
void avg_pool_forward_typed(const TensorView& input, const TensorView& output, const PoolParams& p) {
  const int64_t C = input.size(1), D = input.size(2), H = input.size(3), W = input.size(4);
  const int64_t OD = output.size(2), P = output.size(3), Q = output.size(4);
  const PlaneStrides s = plane_strides(input);
  const T* in = input.ptr<const T>();
  T* out = output.ptr<T>();
  parallel_for(0, input.size(0) * C, plane_grain(OD * P * Q * window_volume(p)), [&](int64_t b, int64_t e) {
    std::vector<T> column_sums(static_cast<size_t>(W));
    T* sums = column_sums.data();
    for (int64_t plane = b; plane < e; ++plane) {
      const T* ip = in + (plane / C) * s.n + (plane % C) * s.c;
      T* op = out + plane * OD * P * Q;
      for (int64_t od = 0; od < OD; ++od)
        for (int64_t oh = 0; oh < P; ++oh) {
          const AvgRow r = avg_row(od, oh, D, H, p);
          std::fill(sums, sums + W, T(0));
          for (int64_t z = r.d.start; z < r.d.end; ++z)
            for (int64_t h = r.h.start; h < r.h.end; ++h) {
              const T* src = ip + z * s.d + h * s.h;
              if (s.w == 1) {
#pragma omp simd
                for (int64_t w = 0; w < W; ++w) sums[w] += src[w];
              } else {
                for (int64_t w = 0; w < W; ++w) sums[w] += src[w * s.w];
              }
            }
          T* orow = op + (od * P + oh) * Q;
          for (int64_t ow = 0; ow < Q; ++ow) {
            const PoolWindow ww = avg_pool_window(ow, W, p.w.kernel, p.w.stride, p.w.pad);
            T sum = 0;
            for (int64_t w = ww.start; w < ww.end; ++w) sum += sums[w];
            // an empty window (only past the input in ceil_mode) averages to 0, as in torch
            const int64_t divisor = avg_pool_divisor(r.d, r.h, ww, p.count_include_pad, p.divisor_override);
            orow[ow] = divisor > 0 ? sum / static_cast<T>(divisor) : T(0);
          }
        }
    }
  });
}

// The transpose of the forward's row scheme: an output row's shares are spread over the columns
// once, then added to every input row of the row's window.
template <class T>
void avg_pool_backward_typed(const TensorView& grad_output, const TensorView& grad_input, const PoolParams& p) {
  const int64_t C = grad_output.size(1), OD = grad_output.size(2), P = grad_output.size(3), Q = grad_output.size(4);
  const int64_t D = grad_input.size(2), H = grad_input.size(3), W = grad_input.size(4);
  const PlaneStrides gs = plane_strides(grad_output);
  const T* go = grad_output.ptr<const T>();
  T* gi = grad_input.ptr<T>();
  parallel_for(0, grad_output.size(0) * C, plane_grain(D * H * W), [&](int64_t b, int64_t e) {
    std::vector<T> column_shares(static_cast<size_t>(W));
    T* shares = column_shares.data();
    for (int64_t plane = b; plane < e; ++plane) {
      const T* gop = go + (plane / C) * gs.n + (plane % C) * gs.c;
      T* g = gi + plane * D * H * W;
      std::fill(g, g + D * H * W, T(0));
      for (int64_t od = 0; od < OD; ++od)
        for (int64_t oh = 0; oh < P; ++oh) {
          const AvgRow r = avg_row(od, oh, D, H, p);
          if (r.d.start >= r.d.end || r.h.start >= r.h.end) continue;
          std::fill(shares, shares + W, T(0));
          const T* grow = gop + od * gs.d + oh * gs.h;
          for (int64_t ow = 0; ow < Q; ++ow) {
            const PoolWindow ww = avg_pool_window(ow, W, p.w.kernel, p.w.stride, p.w.pad);
            const int64_t divisor = avg_pool_divisor(r.d, r.h, ww, p.count_include_pad, p.divisor_override);
            if (divisor <= 0) continue;
            const T share = grow[ow * gs.w] / static_cast<T>(divisor);
            for (int64_t w = ww.start; w < ww.end; ++w) shares[w] += share;
          }
          for (int64_t z = r.d.start; z < r.d.end; ++z)
            for (int64_t h = r.h.start; h < r.h.end; ++h) {
              T* dst = g + (z * H + h) * W;
#pragma omp simd
              for (int64_t w = 0; w < W; ++w) dst[w] += shares[w];
            }
        }
    }
  });
}

}  // namespace

void max_pool_forward(const TensorView& input, const TensorView& output, const TensorView& indices,
                      const PoolParams& p) {
  if (input.dtype == DType::Float64) max_pool_forward_typed<double>(input, output, indices, p);
  else max_pool_forward_typed<float>(input, output, indices, p);
}

void max_pool_backward(const TensorView& grad_output, const TensorView& indices, const TensorView& grad_input,
                       const PoolParams& p) {
  if (grad_output.dtype == DType::Float64) max_pool_backward_typed<double>(grad_output, indices, grad_input, p);
  else max_pool_backward_typed<float>(grad_output, indices, grad_input, p);
}

void avg_pool_forward(const TensorView& input, const TensorView& output, const PoolParams& p) {
  if (input.dtype == DType::Float64) avg_pool_forward_typed<double>(input, output, p);
  else avg_pool_forward_typed<float>(input, output, p);
}

void avg_pool_backward(const TensorView& grad_output, const TensorView& grad_input, const PoolParams& p) {
  if (grad_output.dtype == DType::Float64) avg_pool_backward_typed<double>(grad_output, grad_input, p);
  else avg_pool_backward_typed<float>(grad_output, grad_input, p);
}

}  // namespace medkern::cpu
