#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/duration.h"
#include "protocol/bridge/mailbox_options.h"
#include "protocol/imap/sasl.h"
#include "protocol/log_severity.h"
#include "protocol/net_address.h"

namespace popbridge::config {

// The configuration is one TOML file; config/popbridge.example.toml documents every key with
// its default. Loading never throws: every problem becomes a ConfigError with file, line,
// column and key path, and all of them are reported at once.
//
// Paths (certificate, private_key, ca_file, upstream_password_file) that are relative are
// resolved against the directory of the config file by loadConfigFile(), so a config directory
// can be mounted anywhere. loadConfigString() leaves them as written.
//
// Environment overrides
// ---------------------
// Applied after the file and validated exactly like the file's values; an error in one names
// the variable instead of a file position. An empty value is a value (e.g.
// POPBRIDGE_UPSTREAM_CA_FILE= selects the system CA bundle).
//
//   POPBRIDGE_UPSTREAM_HOST          upstream.host
//   POPBRIDGE_UPSTREAM_PORT          upstream.port          (1-65535)
//   POPBRIDGE_UPSTREAM_TLS           upstream.tls           (implicit | starttls | none)
//   POPBRIDGE_UPSTREAM_CA_FILE       upstream.ca_file
//   POPBRIDGE_UPSTREAM_SERVER_NAME   upstream.server_name
//   POPBRIDGE_LOG_LEVEL              server.log_level       (error | warn | info | debug)
//   POPBRIDGE_LOG_FORMAT             server.log_format      (text | json)
//   POPBRIDGE_MAILBOX_FOLDER         mailbox.folder         (accounts that set folder keep theirs)
//   POPBRIDGE_MAILBOX_ON_DELETE      mailbox.on_delete      (accounts that set on_delete keep
//   theirs)
//   POPBRIDGE_UPSTREAM_SNAPSHOT_CACHE upstream.snapshot_cache (true | false)

// Where protocol/ already has a type for a concept, the loader produces that type, so what the
// file says reaches a session by copy, never through a conversion that could fall out of step.
using protocol::BearerMechanism;  // oauth2.NAME.mechanism
using protocol::DeletePolicy;     // mailbox.on_delete
using protocol::LogSeverity;      // server.log_level
using protocol::MailboxOptions;   // [mailbox] and each account's mailbox keys
using protocol::UpstreamLogin;    // upstream.auth

enum class LogFormat { Text, Json };
enum class ListenerTls { None, StartTls, Implicit };
enum class UpstreamTls { Implicit, StartTls, None };
enum class TlsVersion { V1_0, V1_1, V1_2, V1_3 };

struct ServerConfig {
  unsigned workers = 1;  // 0 = one per CPU core
  // RFC 1939 asks for an autologout timer of at least 10 minutes; shorter is allowed (devices
  // that poll and quit do not care) but warned about; below 1s is an error.
  Duration idleTimeout = std::chrono::minutes(10);
  unsigned maxConnections = 10000;
  unsigned maxConnectionsPerIp = 50;  // 0 = no per-address limit
  LogSeverity logLevel = LogSeverity::Info;
  LogFormat logFormat = LogFormat::Text;
  unsigned maxBadCommands = 10;  // then the client is disconnected
  Duration authFailureDelay = std::chrono::seconds(2);
  // A client that has not logged in by then is closed, whatever it sends (nginx and Dovecot
  // have the same limit).
  Duration loginTimeout = std::chrono::seconds(60);
  // Local [[account]] password checks (argon2) running at once in the whole process, and how
  // many more may wait; a login beyond both gets -ERR [SYS/TEMP] without any hashing.
  unsigned maxPasswordChecks = 4;
  unsigned passwordCheckQueue = 32;
  // Failed or abandoned logins from one client IP before each further attempt from it waits
  // (auth_failure_delay, doubling per failure, capped by loginThrottleMaxDelay) before it is
  // even checked. 0 = no per-IP throttle.
  unsigned loginThrottleAfter = 3;
  Duration loginThrottleMaxDelay = std::chrono::seconds(30);
  // Abuse control (see config/README.md). The per-user throttle: failed or abandoned logins
  // for one login name (from any IP) before each further login as that name waits like the
  // per-IP one. A delay, never a refusal: 0 = off.
  unsigned loginThrottleUserAfter = 10;
  // RFC 2449 LOGIN-DELAY: the least time between two successful logins of one user, in whole
  // seconds; 0 = not enforced and not announced.
  Duration loginDelay = Duration::zero();
  // Concurrent sessions per upstream account (its IMAP login name), across all workers; the
  // next one gets -ERR [IN-USE]. 0 = no limit.
  unsigned maxSessionsPerAccount = 10;
  Duration shutdownTimeout = std::chrono::seconds(10);  // graceful drain on SIGTERM
  std::size_t bufferSize = 64 * 1024;                   // per-direction read buffer
  std::size_t writeHighWatermark = 256 * 1024;          // low watermark = half
};

struct ListenerConfig {
  std::string address;  // as written, e.g. "0.0.0.0:110", "[::]:995"
  std::string host;     // the literal IP, without brackets
  std::uint16_t port = 0;
  ListenerTls tls = ListenerTls::StartTls;
  std::string certificate;
  std::string privateKey;
  TlsVersion minTlsVersion = TlsVersion::V1_2;
  bool allowPlaintextAuth = false;  // USER/PASS and AUTH before TLS
  Duration handshakeTimeout = std::chrono::seconds(30);
  // An OpenSSL-style cipher list for TLS 1.2 and older; empty = popbridge's profile for
  // minTlsVersion (see config/README.md). TLS 1.3 suites are not configurable.
  std::string ciphers;

  // PROXY protocol (v1 or v2, told apart by the first bytes) from a load balancer: every
  // connection must start with the header, read before the greeting and before TLS, and its
  // source address is the client's from then on. Only peers inside trustedProxies may send one;
  // others are closed at once. trustedProxies is required and non-empty when proxyProtocol is on.
  bool proxyProtocol = false;
  std::vector<protocol::IpNetwork> trustedProxies;
  Duration proxyProtocolTimeout = std::chrono::seconds(5);
};

struct UpstreamConfig {
  std::string host;  // a DNS name or a literal IP (IPv6 without brackets)
  // Defaults to 993 for tls = "implicit" and to 143 otherwise when the file does not set it.
  std::uint16_t port = 993;
  UpstreamTls tls = UpstreamTls::Implicit;
  std::string caFile;  // empty: the system CA bundle
  bool verifyCertificate = true;
  std::string serverName;  // SNI and certificate name; empty: host
  Duration connectTimeout = std::chrono::seconds(10);
  Duration commandTimeout = std::chrono::seconds(60);
  UpstreamLogin auth = UpstreamLogin::Auto;
  TlsVersion minTlsVersion = TlsVersion::V1_2;
  // Send the device's address and port with IMAP ID (RFC 2971) before logging in, so the
  // server's logs and per-IP limits see the device rather than popbridge.
  bool sendClientAddress = true;
  // While a client RETRs messages in order, fetch the next one before it asks, so that the
  // upstream's round trip overlaps the client's; bounded by server.write_high_watermark.
  bool readAhead = true;
  // The upstream connection pool (proxy/upstream_pool.h): how long a connection that served a
  // session cleanly stays logged in for the next login of the same credentials (0: no pool),
  // and how many are kept per account and per worker.
  Duration poolIdle = std::chrono::seconds(60);
  unsigned poolMaxPerAccount = 2;
  unsigned poolMaxTotal = 256;
  // Keep each mailbox's snapshot between sessions and refresh it by CONDSTORE (RFC 7162) instead
  // of listing every message at every poll (protocol/bridge/snapshot_cache.h).
  bool snapshotCache = true;
  // Messages cached over all mailboxes (about 16 octets each); least recently used mailboxes go
  // first, and a mailbox larger than this is not cached.
  std::uint32_t snapshotCacheMaxMessages = 2'000'000;

  const std::string& effectiveServerName() const { return serverName.empty() ? host : serverName; }
};

// Where an upstream OAuth2 identity's access tokens come from.
enum class OAuthProvider { Microsoft, Google, Generic };
enum class OAuthGrant { RefreshToken, ClientCredentials, Command };

// [oauth2.NAME]: one upstream identity that [[account]]s log in as with XOAUTH2 or OAUTHBEARER.
// Presets (provider) fill in endpoints, scope and mechanism; explicit keys win.
struct OAuthIdentityConfig {
  std::string name;  // the NAME of [oauth2.NAME], also `popbridge oauth login NAME`
  OAuthProvider provider = OAuthProvider::Generic;
  OAuthGrant grant = OAuthGrant::RefreshToken;
  std::string tenant;  // microsoft: the directory, e.g. "contoso.onmicrosoft.com"
  std::string clientId;
  std::string clientSecretFile;
  // Read from clientSecretFile at load, trailing CR/LF stripped. Never print or log it.
  std::string clientSecret;
  // grant = refresh_token: read when a token is needed, rewritten (temp file + rename, mode
  // 0600) when the endpoint rotates it; written first by `popbridge oauth login NAME`.
  std::string refreshTokenFile;
  std::vector<std::string> tokenCommand;  // grant = command: argv; stdout is the access token
  Duration tokenCommandTimeout = std::chrono::seconds(10);
  std::string tokenEndpoint;
  std::string deviceAuthorizationEndpoint;  // for `popbridge oauth login`
  std::string scope;
  std::string user;  // the upstream login (token owner or mailbox) when an account names none
  BearerMechanism mechanism = BearerMechanism::Auto;
  std::string httpsProxy;  // "http://host:port" for the token endpoint; empty: direct
  std::string caFile;      // for the token endpoint; empty: the system CA bundle
  Duration requestTimeout = std::chrono::seconds(15);
  // A cached token is refreshed this long before it expires.
  Duration refreshBefore = std::chrono::minutes(5);

  // A reload compares the running identities with the file's (see proxy/config_snapshot.h).
  bool operator==(const OAuthIdentityConfig&) const = default;
};

struct AccountConfig {
  std::string user;
  std::string passwordHash;  // argon2 encoded string, checked by checkPasswordHash()
  // The upstream login. With oauth2, empty means the identity's `user`.
  std::string upstreamUser;
  // The [oauth2.NAME] this account logs in with; empty: upstreamPassword with LOGIN or PLAIN.
  std::string oauth2;
  std::string upstreamPasswordFile;
  // Read from upstreamPasswordFile at load, trailing CR/LF stripped. Never print or log it.
  std::string upstreamPassword;
  MailboxOptions mailbox;  // [mailbox] with this account's overrides applied
};

// [metrics]: the Prometheus scrape, /healthz and /readyz on their own listener, served by
// their own loop. Empty address: off.
struct MetricsConfig {
  std::string address;  // "127.0.0.1:9110"; empty: no metrics listener
  std::string host;     // from address: a literal IP, without brackets
  std::uint16_t port = 0;
  // How long one /readyz answer (an upstream probe) is reused.
  Duration readyzCache = std::chrono::seconds(5);
  // How old a worker loop's heartbeat may be before /healthz calls it stuck.
  Duration healthzStale = std::chrono::seconds(5);
  unsigned maxConnections = 16;  // concurrent admin HTTP connections
};

// [state]: where what outlives a session is kept (stable UIDL maps), and, with redis, what the
// replicas of a cluster share (maildrop leases, the per-account session cap).
struct StateConfig {
  // The embedded store (SQLite) file; empty: none. Ignored when redis is set (the replicas
  // then keep everything in Redis).
  std::string path;
  // From `redis`; redisHost empty: no Redis.
  std::string redisHost;
  std::uint16_t redisPort = 6379;
  bool redisTls = false;  // rediss://
  unsigned redisDatabase = 0;
  std::string redisUser;
  std::string redisPassword;      // from the URL or redis_password_file; never logged
  std::string redisPasswordFile;  // as configured
  std::string redisCaFile;        // rediss:// trust; empty: the system bundle
  Duration redisTimeout = std::chrono::seconds(2);
  Duration leaseTtl = std::chrono::seconds(30);
  std::string keyPrefix = "popbridge:";

  bool redisEnabled() const { return !redisHost.empty(); }
  // "redis://host:port/db" without user or password, for logs.
  std::string redisDisplay() const;
  bool operator==(const StateConfig&) const = default;
};

struct Config {
  ServerConfig server;
  std::vector<ListenerConfig> listeners;
  UpstreamConfig upstream;
  // uidl_format is parsed once, at load: a bad template is a load error, never a runtime one.
  MailboxOptions mailbox;
  std::vector<AccountConfig> accounts;      // empty: logins are passed through to the upstream
  std::vector<OAuthIdentityConfig> oauth2;  // [oauth2.NAME], in file order
  MetricsConfig metrics;
  StateConfig state;

  // Exact, case-sensitive match; nullptr when there is no such account.
  const AccountConfig* findAccount(std::string_view user) const;
  const OAuthIdentityConfig* findOAuthIdentity(std::string_view name) const;
};

struct ConfigError {
  std::string file;        // the config file, or the environment variable for an override
  std::uint32_t line = 0;  // 1-based; 0 when the problem has no position (e.g. a missing table)
  std::uint32_t column = 0;
  std::string keyPath;  // e.g. "listener[0].tls"; empty for TOML syntax errors
  std::string message;

  // "file:12:5: listener[0].tls: expected one of none, starttls, implicit, got \"tsl\""
  std::string toString() const;
};

struct LoadResult {
  std::optional<Config> config;  // set only when there are no errors
  std::vector<ConfigError> errors;
  // Valid but unsafe or surprising settings, formatted like errors ("file:3:1: key: text").
  std::vector<std::string> warnings;

  bool ok() const { return config.has_value() && errors.empty(); }
};

// Injected so that tests stay pure; main passes the real environ.
using Environment = std::map<std::string, std::string>;

// One suite that a `ciphers` list enables, as the TLS library describes it.
struct CipherSuite {
  std::string name;                          // OpenSSL's name, e.g. "ECDHE-RSA-AES128-GCM-SHA256"
  TlsVersion minVersion = TlsVersion::V1_2;  // the oldest version that can negotiate it
  bool tripleDes = false;                    // 64-bit blocks: SWEET32 (CVE-2016-2183)
  bool psk = false;                          // needs a pre-shared key, which popbridge never has
};
struct CipherListCheck {
  std::string error;                // why the TLS library refuses the list; empty when it takes it
  std::vector<CipherSuite> suites;  // in the list's order of preference
};
// config/ links no TLS library (tests/CMakeLists.txt enforces that), so the caller that does
// (main passes proxy::checkCipherList) says what a `ciphers` list means. Without one, lists are
// taken as written and a bad one stops popbridge at startup instead of at load.
using CipherListChecker = std::function<CipherListCheck(const std::string& list)>;

// Reads at most 1 MiB from `path`; a file that cannot be read is a single error.
LoadResult loadConfigFile(const std::string& path, const Environment& env,
                          const CipherListChecker& checkCiphers = {});
LoadResult loadConfigString(std::string_view toml, std::string_view sourceName,
                            const Environment& env, const CipherListChecker& checkCiphers = {});

// Human summary for --check-config. Shows paths and names, never passwords or hashes.
std::string summarize(const Config& config);

// Each value as the config file spells it. DeletePolicy's names are protocol's own.
using protocol::toString;
std::string_view toString(LogSeverity value);
std::string_view toString(LogFormat value);
std::string_view toString(ListenerTls value);
std::string_view toString(UpstreamTls value);
std::string_view toString(TlsVersion value);  // "1.0" .. "1.3"
std::string_view toString(UpstreamLogin value);
std::string_view toString(OAuthProvider value);
std::string_view toString(OAuthGrant value);
std::string_view toString(BearerMechanism value);

}  // namespace popbridge::config
