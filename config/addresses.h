#pragma once

// The address keys: a listener binds to a literal IP and port, the upstream is a host name or
// an IP. On failure `error` is the whole message for the key.

#include <cstdint>
#include <string>
#include <string_view>

namespace popbridge::config {

// "1.2.3.4:110" or "[::1]:995" into its literal IP (without brackets) and port.
bool parseListenAddress(std::string_view text, std::string& host, std::uint16_t& port,
                        std::string& error);

// Accepts a DNS name or an IP literal, and removes brackets around an IPv6 literal in place.
bool normalizeHost(std::string& host, std::string& error);

// localhost, or a loopback IP: where clear text never leaves the machine.
bool isLoopbackHost(std::string_view host);

}  // namespace popbridge::config
