// bindings/batch_norm_bindings.cpp — placeholder until the batch_norm family lands.
#include "bindings/bindings.h"

namespace medkern::bindings {
void register_batch_norm(py::module_& m) {}
}  // namespace medkern::bindings
