#pragma once

// Internal to protocol/http/: how error messages quote what the peer or the user sent.

#include <string>
#include <string_view>

namespace popbridge::protocol::http_detail {

// 'text' quoted, at most 40 bytes of it, controls and non-ASCII as \xNN, so that an error
// message can neither grow with the input nor forge a log line.
inline std::string excerpt(std::string_view text) {
  static constexpr std::size_t kMax = 40;
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7F || c == '\\' || c == '\'') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += text.size() > kMax ? "'..." : "'";
  return out;
}

}  // namespace popbridge::protocol::http_detail
