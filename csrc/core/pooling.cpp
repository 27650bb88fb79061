// core/pooling.cpp — the device-neutral part of 2-D and 3-D pooling: the output-shape rule
// (torch's, ceil_mode included) and its argument checks, run by the bindings before either kernel.
#include <string>

#include "common/pooling_math.h"
#include "medkern/checks.h"
#include "medkern/pooling.h"

namespace medkern {
namespace {

// The axes that a call of `spatial_dims` dimensions has, in (d,) h, w order.
struct PoolAxes {
  const PoolAxis* axis[3];
  int count;
};

PoolAxes axes_of(const PoolParams& p, int spatial_dims) {
  if (spatial_dims == 3) return {{&p.d, &p.h, &p.w}, 3};
  return {{&p.h, &p.w, nullptr}, 2};
}

// "(a, b)" or "(a, b, c)" of one field of every axis, for messages.
template <class Field> std::string axes_string(const PoolAxes& axes, Field field) {
  std::string s = "(";
  for (int i = 0; i < axes.count; ++i) s += (i ? ", " : "") + std::to_string(field(*axes.axis[i]));
  return s + ")";
}

}  // namespace

std::vector<int64_t> pool_output_shape(const std::vector<int64_t>& input_shape, const PoolParams& p, int spatial_dims,
                                       PoolKind kind) {
  const size_t rank = static_cast<size_t>(spatial_dims) + 2;
  const PoolAxes axes = axes_of(p, spatial_dims);
  auto shape_string = [&] {
    std::string s = "(";
    for (size_t i = 0; i < input_shape.size(); ++i) s += (i ? ", " : "") + std::to_string(input_shape[i]);
    return s + ")";
  };
  MEDKERN_CHECK_VALUE(input_shape.size() == rank, "argument 'input' must be ", rank, "-D ",
                      spatial_dims == 3 ? "(N, C, D, H, W)" : "(N, C, H, W)", ", got ", input_shape.size(),
                      " dimensions");
  MEDKERN_CHECK_VALUE(input_shape[0] >= 0, "argument 'input' has a negative batch size (shape ", shape_string(), ")");
  for (size_t i = 1; i < rank; ++i)
    MEDKERN_CHECK_VALUE(input_shape[i] > 0, "argument 'input' has an empty channel or spatial dimension (shape ",
                        shape_string(), "); only the batch may be 0");
  const auto kernel = [](const PoolAxis& a) { return a.kernel; };
  const auto stride = [](const PoolAxis& a) { return a.stride; };
  const auto pad = [](const PoolAxis& a) { return a.pad; };
  const auto dilation = [](const PoolAxis& a) { return a.dilation; };
  for (int i = 0; i < axes.count; ++i) {
    const PoolAxis& a = *axes.axis[i];
    MEDKERN_CHECK_VALUE(a.kernel > 0, "argument 'kernel_size' must be positive, got ", axes_string(axes, kernel));
    MEDKERN_CHECK_VALUE(a.stride > 0, "argument 'stride' must be positive, got ", axes_string(axes, stride));
    MEDKERN_CHECK_VALUE(a.dilation > 0, "argument 'dilation' must be positive, got ", axes_string(axes, dilation));
    MEDKERN_CHECK_VALUE(a.pad >= 0, "argument 'padding' must be non-negative, got ", axes_string(axes, pad));
    MEDKERN_CHECK_VALUE(a.pad <= a.kernel / 2, "argument 'padding' should be at most half of the kernel size, got padding ",
                        axes_string(axes, pad), " for kernel_size ", axes_string(axes, kernel));
  }
  MEDKERN_CHECK_VALUE(p.divisor_override >= 0, "argument 'divisor_override' must be positive, got ",
                      p.divisor_override);
  std::vector<int64_t> out = {input_shape[0], input_shape[1]};
  std::string in_sizes = "(", out_sizes = "(";
  bool fits = true;
  for (int i = 0; i < axes.count; ++i) {
    const PoolAxis& a = *axes.axis[i];
    const int64_t in = input_shape[2 + i];
    // torch's avg_pool3d also wants every input size (unpadded) to hold the kernel
    MEDKERN_CHECK_VALUE(!(kind == PoolKind::Average && spatial_dims == 3 && in < a.kernel),
                        "argument 'kernel_size' ", axes_string(axes, kernel),
                        " is larger than the input's spatial size (", input_shape[2], ", ", input_shape[3], ", ",
                        input_shape[4], ")");
    out.push_back(pool_output_size(in, a.kernel, a.stride, a.pad, a.dilation, p.ceil_mode));
    fits = fits && out.back() > 0;
    in_sizes += (i ? ", " : "") + std::to_string(in);
    out_sizes += (i ? ", " : "") + std::to_string(out.back());
  }
  MEDKERN_CHECK_VALUE(fits, "argument 'kernel_size' ", axes_string(axes, kernel), " with dilation ",
                      axes_string(axes, dilation), " and padding ", axes_string(axes, pad),
                      " is larger than the padded input ", in_sizes, "): output size ", out_sizes,
                      ") is too small");
  return out;
}

}  // namespace medkern
