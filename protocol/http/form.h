#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace popbridge::protocol {

// application/x-www-form-urlencoded as the WHATWG URL standard serializes it (the body of an
// OAuth2 token request, RFC 6749 4.1.3): "name=value" pairs joined by '&', ALPHA, DIGIT and
// "*-._" kept, space as '+', every other byte as %XX in upper case.
std::string formEncode(const std::vector<std::pair<std::string, std::string>>& fields);

// RFC 3986 2.1 percent-encoding: unreserved (ALPHA, DIGIT, "-._~") kept, every other byte as
// %XX in upper case. Safe for a path segment, a query value and userinfo alike.
std::string percentEncode(std::string_view text);

}  // namespace popbridge::protocol
