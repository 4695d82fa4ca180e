#pragma once

// Address text as users write it and logs show it. It lives in protocol/, the
// bottom layer, because config/ validates addresses and proxy/ connects to and
// logs them, and both must agree on what an IP literal is. Text only: no
// sockets and no libuv.

#include <cstdint>
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

}  // namespace popbridge::protocol
