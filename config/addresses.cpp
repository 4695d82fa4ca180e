#include "config/addresses.h"

#include <algorithm>

#include "config/message_text.h"
#include "protocol/net_address.h"
#include "protocol/text.h"

namespace popbridge::config {
namespace {

constexpr std::size_t kMaxHostLength = 253;

// A port is at most five digits: a longer run of them, even one with leading zeros, was
// meant to be something else.
constexpr std::size_t kMaxPortDigits = 5;

bool isHostNameCharacter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || protocol::isAsciiDigit(c) ||
         c == '-' || c == '.' || c == '_';
}

}  // namespace

bool parseListenAddress(std::string_view text, std::string& host, std::uint16_t& port,
                        std::string& error) {
  const std::string shape =
      "expected \"IPv4:port\" or \"[IPv6]:port\" such as \"0.0.0.0:110\" or \"[::]:995\", got " +
      quote(text);
  std::string_view portText;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = shape;
      return false;
    }
    host = std::string(text.substr(1, close - 1));
    portText = text.substr(close + 2);
    if (protocol::ipFamily(host) != protocol::IpFamily::V6) {
      error = quote(host) + " is not an IPv6 address (a listener binds to a literal IP)";
      return false;
    }
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      error = shape;
      return false;
    }
    host = std::string(text.substr(0, colon));
    portText = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      error = shape + " (write IPv6 addresses in brackets, e.g. \"[::]:995\")";
      return false;
    }
    if (protocol::ipFamily(host) != protocol::IpFamily::V4) {
      error = quote(host) +
              " is not an IPv4 address (a listener binds to a literal IP, e.g. \"0.0.0.0:110\")";
      return false;
    }
  }
  const auto value =
      portText.size() <= kMaxPortDigits ? protocol::parseDecimal(portText, 65535) : std::nullopt;
  if (!value || *value < 1) {
    error = "expected a port between 1 and 65535 after the address, got " + quote(portText);
    return false;
  }
  port = static_cast<std::uint16_t>(*value);
  return true;
}

bool normalizeHost(std::string& host, std::string& error) {
  const std::string_view bare = protocol::withoutBrackets(host);
  if (bare.size() != host.size()) {
    if (protocol::ipFamily(bare) != protocol::IpFamily::V6) {
      error = "expected a host name or IP address such as \"imap.example.com\", got " + quote(host);
      return false;
    }
    host = std::string(bare);
    return true;
  }
  if (host.find(':') != std::string::npos) {
    if (protocol::ipFamily(host) == protocol::IpFamily::V6) return true;
    error = "expected a host name or IP address such as \"imap.example.com\", got " + quote(host) +
            " (the port is a separate key)";
    return false;
  }
  if (host.empty() || host.size() > kMaxHostLength ||
      !std::all_of(host.begin(), host.end(), isHostNameCharacter)) {
    error = "expected a host name or IP address such as \"imap.example.com\", got " + quote(host);
    return false;
  }
  return true;
}

bool isLoopbackHost(std::string_view host) {
  return protocol::equalsIgnoreCase(host, "localhost") ||
         protocol::equalsIgnoreCase(host, "localhost.") || protocol::isLoopbackIp(host);
}

}  // namespace popbridge::config
