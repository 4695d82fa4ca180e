#pragma once

// Character classes and case folding private to the response parser, whose grammar is spread
// over parser.cpp, parser_fetch.cpp and parser_scan.cpp. Not for other users: these are the
// parser's lenient readings of RFC 3501, not the RFC's own classes (see syntax.h for those).

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/imap/syntax.h"

namespace popbridge::protocol::parser_chars {

inline bool isDigit(unsigned char c) {
  return c >= '0' && c <= '9';
}

// Lenient atom character: what servers put in atoms, flags and extension data. ']' and '[' are
// accepted because resp-specials appear in real atoms (e.g. Gmail labels).
inline bool isAtomChar(unsigned char c) {
  if (c <= 0x20 || c == 0x7f) return false;
  switch (c) {
    case '(':
    case ')':
    case '{':
    case '"':
    case '\\':
      return false;
    default:
      return true;
  }
}

// RFC 3501 tag: ASTRING-CHAR except '+'.
inline bool isTagChar(unsigned char c) {
  return c != '+' && isAstringChar(c);
}

inline bool isKeywordChar(unsigned char c) {
  return isAtomChar(c) && c != '[' && c != ']' && c != '<';
}

inline char upperAscii(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

// Into an existing string, so that per-response keywords reuse its capacity.
inline void assignUpper(std::string& out, std::string_view s) {
  out.resize(s.size());
  std::transform(s.begin(), s.end(), out.begin(), upperAscii);
}

inline std::string toUpper(std::string_view s) {
  std::string out;
  assignUpper(out, s);
  return out;
}

// The first ']' at or after from that is outside a quoted string, or npos: section specs
// ("HEADER.FIELDS (\"X]\")") and response codes (BADCHARSET) may quote one.
inline std::size_t findCloseBracket(std::string_view s, std::size_t from) {
  bool quoted = false;
  for (std::size_t i = from; i < s.size(); ++i) {
    char c = s[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ']') {
      return i;
    }
  }
  return std::string_view::npos;
}

}  // namespace popbridge::protocol::parser_chars
