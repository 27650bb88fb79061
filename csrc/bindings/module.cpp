// bindings/module.cpp — the medkern._C module: exception translation, the TensorView type,
// build/runtime information, the shared constants and each op family's registration.
#include <omp.h>

#include "bindings/bindings.h"
#include "medkern/cuda_runtime_info.h"
#include "medkern/enum_names.h"
#include "medkern/simd.h"

#ifndef MEDKERN_VERSION
#define MEDKERN_VERSION "0.0.0"
#endif

namespace medkern::bindings {

std::vector<std::string>& cuda_ops() {
  static std::vector<std::string> names;
  return names;
}

namespace {

TensorView make_view(std::uintptr_t data, int dtype, const std::vector<int64_t>& shape,
                     const std::vector<int64_t>& strides, int device_type, int device_index) {
  MEDKERN_CHECK_VALUE(shape.size() <= static_cast<size_t>(kMaxDims), "arrays of more than ", kMaxDims,
                      " dimensions are not supported, got ", shape.size());
  MEDKERN_CHECK_VALUE(shape.size() == strides.size(), "shape has ", shape.size(), " entries but strides has ",
                      strides.size());
  MEDKERN_CHECK_TYPE(enum_code_valid(dtype, dtype_name_or_null), "argument 'dtype' is an unknown dtype code ", dtype,
                     "; DTYPE_CODES lists the known ones");
  MEDKERN_CHECK_VALUE(device_type == 0 || device_type == 1, "unknown device type ", device_type);
  TensorView v;
  v.data = reinterpret_cast<void*>(data);
  v.dtype = static_cast<DType>(dtype);
  v.ndim = static_cast<int>(shape.size());
  // element count must fit int64 (checked in long double to avoid overflowing the check)
  long double count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    MEDKERN_CHECK_VALUE(shape[i] >= 0, "negative size ", shape[i], " in dimension ", i);
    v.shape[i] = shape[i];
    v.strides[i] = strides[i];
    count *= static_cast<long double>(shape[i]);
  }
  MEDKERN_CHECK_VALUE(count < 9.2e18L, "array element count overflows int64");
  v.device = {static_cast<DeviceType>(device_type), device_index};
  return v;
}

}  // namespace

void register_core(py::module_& m) {
  py::class_<TensorView>(m, "TensorView", "A borrowed view of an array: pointer, dtype, shape, strides, device.")
      .def(py::init(&make_view), py::arg("data"), py::arg("dtype"), py::arg("shape"), py::arg("strides"),
           py::arg("device_type") = 0, py::arg("device_index") = 0)
      .def_property_readonly("shape", [](const TensorView& v) {
        return std::vector<int64_t>(v.shape.begin(), v.shape.begin() + v.ndim);
      })
      .def_property_readonly("strides", [](const TensorView& v) {
        return std::vector<int64_t>(v.strides.begin(), v.strides.begin() + v.ndim);
      })
      .def_property_readonly("dtype", [](const TensorView& v) { return std::string(dtype_name(v.dtype)); })
      .def_property_readonly("device", [](const TensorView& v) { return v.device.str(); })
      .def("__repr__", [](const TensorView& v) {
        return concat("TensorView(", dtype_name(v.dtype), ", shape=", v.shape_string(), ", device=", v.device.str(), ")");
      });

  m.def("build_info", []() {
    py::dict info;
    info["version"] = MEDKERN_VERSION;
#ifdef MEDKERN_WITH_CUDA
    info["cuda_compiled"] = true;
    info["cuda_architectures"] = std::string(MEDKERN_CUDA_ARCHITECTURES);
    info["cuda_compiler_version"] = std::string(MEDKERN_CUDA_COMPILER_VERSION);
    info["cuda_runtime_version"] = cuda::runtime_version();
#else
    info["cuda_compiled"] = false;
    info["cuda_architectures"] = std::string();
#endif
    info["cuda_ops"] = cuda_ops();
    info["simd_level"] = cpu::simd_level_name(cpu::simd_level());
    info["threads"] = omp_get_max_threads();
#if defined(__clang__)
    info["cxx_compiler"] = concat("clang ", __clang_major__, ".", __clang_minor__);
#elif defined(__GNUC__)
    info["cxx_compiler"] = concat("gcc ", __GNUC__, ".", __GNUC_MINOR__);
#endif
    return info;
  });

  m.def("visible_gpus", []() {
    py::list out;
#ifdef MEDKERN_WITH_CUDA
    for (const auto& d : cuda::visible_devices()) {
      py::dict g;
      g["index"] = d.index;
      g["name"] = d.name;
      g["capability"] = concat(d.major, ".", d.minor);
      g["multiprocessors"] = d.multiprocessors;
      g["memory_bytes"] = d.total_memory;
      out.append(g);
    }
#endif
    return out;
  }, "GPUs the CUDA runtime sees now (empty without CUDA kernels, a driver or a GPU).");

  m.def("get_num_threads", []() { return omp_get_max_threads(); });
  m.def("set_num_threads", [](int n) {
    MEDKERN_CHECK_VALUE(n >= 1, "argument 'threads' must be >= 1, got ", n);
    omp_set_num_threads(n);
  }, py::arg("threads"));
  m.def("simd_level", []() { return std::string(cpu::simd_level_name(cpu::simd_level())); });
  m.def("set_simd_level", [](const std::string& name) {
    cpu::SimdLevel level;
    if (name == "scalar") level = cpu::SimdLevel::Scalar;
    else if (name == "avx2") level = cpu::SimdLevel::AVX2;
    else if (name == "avx512") level = cpu::SimdLevel::AVX512;
    else throw ValueError(concat("argument 'level' must be 'scalar', 'avx2' or 'avx512', got '", name, "'"));
    cpu::set_simd_level(level);
    return std::string(cpu::simd_level_name(cpu::simd_level()));
  }, py::arg("level"), "Lower the SIMD level (clamped to what the CPU supports); returns the level now in use.");
}

}  // namespace medkern::bindings

PYBIND11_MODULE(_C, m) {
  namespace py = pybind11;
  using namespace medkern::bindings;
  m.doc() = "medkern's compiled core: CPU (and, when built with nvcc, CUDA) kernels over raw buffers";
  // Most specific first: pybind tries translators in reverse registration order.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const medkern::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const medkern::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const medkern::NotImplementedError& e) {
      PyErr_SetString(PyExc_NotImplementedError, e.what());
    }
  });
  register_core(m);
  register_constants(m);
  register_conv(m);
  register_pooling(m);
  register_batch_norm(m);
  register_group_norm(m);
  register_activation(m);
  register_linear(m);
  register_preprocess(m);
  register_filter(m);
}
