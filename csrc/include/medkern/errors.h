// medkern/errors.h — exceptions thrown by the core and the check macros that raise them.
// The core never exits or aborts: bindings translate ValueError/TypeError/RuntimeError to the
// Python exceptions of the same name, so a bad call is an exception, never a crash.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace medkern {

struct ValueError : std::runtime_error { using std::runtime_error::runtime_error; };
struct TypeError : std::runtime_error { using std::runtime_error::runtime_error; };
struct NotImplementedError : std::runtime_error { using std::runtime_error::runtime_error; };

template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

}  // namespace medkern

// Each macro takes the condition that must hold, then the pieces of the message (streamed).
#define MEDKERN_CHECK_VALUE(cond, ...) \
  do { if (!(cond)) throw ::medkern::ValueError(::medkern::concat(__VA_ARGS__)); } while (0)
#define MEDKERN_CHECK_TYPE(cond, ...) \
  do { if (!(cond)) throw ::medkern::TypeError(::medkern::concat(__VA_ARGS__)); } while (0)
#define MEDKERN_CHECK_RUNTIME(cond, ...) \
  do { if (!(cond)) throw std::runtime_error(::medkern::concat(__VA_ARGS__)); } while (0)
