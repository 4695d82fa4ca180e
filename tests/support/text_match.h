#pragma once

// Small text checks the integration tests share: on replies ("+OK", "-ERR [IN-USE]") and on
// popbridge's log (how often a decision was logged).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace popbridge::test {

inline bool startsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Whether an IMAP FLAGS list holds `flag` ("\\Deleted"), as the IMAP test client reports it.
inline bool hasFlag(const std::vector<std::string>& flags, std::string_view flag) {
  for (const std::string& f : flags) {
    if (f == flag) return true;
  }
  return false;
}

// Non-overlapping occurrences of `needle` (not empty) in `text`.
inline std::size_t countOf(std::string_view text, std::string_view needle) {
  std::size_t count = 0;
  for (std::size_t pos = text.find(needle); pos != std::string_view::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++count;
  }
  return count;
}

}  // namespace popbridge::test
