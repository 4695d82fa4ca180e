#pragma once

// Address text as users write it and logs show it. It lives in protocol/, the
// bottom layer, because config/ validates addresses and proxy/ connects to and
// logs them, and both must agree on what an IP literal is. Text only: no
// sockets and no libuv.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace popbridge::protocol {

enum class IpFamily : std::uint8_t { None, V4, V6 };

// What kind of IP literal `text` is (IPv6 without brackets); None for host
// names and for anything else, including text with a NUL byte in it.
IpFamily ipFamily(std::string_view text);
bool isIpLiteral(std::string_view text);

// 127.0.0.0/8, ::1, and 127.0.0.0/8 mapped into IPv6 (::ffff:127.0.0.1).
bool isLoopbackIp(std::string_view text);

// "[::1]" -> "::1"; anything else, "[]" included, is returned as it is.
std::string_view withoutBrackets(std::string_view host);

// "192.0.2.1:110", "imap.example.com:993", "[2001:db8::1]:995": an IPv6
// literal needs brackets, or its last group would read as the port.
std::string formatHostPort(std::string_view host, std::uint16_t port);

// "::ffff:192.0.2.1" -> "192.0.2.1": the one spelling of an IPv4 client, whichever socket
// family or PROXY header it came through, so per-IP limits and logs key on one string. Any
// other text is returned as it is.
std::string unmappedIp(std::string_view ip);

// An address block such as trusted_proxies lists: "10.0.0.0/8", "2001:db8::/32", or a single
// address ("127.0.0.1" is 127.0.0.1/32, "::1" is ::1/128). Bits past the prefix must be zero
// ("10.0.0.1/8" is refused: it usually means a typo). An IPv4-mapped IPv6 block with a prefix
// of 96 or more is the IPv4 block it maps, and an IPv4-mapped address matches IPv4 blocks, so
// a dual-stack socket's "::ffff:10.0.0.1" is inside 10.0.0.0/8.
class IpNetwork {
 public:
  // Nullopt and `error` (without the text itself) when `text` is not a block.
  static std::optional<IpNetwork> parse(std::string_view text, std::string& error);
  // `ip` is an IP literal (IPv6 without brackets); anything else is outside every block.
  bool contains(std::string_view ip) const;
  // "10.0.0.0/8", "::1/128".
  std::string toString() const;
  IpFamily family() const { return family_; }
  unsigned prefixLength() const { return prefix_; }

 private:
  IpFamily family_ = IpFamily::None;
  std::array<unsigned char, 16> bytes_{};  // IPv4 in the first four
  unsigned prefix_ = 0;
};

}  // namespace popbridge::protocol
