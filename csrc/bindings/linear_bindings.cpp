// bindings/linear_bindings.cpp — placeholder until the linear family lands.
#include "bindings/bindings.h"

namespace medkern::bindings {
void register_linear(py::module_& m) {}
}  // namespace medkern::bindings
