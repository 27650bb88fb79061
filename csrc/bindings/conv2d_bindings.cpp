// bindings/conv2d_bindings.cpp — placeholder until the conv2d family lands.
#include "bindings/bindings.h"

namespace medkern::bindings {
void register_conv2d(py::module_& m) {}
}  // namespace medkern::bindings
