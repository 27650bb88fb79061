// medkern/enum_names.h — walking the enums whose codes Python passes in (dtypes, padding modes,
// intensity ops, ...). Each has codes 0, 1, 2, ... and a constexpr name function: a switch
// without a default, so a value added without a name fails the build (-Werror=switch), that
// returns nullptr past the last value. The code tables exported to Python (_C.*_CODES), the range
// checks of the bindings and their messages are all read from that one function.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "medkern/errors.h"

namespace medkern {

template <class E>
using EnumNameFn = const char* (*)(E);

// Whether `code` is a value of the enum that `name` names.
template <class E>
constexpr bool enum_code_valid(int code, EnumNameFn<E> name) {
  return code >= 0 && name(static_cast<E>(code)) != nullptr;
}

// (code, name) of every value, in code order.
template <class E>
std::vector<std::pair<int, const char*>> enum_values(EnumNameFn<E> name) {
  std::vector<std::pair<int, const char*>> values;
  for (int code = 0; enum_code_valid(code, name); ++code) values.emplace_back(code, name(static_cast<E>(code)));
  return values;
}

// "0 (zeros), 1 (border) or 2 (reflect)", for error messages.
template <class E>
std::string enum_choices(EnumNameFn<E> name) {
  const auto values = enum_values(name);
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    out += i == 0 ? "" : i + 1 == values.size() ? " or " : ", ";
    out += concat(values[i].first, " (", values[i].second, ")");
  }
  return out;
}

// ValueError naming `argument` unless `code` is a value of the enum.
template <class E>
void check_enum_code(int code, const char* argument, EnumNameFn<E> name) {
  MEDKERN_CHECK_VALUE(enum_code_valid(code, name), "argument '", argument, "' must be ", enum_choices(name), ", got ",
                      code);
}

}  // namespace medkern
