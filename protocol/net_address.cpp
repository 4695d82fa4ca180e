#include "protocol/net_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>

namespace popbridge::protocol {
namespace {

using IpBytes = std::array<unsigned char, 16>;

// inet_pton wants a C string; a stack copy keeps the check free of
// allocation, and anything this long is no IP literal (INET6_ADDRSTRLEN is 46).
IpFamily parseIp(std::string_view text, IpBytes& bytes) {
  std::array<char, 64> terminated{};
  if (text.size() >= terminated.size() || text.find('\0') != std::string_view::npos) {
    return IpFamily::None;
  }
  std::copy(text.begin(), text.end(), terminated.begin());
  if (::inet_pton(AF_INET, terminated.data(), bytes.data()) == 1) return IpFamily::V4;
  if (::inet_pton(AF_INET6, terminated.data(), bytes.data()) == 1) return IpFamily::V6;
  return IpFamily::None;
}

}  // namespace

IpFamily ipFamily(std::string_view text) {
  IpBytes bytes{};
  return parseIp(text, bytes);
}

bool isIpLiteral(std::string_view text) {
  return ipFamily(text) != IpFamily::None;
}

bool isLoopbackIp(std::string_view text) {
  IpBytes bytes{};
  switch (parseIp(text, bytes)) {
    case IpFamily::V4:
      return bytes[0] == 127;
    case IpFamily::V6: {
      static constexpr IpBytes kLoopback{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
      static constexpr std::array<unsigned char, 12> kV4MappedPrefix{0, 0, 0, 0, 0,    0,
                                                                     0, 0, 0, 0, 0xFF, 0xFF};
      if (bytes == kLoopback) return true;
      return std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), bytes.begin()) &&
             bytes[12] == 127;
    }
    case IpFamily::None:
      break;
  }
  return false;
}

std::string_view withoutBrackets(std::string_view host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

std::string formatHostPort(std::string_view host, std::uint16_t port) {
  std::string out;
  const bool ipv6 = host.find(':') != std::string_view::npos;
  out.reserve(host.size() + 8);
  if (ipv6) out += '[';
  out += host;
  if (ipv6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

}  // namespace popbridge::protocol
