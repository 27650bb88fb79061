// bindings/activation_bindings.cpp — placeholder until the activation family lands.
#include "bindings/bindings.h"

namespace medkern::bindings {
void register_activation(py::module_& m) {}
}  // namespace medkern::bindings
