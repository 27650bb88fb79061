// bindings/constants.cpp — the facts C++ and Python share, exported as _C attributes so Python
// reads them instead of typing them again: the code tables of the enums (read from each enum's
// name function, medkern/enum_names.h: dtypes, modes, intensity ops, the activation a
// normalization applies), the bias field's term packing and the kernel op names.
#include "bindings/bindings.h"
#include "common/geometry_math.h"
#include "common/intensity_math.h"
#include "medkern/activation.h"
#include "medkern/enum_names.h"
#include "medkern/preprocess.h"

namespace medkern::bindings {
namespace {

// {name: code} of every value of an enum.
template <class E>
py::dict code_table(EnumNameFn<E> name) {
  py::dict table;
  for (const auto& [code, value_name] : enum_values(name)) table[value_name] = code;
  return table;
}

}  // namespace

void register_constants(py::module_& m) {
  m.attr("DTYPE_CODES") = code_table(dtype_name_or_null);
  m.attr("INTERPOLATION_CODES") = code_table(interpolation_name);
  m.attr("PADDING_CODES") = code_table(padding_name);
  m.attr("INTENSITY_OP_CODES") = code_table(intensity_op_name);
  m.attr("NORMALIZE_KIND_CODES") = code_table(normalize_kind_name);
  m.attr("ACTIVATION_CODES") = code_table(activation_name);

  // BiasTerm ops carry their exponents (ez, ey, ex) as sum(weight * exponent), degree <= max order
  m.attr("BIAS_FIELD_MAX_ORDER") = kBiasFieldMaxOrder;
  m.attr("BIAS_FIELD_EXPONENT_WEIGHTS") = py::make_tuple(1 << bias_exponent_shift(0), 1 << bias_exponent_shift(1),
                                                         1 << bias_exponent_shift(2));

  py::list kernel_ops;
  for (const auto& [code, name] : enum_values(kernel_op_name)) kernel_ops.append(name);
  m.attr("KERNEL_OP_NAMES") = py::tuple(kernel_ops);
}

}  // namespace medkern::bindings
