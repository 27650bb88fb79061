// core/conv.cpp — the device-neutral part of 2-D / 3-D (transposed) convolution: the output-shape
// rules and their argument checks, run by the bindings before either the CPU or the CUDA kernel,
// and the unit-depth 5-D view that lets one kernel set serve both dimensionalities.
#include <sstream>
#include <string>

#include "common/conv_math.h"
#include "medkern/checks.h"
#include "medkern/conv.h"

namespace medkern {
namespace {

std::string tuple_string(const std::vector<int64_t>& v, size_t from = 0) {
  std::ostringstream s;
  s << "(";
  for (size_t i = from; i < v.size(); ++i) s << (i > from ? ", " : "") << v[i];
  s << (v.size() - from == 1 ? ",)" : ")");
  return s.str();
}

struct Axis {
  int64_t stride, pad, dilation;
};

// The spatial axes of p in order ((h, w) or (d, h, w)).
std::vector<Axis> axes_of(const ConvParams& p, int spatial_dims) {
  std::vector<Axis> a;
  if (spatial_dims == 3) a.push_back({p.stride_d, p.pad_d, p.dilation_d});
  a.push_back({p.stride_h, p.pad_h, p.dilation_h});
  a.push_back({p.stride_w, p.pad_w, p.dilation_w});
  return a;
}

std::string axis_values(const std::vector<Axis>& axes, int64_t Axis::*field) {
  std::vector<int64_t> v;
  for (const Axis& a : axes) v.push_back(a.*field);
  return tuple_string(v);
}

// The checks both rules share: ranks, positive parameters, non-empty operands.
void check_common(const std::vector<int64_t>& in, const std::vector<int64_t>& w, const std::vector<Axis>& axes,
                  int64_t groups, int spatial_dims) {
  MEDKERN_CHECK_VALUE(spatial_dims == 2 || spatial_dims == 3, "spatial_dims must be 2 or 3, got ", spatial_dims);
  const size_t rank = static_cast<size_t>(spatial_dims) + 2;
  const char* in_layout = spatial_dims == 3 ? "(N, C, D, H, W)" : "(N, C, H, W)";
  MEDKERN_CHECK_VALUE(in.size() == rank, "argument 'input' must be ", rank, "-D ", in_layout, ", got ", in.size(),
                      " dimensions");
  MEDKERN_CHECK_VALUE(w.size() == rank, "argument 'weight' must be ", rank, "-D, got ", w.size(), " dimensions");
  bool ok = true;
  for (const Axis& a : axes) ok = ok && a.stride >= 1;
  MEDKERN_CHECK_VALUE(ok, "argument 'stride' must be >= 1, got ", axis_values(axes, &Axis::stride));
  for (const Axis& a : axes) ok = ok && a.pad >= 0;
  MEDKERN_CHECK_VALUE(ok, "argument 'padding' must be >= 0, got ", axis_values(axes, &Axis::pad));
  for (const Axis& a : axes) ok = ok && a.dilation >= 1;
  MEDKERN_CHECK_VALUE(ok, "argument 'dilation' must be >= 1, got ", axis_values(axes, &Axis::dilation));
  MEDKERN_CHECK_VALUE(groups >= 1, "argument 'groups' must be >= 1, got ", groups);
  MEDKERN_CHECK_VALUE(in[0] >= 1, "argument 'input' has an empty batch (shape ", tuple_string(in),
                      "); expected at least one sample");
  for (size_t i = 1; i < rank; ++i)
    MEDKERN_CHECK_VALUE(in[i] >= 1, "argument 'input' has an empty dimension: shape ", tuple_string(in));
  for (size_t i = 0; i < rank; ++i)
    MEDKERN_CHECK_VALUE(w[i] >= 1, "argument 'weight' has an empty dimension: shape ", tuple_string(w));
}

}  // namespace

std::vector<int64_t> conv_output_shape(const std::vector<int64_t>& in, const std::vector<int64_t>& w,
                                       const ConvParams& p, int spatial_dims) {
  const std::vector<Axis> axes = axes_of(p, spatial_dims);
  check_common(in, w, axes, p.groups, spatial_dims);
  MEDKERN_CHECK_VALUE(in[1] % p.groups == 0, "argument 'groups' (", p.groups, ") must divide the input channels (",
                      in[1], ")");
  MEDKERN_CHECK_VALUE(w[0] % p.groups == 0, "argument 'groups' (", p.groups, ") must divide the output channels (",
                      w[0], ") of 'weight'");
  MEDKERN_CHECK_VALUE(w[1] * p.groups == in[1], "argument 'weight' has ", w[1], " input channels per group, but "
                      "'input' has ", in[1], " channels and groups=", p.groups, "; expected weight.shape[1] == ",
                      in[1] / p.groups);
  std::vector<int64_t> span, padded, out = {in[0], w[0]};
  bool fits = true;
  for (size_t i = 0; i < axes.size(); ++i) {
    span.push_back(axes[i].dilation * (w[2 + i] - 1) + 1);
    padded.push_back(in[2 + i] + 2 * axes[i].pad);
    fits = fits && span.back() <= padded.back();
    out.push_back(conv_output_size(in[2 + i], w[2 + i], axes[i].stride, axes[i].pad, axes[i].dilation));
  }
  MEDKERN_CHECK_VALUE(fits, "argument 'weight': kernel extent ", tuple_string(span), " (with dilation) is larger "
                      "than the padded 'input' ", tuple_string(padded));
  return out;
}

std::vector<int64_t> conv_transpose_output_shape(const std::vector<int64_t>& in, const std::vector<int64_t>& w,
                                                 const ConvParams& p, const std::vector<int64_t>& output_padding,
                                                 int spatial_dims) {
  const std::vector<Axis> axes = axes_of(p, spatial_dims);
  check_common(in, w, axes, p.groups, spatial_dims);
  MEDKERN_CHECK_VALUE(output_padding.size() == axes.size(), "argument 'output_padding' must have ", axes.size(),
                      " values, got ", output_padding.size());
  MEDKERN_CHECK_VALUE(in[1] % p.groups == 0, "argument 'groups' (", p.groups, ") must divide the input channels (",
                      in[1], ")");
  MEDKERN_CHECK_VALUE(w[0] == in[1], "argument 'weight' has ", w[0], " input channels (weight.shape[0]), but "
                      "'input' has ", in[1], " channels; expected weight.shape[0] == ", in[1]);
  std::vector<int64_t> out = {in[0], w[1] * p.groups};
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t op = output_padding[i];
    MEDKERN_CHECK_VALUE(op >= 0 && (op < axes[i].stride || op < axes[i].dilation),
                        "argument 'output_padding' ", tuple_string(output_padding), " must be >= 0 and smaller than "
                        "either the stride ", axis_values(axes, &Axis::stride), " or the dilation ",
                        axis_values(axes, &Axis::dilation), " of its axis");
    const int64_t size = (in[2 + i] - 1) * axes[i].stride - 2 * axes[i].pad + axes[i].dilation * (w[2 + i] - 1) +
                         op + 1;
    MEDKERN_CHECK_VALUE(size >= 1, "the transposed convolution's output would be empty along spatial axis ", i,
                        " (size ", size, "): 'padding' ", axis_values(axes, &Axis::pad),
                        " is too large for 'input' ", tuple_string(in), " and 'weight' ", tuple_string(w));
    out.push_back(size);
  }
  return out;
}

TensorView as_volume(const TensorView& v) {
  if (v.ndim != 4) return v;
  TensorView r = v;
  r.ndim = 5;
  for (int i = 4; i > 2; --i) {
    r.shape[i] = v.shape[i - 1];
    r.strides[i] = v.strides[i - 1];
  }
  r.shape[2] = 1;
  r.strides[2] = v.shape[2] * v.strides[2];
  return r;
}

}  // namespace medkern
