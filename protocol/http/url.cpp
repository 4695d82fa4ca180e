#include "protocol/http/url.h"

#include <algorithm>

#include "protocol/http/excerpt.h"
#include "protocol/net_address.h"
#include "protocol/text.h"

namespace popbridge::protocol {

using http_detail::excerpt;

namespace {

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "%41" -> "A"; nullopt for a '%' not followed by two hex digits.
std::optional<std::string> percentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hexValue(text[i + 1]);
    const int low = hexValue(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

std::optional<HttpUrl> failWith(std::string& error, std::string message) {
  error = std::move(message);
  return std::nullopt;
}

// The URL quoted in an error without its user info, which holds a password (proxy URLs do).
std::string urlExcerpt(std::string_view url) {
  const std::size_t at = url.rfind('@');
  if (at == std::string_view::npos) return excerpt(url);
  return "'..." + excerpt(url.substr(at)).substr(1);
}

}  // namespace

std::optional<HttpUrl> parseHttpUrl(std::string_view url, std::string& error) {
  error.clear();
  for (char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7F) return failWith(error, "URL contains whitespace or a control byte");
    if (u >= 0x80) return failWith(error, "URL contains a non-ASCII byte; percent-encode it");
    if (std::string_view("\"<>\\^`{|}").find(c) != std::string_view::npos) {
      return failWith(error,
                      std::string("URL contains '") + c + "', which must be percent-encoded");
    }
  }

  const std::size_t colon = url.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return failWith(error,
                    "URL " + urlExcerpt(url) + " has no scheme (expected http:// or https://)");
  }
  HttpUrl out;
  out.scheme = toLowerAscii(url.substr(0, colon));
  if (out.scheme != "http" && out.scheme != "https") {
    return failWith(error, "unsupported URL scheme " + excerpt(url.substr(0, colon)) +
                               " (expected http or https)");
  }
  std::string_view rest = url.substr(colon + 1);
  if (!rest.starts_with("//")) {
    return failWith(error,
                    "URL " + urlExcerpt(url) + " has no host (expected " + out.scheme + "://host)");
  }
  rest.remove_prefix(2);
  rest = rest.substr(0, rest.find('#'));

  const std::size_t authorityEnd = std::min(rest.find('/'), rest.find('?'));
  std::string_view authority = rest.substr(0, authorityEnd);
  const std::string_view target =
      authorityEnd == std::string_view::npos ? std::string_view() : rest.substr(authorityEnd);
  if (!percentDecode(target)) {
    return failWith(error, "malformed percent-escape in URL path " + excerpt(target));
  }
  if (target.empty()) {
    out.target = "/";
  } else if (target.front() == '?') {
    out.target = "/" + std::string(target);
  } else {
    out.target = target;
  }

  const std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    for (char c : userinfo) {
      // RFC 3986 3.2.1: unreserved, pct-encoded, sub-delims and ':'. A second '@' in particular
      // leaves the reader to guess where the host starts.
      if (!isAlnum(c) && std::string_view("-._~%!$&'()*+,;=:").find(c) == std::string_view::npos) {
        return failWith(error, std::string("URL user info contains '") + c +
                                   "', which must be percent-encoded");
      }
    }
    const std::size_t split = userinfo.find(':');
    auto user = percentDecode(userinfo.substr(0, split));
    auto password = split == std::string_view::npos ? std::optional<std::string>(std::string())
                                                    : percentDecode(userinfo.substr(split + 1));
    if (!user || !password) return failWith(error, "malformed percent-escape in URL user info");
    out.user = std::move(*user);
    out.password = std::move(*password);
  }

  std::string_view port;
  bool hasPort = false;
  if (authority.starts_with('[')) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return failWith(error, "unterminated IPv6 literal in URL host " + excerpt(authority));
    }
    const std::string_view literal = authority.substr(1, close - 1);
    if (ipFamily(literal) != IpFamily::V6) {
      return failWith(error, "invalid IPv6 literal " + excerpt(literal) + " in URL");
    }
    out.host = toLowerAscii(literal);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return failWith(error, "unexpected " + excerpt(after) + " after the IPv6 literal in URL");
      }
      hasPort = true;
      port = after.substr(1);
    }
  } else {
    const std::size_t portColon = authority.find(':');
    const std::string_view host = authority.substr(0, portColon);
    if (host.empty()) return failWith(error, "URL " + urlExcerpt(url) + " has no host");
    if (!std::all_of(host.begin(), host.end(),
                     [](char c) { return isAlnum(c) || c == '-' || c == '.' || c == '_'; })) {
      return failWith(error, "invalid URL host " + excerpt(host));
    }
    out.host = toLowerAscii(host);
    if (portColon != std::string_view::npos) {
      hasPort = true;
      port = authority.substr(portColon + 1);
    }
  }

  out.port = out.scheme == "https" ? 443 : 80;
  if (hasPort && !port.empty()) {
    const auto value = isAllDigits(port) ? parseDecimal(port, 65535) : std::nullopt;
    if (!value || *value == 0) {
      return failWith(error, "invalid URL port " + excerpt(port) + " (expected 1-65535)");
    }
    out.port = static_cast<std::uint16_t>(*value);
  }
  return out;
}

}  // namespace popbridge::protocol
