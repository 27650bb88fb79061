// bindings/preprocess_bindings.cpp — _C entry points of the fused preprocessing pipeline and of
// the Philox generator (so Python draws transform parameters from the very generator the
// kernels use). Arguments are validated once, in C++, before dispatching to CPU or CUDA; the
// GPU normalization's workspace size comes from normalize_workspace_bytes so Python allocates it.
#include <pybind11/numpy.h>

#include "bindings/bindings.h"
#include "common/philox.h"
#include "medkern/enum_names.h"
#include "medkern/preprocess.h"

namespace medkern::bindings {

namespace {

uint32_t stream_arg(int64_t stream) {
  MEDKERN_CHECK_VALUE(stream >= 0 && stream < static_cast<int64_t>(kNoiseStreamBit),
                      "argument 'stream' must be in [0, 2**31), got ", stream);
  return static_cast<uint32_t>(stream);
}

}  // namespace

void register_preprocess(py::module_& m) {
  m.def("philox4x32_10", [](const std::vector<uint32_t>& counter, const std::vector<uint32_t>& key) {
    MEDKERN_CHECK_VALUE(counter.size() == 4, "argument 'counter' must have 4 words, got ", counter.size());
    MEDKERN_CHECK_VALUE(key.size() == 2, "argument 'key' must have 2 words, got ", key.size());
    const Philox4x32 r = philox4x32_10(counter[0], counter[1], counter[2], counter[3], key[0], key[1]);
    return std::vector<uint32_t>{r.v[0], r.v[1], r.v[2], r.v[3]};
  }, py::arg("counter"), py::arg("key"), "One Philox4x32-10 block (Random123's reference function).");

  m.def("philox_uniform", [](uint64_t seed, const std::vector<int64_t>& samples, int64_t stream, int64_t count) {
    MEDKERN_CHECK_VALUE(count >= 0, "argument 'count' must be >= 0, got ", count);
    const uint32_t s = stream_arg(stream);
    py::array_t<double> out({static_cast<py::ssize_t>(samples.size()), static_cast<py::ssize_t>(count)});
    double* p = out.mutable_data();
    for (size_t i = 0; i < samples.size(); ++i) {
      MEDKERN_CHECK_VALUE(samples[i] >= 0, "argument 'samples' must be >= 0, got ", samples[i]);
      philox_uniform(seed, static_cast<uint64_t>(samples[i]), s, 0, count, p + i * count);
    }
    return out;
  }, py::arg("seed"), py::arg("samples"), py::arg("stream"), py::arg("count"),
     "Uniforms in [0, 1), shape (len(samples), count): draws 0..count-1 of (seed, sample, stream).");

  m.def("philox_normal", [](uint64_t seed, int64_t sample, int64_t stream, int64_t count) {
    MEDKERN_CHECK_VALUE(count >= 0, "argument 'count' must be >= 0, got ", count);
    MEDKERN_CHECK_VALUE(sample >= 0, "argument 'sample' must be >= 0, got ", sample);
    const uint32_t s = stream_arg(stream) | kNoiseStreamBit;
    py::array_t<float> out(static_cast<py::ssize_t>(count));
    float* p = out.mutable_data();
    for (int64_t i = 0; i < count; ++i) p[i] = philox_normal_at(seed, static_cast<uint64_t>(sample), s, i);
    return out;
  }, py::arg("seed"), py::arg("sample"), py::arg("stream"), py::arg("count"),
     "The standard normals the noise op adds to elements 0..count-1 of one sample's output.");

  m.def(kernel_op_name(KernelOp::ResampleIntensity),
        [](const TensorView& input, const TensorView& matrices, const TensorView& sample_indices,
           const TensorView& pre_ops, const TensorView& post_ops, const TensorView& output, int interpolation,
           int padding, uint64_t seed, std::uintptr_t stream, const OptionalView& field) {
          ResampleArgs args{interpolation, padding, seed};
          check_resample_args(input, matrices, sample_indices, pre_ops, post_ops, output, get(field), args);
          if (!input.is_cuda()) {
            cpu::resample_intensity(input, matrices, sample_indices, pre_ops, post_ops, output, get(field), args);
          } else {
#ifdef MEDKERN_WITH_CUDA
            cuda::resample_intensity(input, matrices, sample_indices, pre_ops, post_ops, output, get(field), args,
                                     to_stream(stream));
#else
            no_cuda_kernel(KernelOp::ResampleIntensity);
#endif
          }
        },
        py::arg("input"), py::arg("matrices"), py::arg("sample_indices"), py::arg("pre_ops"), py::arg("post_ops"),
        py::arg("output"), py::arg("interpolation"), py::arg("padding"), py::arg("seed"), py::arg("stream") = 0,
        py::arg("field") = py::none(), py::call_guard<py::gil_scoped_release>());

  m.def(kernel_op_name(KernelOp::NormalizeIntensity),
        [](const TensorView& input, const OptionalView& mask, const TensorView& output, int kind, bool channel_wise,
           double eps, double lower, double upper, bool rescale, const OptionalView& workspace,
           std::uintptr_t stream) {
          NormalizeArgs args{kind, channel_wise, eps, lower, upper, rescale};
          check_normalize_args(input, get(mask), output, args, get(workspace));
          if (!input.is_cuda()) {
            cpu::normalize_intensity(input, get(mask), output, args);
          } else {
#ifdef MEDKERN_WITH_CUDA
            cuda::normalize_intensity(input, get(mask), output, args, get(workspace), to_stream(stream));
#else
            no_cuda_kernel(KernelOp::NormalizeIntensity);
#endif
          }
        },
        py::arg("input"), py::arg("mask"), py::arg("output"), py::arg("kind"), py::arg("channel_wise"),
        py::arg("eps"), py::arg("lower") = 0.0, py::arg("upper") = 100.0, py::arg("rescale") = false,
        py::arg("workspace") = py::none(), py::arg("stream") = 0, py::call_guard<py::gil_scoped_release>(),
        "Per-image z-score, min-max or percentile clip to [lower, upper] percentiles (optionally rescaled to "
        "[0, 1]); `kind` is a value of NORMALIZE_KIND_CODES. CUDA inputs need a workspace of "
        "normalize_workspace_bytes(...) bytes.");

  m.def("normalize_workspace_bytes", [](const std::vector<int64_t>& shape, int kind, bool channel_wise,
                                        int device_type) -> int64_t {
    MEDKERN_CHECK_VALUE(shape.size() >= 3, "argument 'shape' must be (N, C, *spatial), got ", shape.size(),
                        " sizes");
    int64_t numel = 1;
    for (int64_t d : shape) {
      MEDKERN_CHECK_VALUE(d >= 0, "argument 'shape' has a negative size ", d);
      numel *= d;
    }
    check_enum_code(kind, "kind", normalize_kind_name);
    if (device_type != static_cast<int>(DeviceType::CUDA) || numel == 0) return 0;
    return plan_normalize_cuda(shape[0], shape[1], numel / (shape[0] * shape[1]), kind, channel_wise).workspace_bytes;
  }, py::arg("shape"), py::arg("kind"), py::arg("channel_wise"), py::arg("device_type"),
     "Bytes of the workspace normalize_intensity needs on this device type (0 = CPU needs none).");

#ifdef MEDKERN_WITH_CUDA
  add_cuda_ops({KernelOp::ResampleIntensity, KernelOp::NormalizeIntensity});
#endif
}

}  // namespace medkern::bindings
