#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace popbridge::protocol {

// An http: or https: URL split into what a request needs: where to connect, what to put in the
// request line and Host, and, for a proxy URL, whom to authenticate as.
struct HttpUrl {
  std::string scheme;          // "http" or "https", lower-cased
  std::string host;            // lower-cased; an IPv6 literal without its brackets
  std::uint16_t port = 0;      // as given, else 80 or 443
  std::string target;          // path and query as given, "/" if empty; never the fragment
  std::string user, password;  // percent-decoded userinfo, empty when absent
};

// RFC 3986 syntax, strict: only http and https, no whitespace, controls or non-ASCII bytes
// anywhere (they would have to be encoded, and the URL comes from a configuration where a
// stray one is a typo), no characters RFC 3986 excludes ("<>\"\\^`{|}"), well-formed
// percent-escapes, a non-empty host of letters, digits, '-', '.' and '_' or a bracketed IPv6
// literal, and a port of 1-65535 (an empty port means the default, RFC 3986 6.2.3). The
// fragment is dropped. On failure returns nullopt and says why in `error`.
std::optional<HttpUrl> parseHttpUrl(std::string_view url, std::string& error);

}  // namespace popbridge::protocol
