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

// The second word of each line of a multi-line POP3 listing as Pop3TestClient::multiLine gives
// it ("1 0000000a00000007\r\n2 ..."): the UIDLs of a UIDL listing, the sizes of a LIST one.
inline std::vector<std::string> listingValues(std::string_view listing) {
  std::vector<std::string> values;
  while (!listing.empty()) {
    std::size_t end = listing.find('\n');
    std::string_view line = listing.substr(0, end);
    listing.remove_prefix(end == std::string_view::npos ? listing.size() : end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::size_t space = line.find(' ');
    if (space != std::string_view::npos) values.emplace_back(line.substr(space + 1));
  }
  return values;
}

}  // namespace popbridge::test
