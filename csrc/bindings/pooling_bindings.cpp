// bindings/pooling_bindings.cpp — placeholder until the pooling family lands.
#include "bindings/bindings.h"

namespace medkern::bindings {
void register_pooling(py::module_& m) {}
}  // namespace medkern::bindings
