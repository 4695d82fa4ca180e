#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include "config/config.h"

namespace popbridge::proxy {

// `popbridge check-upstream`: runs an UpstreamProbe (upstream_probe.h) against the configured
// upstream and prints one line per step (name, milliseconds, OK or FAIL and the cause), then a
// summary line. Exit codes, for scripts:
inline constexpr int kCheckOk = 0;
inline constexpr int kCheckConfigInvalid = 1;  // (main: the config did not load)
inline constexpr int kCheckUsage = 2;          // bad arguments; no password; unreadable file
inline constexpr int kCheckDns = 3;            // the upstream host does not resolve
inline constexpr int kCheckConnect = 4;        // no TCP connection
inline constexpr int kCheckTls = 5;            // TLS handshake or certificate verification
inline constexpr int kCheckProtocol = 6;  // greeting (BYE, PREAUTH, garbage, none), CAPABILITY,
                                          // STARTTLS, LOGOUT
inline constexpr int kCheckLogin = 7;     // the upstream refused the login
inline constexpr int kCheckSelect = 8;    // the folder cannot be opened (EXAMINE refused)
inline constexpr int kCheckToken = 9;     // no OAuth2 access token for the account's identity

struct CheckUpstreamOptions {
  // Empty: no login (reachability and CAPABILITY only). A configured [[account]]: its upstream
  // credentials (password file or [oauth2.NAME]) and folder. Anything else: the upstream login
  // itself, with the password from passwordFile, or asked for on the terminal (echo off), or
  // read as one line from stdin when it is not a terminal.
  std::string user;
  std::string passwordFile;
};

// Returns the exit code. Step lines and the summary go to `out`, problems with the arguments to
// `err`. The password is never printed and is wiped after use.
int runCheckUpstream(const config::Config& config, const CheckUpstreamOptions& options,
                     std::ostream& out, std::ostream& err);

}  // namespace popbridge::proxy
