#pragma once

// Character classes of RFC 3501's formal syntax, shared by the command
// builder (what may go out unquoted) and the response parser (tags).

namespace popbridge::protocol {

// ASTRING-CHAR (RFC 3501 9): ATOM-CHAR plus resp-specials "]".
inline bool isAstringChar(unsigned char c) {
  if (c <= 0x20 || c >= 0x7f) return false;
  switch (c) {
    case '(':
    case ')':
    case '{':
    case '%':
    case '*':
    case '"':
    case '\\':
      return false;
    default:
      return true;
  }
}

}  // namespace popbridge::protocol
