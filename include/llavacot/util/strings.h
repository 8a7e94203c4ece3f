// Small string predicates shared across the project (C++17 has no std::string::starts_with).
#pragma once

#include <string_view>

namespace llavacot::util {

inline bool starts_with(std::string_view s, std::string_view head) {
  return s.size() >= head.size() && s.compare(0, head.size(), head) == 0;
}

inline bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace llavacot::util
