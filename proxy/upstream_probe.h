#pragma once

// clang-format off
#include "proxy/boringssl_check.h"  // first: stops the build on OpenSSL 3 headers
// clang-format on

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "proxy/loop_mailbox.h"
#include "proxy/tls_context.h"
#include "proxy/token_service.h"

namespace popbridge::proxy {

// Checks the [upstream] of a configuration step by step, on an event loop, the way a session
// would reach it: resolve the name (every address), connect (the addresses in order, within
// connect_timeout), implicit TLS (certificate verified as configured), the IMAP greeting,
// CAPABILITY, for a STARTTLS upstream STARTTLS, its handshake and CAPABILITY again, and
// optionally a login (LOGIN or AUTHENTICATE PLAIN per upstream.auth, or XOAUTH2/OAUTHBEARER with
// an access token of an [oauth2.NAME] identity), EXAMINE of the folder (read-only: the probe
// changes nothing, not even \Recent) and LOGOUT. Each step is reported with its duration and,
// when it fails, the cause; the first failure ends the probe.
//
// Used by `popbridge check-upstream` (all steps) and by the admin listener's /readyz
// (probeReachability below: no login).

enum class ProbeStep : std::uint8_t {
  Token,       // an OAuth2 access token from the token service (before connecting)
  Resolve,     // uv_getaddrinfo
  Connect,     // TCP, the resolved addresses in order
  Tls,         // the TLS handshake (implicit, or after STARTTLS)
  Greeting,    // "* OK"; "* PREAUTH", "* BYE", anything else and silence fail
  Capability,  // the capabilities (from the greeting's code or a CAPABILITY command)
  StartTls,    // STARTTLS accepted
  Login,
  Select,  // EXAMINE of the folder: EXISTS and UIDVALIDITY
  Logout,  // LOGOUT, until the server closes the connection
};
// "token", "resolve", "connect", "tls", "greeting", "capability", "starttls", "login",
// "select", "logout".
std::string_view toString(ProbeStep step);

// What kind of problem ended the probe; the class of the step that failed.
enum class ProbeFailure : std::uint8_t {
  None,
  Token,     // no access token for the OAuth2 identity
  Dns,       // the name does not resolve
  Connect,   // no address accepted a TCP connection in time
  Tls,       // handshake or certificate verification failed
  Protocol,  // greeting, CAPABILITY, STARTTLS or LOGOUT: not what IMAP says, or no answer
  Login,     // the server refused the login
  Select,    // the folder cannot be opened
};

struct ProbeStepResult {
  ProbeStep step = ProbeStep::Resolve;
  std::chrono::milliseconds duration{0};
  bool ok = false;
  // OK: what was found ("127.0.0.1:993", "TLSv1.3 TLS_AES_128_GCM_SHA256, ..."); FAIL: why
  // ("certificate verification failed: certificate has expired"). Never holds a secret.
  std::string detail;
};

struct ProbeReport {
  std::vector<ProbeStepResult> steps;  // in the order they ran; the last failed unless ok()
  ProbeFailure failure = ProbeFailure::None;
  std::chrono::milliseconds total{0};
  std::string target;  // "imap.example.com:993 (implicit TLS)"

  bool ok() const { return failure == ProbeFailure::None; }
  // "OK: imap.example.com:993 (implicit TLS) passed 5 steps in 48 ms", or
  // "FAIL at tls after 31 ms: imap.example.com:993 (implicit TLS): <cause>".
  std::string summary() const;
};

// Who to log in as. The password and token are wiped as soon as they were handed to the IMAP
// client, and when the probe ends.
struct ProbeLogin {
  std::string user;      // the upstream login (empty with oauth2: the identity's `user`)
  std::string password;  // LOGIN / AUTHENTICATE PLAIN; unused with oauth2
  std::string oauth2;    // an [oauth2.NAME]: log in with its access token instead
  std::string folder = "INBOX";
};

// Needed only for logins with an [oauth2.NAME] identity: the token service (started) and the
// probe's loop's mailbox for its answers. (Outside the class: a nested struct with default
// member initializers cannot be a defaulted argument of its enclosing class's constructor.)
struct ProbeTokenAccess {
  TokenService* tokens = nullptr;
  std::shared_ptr<LoopMailbox> mailbox;
};

class UpstreamProbe {
 public:
  using TokenAccess = ProbeTokenAccess;

  // `config` and `tls` must outlive the probe. `tls` may be null only for upstream tls = "none".
  UpstreamProbe(uv_loop_t* loop, const config::Config& config, const TlsClientContext* tls,
                TokenAccess tokens = {});
  // Cancels a probe in flight: its callback is not called, its socket is closed, requests still
  // inside libuv free themselves. Never call the destructor from inside a Stream or ImapClient
  // callback of the probe; calling it from `done` is fine.
  ~UpstreamProbe();
  UpstreamProbe(const UpstreamProbe&) = delete;
  UpstreamProbe& operator=(const UpstreamProbe&) = delete;

  // Starts a probe (a probe in flight is cancelled first). Without `login` it stops before the
  // login: resolve, connect, TLS, greeting, capability (and STARTTLS, TLS, capability again for
  // a STARTTLS upstream), then LOGOUT without waiting. `done` runs exactly once from the loop,
  // never from inside start(); it may destroy the probe or start another.
  void start(std::optional<ProbeLogin> login, std::function<void(ProbeReport)> done);
  bool running() const;

 private:
  class Run;
  uv_loop_t* loop_;
  const config::Config& config_;
  const TlsClientContext* tls_;
  TokenAccess tokens_;
  std::unique_ptr<Run> run_;
};

// The /readyz check: is the upstream reachable and speaking IMAP? Resolve, TCP connect, TLS
// (implicit, or STARTTLS after the greeting), greeting and CAPABILITY; no login, so no
// credentials are needed and nothing is logged at the server beyond a connection without login.
// Runs on `loop` (any loop; call from that loop's thread). `done` is called once, from the loop,
// with the report (report.ok() says ready or not; report.summary() is one line for the body);
// it may destroy the returned probe. Destroying the returned probe earlier cancels it and
// `done` is never called. Bounded in time by upstream.connect_timeout (resolve, connect, TLS)
// plus upstream.command_timeout (greeting, each command). Costs one connection per call: the
// caller caches the result (a few seconds) and shares one probe among concurrent requests, as
// AdminServer does for /readyz.
[[nodiscard]] std::unique_ptr<UpstreamProbe> probeReachability(
    uv_loop_t* loop, const config::Config& config, const TlsClientContext* tls,
    std::function<void(ProbeReport)> done);

}  // namespace popbridge::proxy
