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

constexpr std::array<unsigned char, 12> kV4MappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};

bool isV4Mapped(const IpBytes& bytes) {
  return std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), bytes.begin());
}

// An IPv4-mapped IPv6 address becomes the IPv4 address in the first four bytes.
IpFamily unmap(IpFamily family, IpBytes& bytes) {
  if (family != IpFamily::V6 || !isV4Mapped(bytes)) return family;
  std::copy(bytes.begin() + 12, bytes.end(), bytes.begin());
  std::fill(bytes.begin() + 4, bytes.end(), 0);
  return IpFamily::V4;
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
      if (bytes == kLoopback) return true;
      return isV4Mapped(bytes) && bytes[12] == 127;
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

std::string unmappedIp(std::string_view ip) {
  IpBytes bytes{};
  const IpFamily family = parseIp(ip, bytes);
  if (family != IpFamily::V6 || !isV4Mapped(bytes)) return std::string(ip);
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, bytes.data() + 12, text, sizeof text);
  return text;
}

std::optional<IpNetwork> IpNetwork::parse(std::string_view text, std::string& error) {
  const std::size_t slash = text.find('/');
  IpNetwork network;
  network.family_ = parseIp(text.substr(0, slash), network.bytes_);
  if (network.family_ == IpFamily::None) {
    error = "expected an IP address or an address block such as 10.0.0.0/8 or 2001:db8::/32";
    return std::nullopt;
  }
  const unsigned maxPrefix = network.family_ == IpFamily::V4 ? 32 : 128;
  network.prefix_ = maxPrefix;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    unsigned value = 0;
    bool ok = !digits.empty() && digits.size() <= 3 && (digits.size() == 1 || digits[0] != '0');
    for (char c : digits) {
      ok = ok && c >= '0' && c <= '9';
      if (ok) value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (!ok || value > maxPrefix) {
      error = "the prefix length after '/' must be 0 to " + std::to_string(maxPrefix);
      return std::nullopt;
    }
    network.prefix_ = value;
  }
  for (unsigned bit = network.prefix_; bit < maxPrefix; ++bit) {
    if ((network.bytes_[bit / 8] >> (7 - bit % 8)) & 1) {
      error = "has bits set after the prefix length (did you mean " + [&] {
        IpNetwork masked = network;
        for (unsigned b = network.prefix_; b < maxPrefix; ++b) {
          masked.bytes_[b / 8] &= static_cast<unsigned char>(~(1u << (7 - b % 8)));
        }
        return masked.toString();
      }() + "?)";
      return std::nullopt;
    }
  }
  if (network.family_ == IpFamily::V6 && network.prefix_ >= 96 && isV4Mapped(network.bytes_)) {
    network.family_ = unmap(network.family_, network.bytes_);
    network.prefix_ -= 96;
  }
  return network;
}

bool IpNetwork::contains(std::string_view ip) const {
  IpBytes bytes{};
  const IpFamily family = unmap(parseIp(ip, bytes), bytes);
  if (family == IpFamily::None || family != family_) return false;
  for (unsigned bit = 0; bit < prefix_; bit += 8) {
    const unsigned bits = std::min(8u, prefix_ - bit);
    const auto mask = static_cast<unsigned char>(0xFF << (8 - bits));
    if ((bytes[bit / 8] & mask) != (bytes_[bit / 8] & mask)) return false;
  }
  return true;
}

std::string IpNetwork::toString() const {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family_ == IpFamily::V4 ? AF_INET : AF_INET6, bytes_.data(), text, sizeof text);
  return std::string(text) + "/" + std::to_string(prefix_);
}

}  // namespace popbridge::protocol
