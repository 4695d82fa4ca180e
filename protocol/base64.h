#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace popbridge::protocol {

// RFC 4648 base64 with padding, as SASL (RFC 4422) uses it on both sides.
std::string base64Encode(std::string_view data);

// Strict decoding: padding required, no whitespace, no trailing garbage.
// A SASL response that fails this is rejected rather than guessed at.
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace popbridge::protocol
