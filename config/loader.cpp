// Reads the whole configuration: applies the environment overrides, reads each table and checks
// the combinations of keys that no single key can check alone.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <limits>

#include "config/addresses.h"
#include "config/config.h"
#include "config/file_reading.h"
#include "config/keys.h"
#include "config/message_text.h"
#include "config/password.h"
#include "config/toml_reader.h"
#include "protocol/http/url.h"
#include "protocol/net_address.h"
#include "protocol/pop3/uidl_format.h"
#include "protocol/text.h"

namespace popbridge::config {
namespace {

constexpr std::size_t kMaxConfigFileBytes = 1024 * 1024;
constexpr std::size_t kMaxPasswordFileBytes = 4096;
constexpr std::size_t kMaxFolderLength = 1024;
constexpr std::size_t kMaxUserLength = 255;

class Loader {
 public:
  Loader(std::string_view sourceName, std::string baseDir, const Environment& env,
         const CipherListChecker& checkCiphers)
      : diagnostics_(std::string(sourceName)),
        baseDir_(std::move(baseDir)),
        env_(env),
        checkCiphers_(checkCiphers) {}

  LoadResult load(std::string_view text);

 private:
  const std::string& source() const { return diagnostics_.source(); }
  Position position(const std::string& keyPath, const toml::source_region& region) const {
    return diagnostics_.position(keyPath, region);
  }
  std::string resolvePath(const std::string& path) const {
    if (path.empty() || baseDir_.empty() || path.front() == '/') return path;
    return (std::filesystem::path(baseDir_) / path).lexically_normal().string();
  }

  void applyEnvironment(toml::table& root);
  void readServer(const TableReader& root, ServerConfig& server);
  void readListeners(const toml::table& root, std::vector<ListenerConfig>& listeners);
  void readListener(const TableReader& reader, ListenerConfig& listener);
  // Reads `ciphers` and checks it names only suites this TLS library has.
  void readCiphers(const TableReader& reader, ListenerConfig& listener);
  // proxy_protocol, trusted_proxies, proxy_protocol_timeout.
  void readProxyProtocol(const TableReader& reader, ListenerConfig& listener);
  void readUpstream(const TableReader& root, UpstreamConfig& upstream);
  // Reads the [mailbox] keys present in `reader` over `mailbox`, then checks the combination.
  void readMailboxKeys(const TableReader& reader, MailboxOptions& mailbox);
  void readAbuseControl(const TableReader& reader, ServerConfig& server);
  void readAccounts(const toml::table& root, const MailboxOptions& defaults,
                    std::vector<AccountConfig>& accounts);
  void readAccount(const TableReader& reader, AccountConfig& account);
  void readOAuth2(const toml::table& root, std::vector<OAuthIdentityConfig>& identities);
  void readOAuthIdentity(const TableReader& reader, OAuthIdentityConfig& identity);
  // Reads a secret from a small file (client_secret_file), trailing CR/LF stripped.
  void readSecretFile(const TableReader& reader, std::string_view key, const std::string& path,
                      std::string& out);
  // An account's oauth2 = "NAME": the identity exists, gives the upstream user when the account
  // names none, and its provider's preset chooses the delete policy unless the file does.
  void bindAccount(const TableReader& reader, AccountConfig& account, bool setsDelete);
  void warnUnusedIdentities(const Config& config);
  void warnStableWithoutState(const Config& config);
  // An endpoint URL: https, or http to a loopback address (a local token helper).
  void checkEndpoint(const TableReader& reader, std::string_view key, const std::string& url);
  void readPath(const TableReader& reader, std::string_view key, std::string& out);
  void readMetrics(const TableReader& root, MetricsConfig& metrics);
  void readState(const TableReader& root, StateConfig& state);
  void readRedisUrl(const TableReader& reader, const std::string& url, StateConfig& state);

  Diagnostics diagnostics_;
  bool mailboxSetsDelete_ = false;  // [mailbox] (or its environment override) sets on_delete
  const std::vector<OAuthIdentityConfig>* identities_ = nullptr;
  std::string baseDir_;
  const Environment& env_;
  const CipherListChecker& checkCiphers_;
};

void Loader::applyEnvironment(toml::table& root) {
  for (const auto& variable : env_) {
    const std::string& name = variable.first;
    if (!name.starts_with(kEnvironmentPrefix)) continue;
    const auto known =
        std::find_if(kEnvironmentOverrides.begin(), kEnvironmentOverrides.end(),
                     [&](const EnvironmentOverride& o) { return o.variable == name; });
    if (known != kEnvironmentOverrides.end()) continue;
    std::string message = "unknown environment variable, ignored";
    for (const EnvironmentOverride& o : kEnvironmentOverrides) {
      if (editDistance(name, o.variable) <= kMaxSuggestionDistance) {
        message += " (did you mean " + std::string(o.variable) + "?)";
        break;
      }
    }
    diagnostics_.warn({name, 0, 0}, "", std::move(message));
  }

  for (const EnvironmentOverride& entry : kEnvironmentOverrides) {
    const auto it = env_.find(std::string(entry.variable));
    if (it == env_.end()) continue;
    const std::string keyPath = std::string(entry.table) + "." + std::string(entry.key);
    const std::string& value = it->second;
    toml::node* section = root.get(entry.table);
    if (section == nullptr) {
      section = &root.insert_or_assign(entry.table, toml::table{}).first->second;
    }
    toml::table* table = section->as_table();
    if (table == nullptr) continue;  // the file's own type error is reported for the table
    diagnostics_.setOverride(keyPath, std::string(entry.variable));
    if (entry.integer) {
      // Nine digits at most: within range of the TOML integer, and far beyond any port, so
      // that the key's own range check reports the number.
      const auto number =
          value.size() <= 9 ? protocol::parseDecimal(value, 999'999'999) : std::nullopt;
      if (!number) {
        diagnostics_.error({std::string(entry.variable), 0, 0}, keyPath,
                           "expected an integer between 1 and 65535, got " + quote(value));
        table->erase(entry.key);  // the file's value must not be reported a second time
        continue;
      }
      table->insert_or_assign(entry.key, static_cast<std::int64_t>(*number));
    } else if (entry.boolean && (value == "true" || value == "false")) {
      table->insert_or_assign(entry.key, value == "true");
    } else {
      table->insert_or_assign(entry.key, value);
    }
  }
}

void Loader::readPath(const TableReader& reader, std::string_view key, std::string& out) {
  // Relative paths from the environment stay relative to the working directory, like any
  // other command-line path; only the file's own paths follow the file.
  if (reader.readString(key, out) == Read::Ok && !diagnostics_.isOverridden(reader.keyPath(key))) {
    out = resolvePath(out);
  }
}

void Loader::readServer(const TableReader& root, ServerConfig& server) {
  const toml::node* node = root.find("server");
  if (node == nullptr) return;
  if (!node->is_table()) {
    root.error("server", "expected a table ([server]), got " + describe(*node));
    return;
  }
  TableReader reader(diagnostics_, node->as_table(), "server", kServerKeys, node);
  reader.readInteger("workers", 0, 1024, server.workers);
  if (reader.readDuration("idle_timeout", std::chrono::seconds(1), std::chrono::hours(24),
                          server.idleTimeout) == Read::Ok &&
      server.idleTimeout < std::chrono::minutes(10)) {
    reader.warn("idle_timeout", formatDuration(server.idleTimeout) +
                                    " is below the 10 minutes that RFC 1939 asks for; slow "
                                    "clients may be logged out");
  }
  reader.readInteger("max_connections", 1, 1'000'000, server.maxConnections);
  reader.readInteger("max_connections_per_ip", 0, 1'000'000, server.maxConnectionsPerIp);
  reader.readEnum("log_level", server.logLevel);
  reader.readEnum("log_format", server.logFormat);
  reader.readInteger("max_bad_commands", 1, 1000, server.maxBadCommands);
  reader.readDuration("auth_failure_delay", Duration::zero(), std::chrono::minutes(1),
                      server.authFailureDelay);
  reader.readDuration("login_timeout", std::chrono::seconds(1), std::chrono::hours(1),
                      server.loginTimeout);
  reader.readInteger("max_password_checks", 1, 256, server.maxPasswordChecks);
  reader.readInteger("password_check_queue", 0, 100'000, server.passwordCheckQueue);
  reader.readInteger("login_throttle_after", 0, 1000, server.loginThrottleAfter);
  reader.readDuration("login_throttle_max_delay", Duration::zero(), std::chrono::hours(1),
                      server.loginThrottleMaxDelay);
  readAbuseControl(reader, server);
  reader.readDuration("shutdown_timeout", Duration::zero(), std::chrono::hours(1),
                      server.shutdownTimeout);
  reader.readInteger("buffer_size", 4096, 16 * 1024 * 1024, server.bufferSize);
  reader.readInteger("write_high_watermark", 4096, 1024 * 1024 * 1024, server.writeHighWatermark);
  reader.reportUnknownKeys();
}

// Per-user throttle, LOGIN-DELAY and the per-account session cap (after the per-IP throttle's
// keys, whose delays the per-user throttle shares).
void Loader::readAbuseControl(const TableReader& reader, ServerConfig& server) {
  reader.readInteger("login_throttle_user_after", 0, 1000, server.loginThrottleUserAfter);
  if (reader.readDuration("login_delay", Duration::zero(), std::chrono::hours(24),
                          server.loginDelay) == Read::Ok &&
      server.loginDelay % std::chrono::seconds(1) != Duration::zero()) {
    // RFC 2449 announces it in whole seconds; a value that CAPA cannot say is not enforced.
    reader.error("login_delay", "must be whole seconds (RFC 2449 announces it in seconds), got " +
                                    formatDuration(server.loginDelay));
    server.loginDelay = Duration::zero();
  }
  reader.readInteger("max_sessions_per_account", 0, 1'000'000, server.maxSessionsPerAccount);
  const bool throttling = server.loginThrottleAfter != 0 || server.loginThrottleUserAfter != 0;
  if (throttling && server.authFailureDelay == Duration::zero()) {
    reader.warn("auth_failure_delay",
                "0s also turns off the login throttles (login_throttle_after, "
                "login_throttle_user_after), which double this delay");
  } else if (throttling && server.loginThrottleMaxDelay >= server.loginTimeout) {
    reader.warn(
        reader.has("login_throttle_max_delay") ? "login_throttle_max_delay" : "login_timeout",
        "login_throttle_max_delay (" + formatDuration(server.loginThrottleMaxDelay) +
            ") is not below login_timeout (" + formatDuration(server.loginTimeout) +
            "): a throttled login would be timed out before it is checked, which locks "
            "out a throttled IP or user instead of slowing it down");
  }
}

void Loader::readCiphers(const TableReader& reader, ListenerConfig& listener) {
  if (reader.readString("ciphers", listener.ciphers) != Read::Ok) return;
  // An empty list selects popbridge's profile, and tls = "none" is warned about in readListener.
  if (listener.ciphers.empty() || listener.tls == ListenerTls::None || !checkCiphers_) return;
  const CipherListCheck check = checkCiphers_(listener.ciphers);
  if (!check.error.empty()) {
    reader.error("ciphers", check.error);
    return;
  }
  bool certificateSuite = false;
  bool olderTlsSuite = false;
  for (const CipherSuite& suite : check.suites) {
    if (suite.psk) continue;
    certificateSuite = true;
    olderTlsSuite = olderTlsSuite || suite.minVersion < TlsVersion::V1_2;
    if (suite.tripleDes) {
      // Named on purpose for a device that speaks nothing else; allowed, never silently.
      reader.warn("ciphers", "enables " + suite.name +
                                 ": 3DES has 64-bit blocks and is open to SWEET32 "
                                 "(CVE-2016-2183); keep it only for a device that has nothing "
                                 "better");
    }
  }
  if (!certificateSuite) {
    reader.error("ciphers",
                 "enables only pre-shared-key (PSK) suites, which popbridge never uses; name "
                 "suites for a certificate, e.g. \"ECDHE+AESGCM\"");
  } else if (listener.minTlsVersion == TlsVersion::V1_3) {
    reader.warn("ciphers",
                "has no effect with min_tls_version = \"1.3\": TLS 1.3 suites are not "
                "configurable");
  } else if (listener.minTlsVersion < TlsVersion::V1_2 && !olderTlsSuite) {
    reader.warn("ciphers", "enables only TLS 1.2 suites, so the TLS " +
                               std::string(toString(listener.minTlsVersion)) +
                               " clients that min_tls_version admits cannot connect; add "
                               "AES-CBC suites such as ECDHE-RSA-AES128-SHA");
  }
}

void Loader::readListener(const TableReader& reader, ListenerConfig& listener) {
  bool addressOk = false;
  switch (reader.readString("address", listener.address)) {
    case Read::Absent:
      reader.errorAtTable("address", "required, e.g. address = \"0.0.0.0:110\"");
      break;
    case Read::Ok: {
      std::string problem;
      addressOk = parseListenAddress(listener.address, listener.host, listener.port, problem);
      if (!addressOk) reader.error("address", problem);
      break;
    }
    case Read::Invalid:
      break;
  }
  const Read tls = reader.readEnum("tls", listener.tls);
  readPath(reader, "certificate", listener.certificate);
  readPath(reader, "private_key", listener.privateKey);
  reader.readEnum("min_tls_version", listener.minTlsVersion);
  readCiphers(reader, listener);
  reader.readBool("allow_plaintext_auth", listener.allowPlaintextAuth);
  reader.readDuration("handshake_timeout", std::chrono::seconds(1), std::chrono::minutes(10),
                      listener.handshakeTimeout);
  readProxyProtocol(reader, listener);
  reader.reportUnknownKeys();

  if (tls == Read::Invalid) return;  // the TLS checks below would only add noise
  const std::string tlsClause = "when tls = \"" + std::string(toString(listener.tls)) + "\"" +
                                (tls == Read::Absent ? " (the default)" : "");
  if (listener.tls == ListenerTls::None) {
    for (std::string_view key : {"certificate", "private_key", "ciphers"}) {
      if (reader.has(key)) reader.warn(key, "ignored because tls = \"none\"");
    }
    if (!listener.allowPlaintextAuth) {
      reader.warn("tls",
                  "with tls = \"none\" and allow_plaintext_auth = false no client can log in on "
                  "this listener");
    }
  } else {
    for (std::string_view key : {"certificate", "private_key"}) {
      const std::string& path = key == "certificate" ? listener.certificate : listener.privateKey;
      const toml::node* node = reader.find(key);
      if (node == nullptr) {
        reader.errorAtTable(key, "required " + tlsClause);
      } else if (node->is_string() && path.empty()) {
        reader.error(key, "must not be empty " + tlsClause);
      } else if (node->is_string()) {
        std::string problem;
        if (!checkReadable(path, problem)) reader.error(key, problem);
      }
    }
    if (listener.minTlsVersion < TlsVersion::V1_2) {
      reader.warn("min_tls_version",
                  "TLS " + std::string(toString(listener.minTlsVersion)) +
                      " is deprecated (RFC 8996); allow it only for devices that need it");
    }
  }
  if (addressOk && listener.allowPlaintextAuth && listener.tls != ListenerTls::Implicit &&
      !protocol::isLoopbackIp(listener.host)) {
    reader.warn("allow_plaintext_auth",
                "passwords may cross the network in clear text on " + listener.address);
  }
}

void Loader::readProxyProtocol(const TableReader& reader, ListenerConfig& listener) {
  const Read enabled = reader.readBool("proxy_protocol", listener.proxyProtocol);
  reader.readDuration("proxy_protocol_timeout", std::chrono::milliseconds(100),
                      std::chrono::minutes(1), listener.proxyProtocolTimeout);
  const toml::node* node = reader.find("trusted_proxies");
  if (node != nullptr) {
    const toml::array* array = node->as_array();
    if (array == nullptr) {
      reader.error("trusted_proxies",
                   "expected an array of addresses or address blocks, e.g. [\"10.0.0.0/8\", "
                   "\"::1\"], got " +
                       describe(*node));
      return;
    }
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      const std::string path = reader.keyPath("trusted_proxies") + "[" + std::to_string(i) + "]";
      if (!element.is_string()) {
        diagnostics_.error(position(path, element.source()), path,
                           "expected a string such as \"10.0.0.0/8\", got " + describe(element));
        continue;
      }
      const std::string& text = element.as_string()->get();
      std::string problem;
      if (auto network = protocol::IpNetwork::parse(text, problem)) {
        listener.trustedProxies.push_back(*network);
      } else {
        diagnostics_.error(position(path, element.source()), path, quote(text) + ": " + problem);
      }
    }
    if (array->empty() && listener.proxyProtocol) {
      reader.error("trusted_proxies",
                   "must list the load balancers allowed to send PROXY headers when "
                   "proxy_protocol = true");
    } else if (!array->empty() && !listener.proxyProtocol && enabled != Read::Invalid) {
      // Likely meant to turn it on; an empty list (as in the example) is quietly unused.
      reader.warn("trusted_proxies", "ignored because proxy_protocol is not true");
    }
  } else if (listener.proxyProtocol) {
    reader.errorAtTable("trusted_proxies",
                        "required when proxy_protocol = true: the addresses of the load "
                        "balancers allowed to send PROXY headers, e.g. [\"10.0.0.0/8\"]");
  }
}

void Loader::readListeners(const toml::table& root, std::vector<ListenerConfig>& listeners) {
  const toml::node* node = root.get("listener");
  if (node == nullptr) {
    diagnostics_.error({source(), 0, 0}, "listener",
                       "at least one [[listener]] is required, e.g. address = \"0.0.0.0:110\"");
    return;
  }
  const toml::array* array = asArrayOfTables(diagnostics_, *node, "listener");
  if (array == nullptr) return;
  if (array->empty()) {
    diagnostics_.error(position("listener", node->source()), "listener",
                       "at least one [[listener]] is required, e.g. address = \"0.0.0.0:110\"");
    return;
  }
  std::map<std::pair<std::string, std::uint16_t>, std::size_t> seen;
  forEachTable(
      diagnostics_, *array, "listener", kListenerKeys,
      [&](const TableReader& reader, std::size_t i) {
        ListenerConfig listener;
        readListener(reader, listener);
        if (listener.port != 0) {
          const auto [it, inserted] = seen.emplace(std::make_pair(listener.host, listener.port), i);
          if (!inserted) {
            reader.error("address", quote(listener.address) + " is already used by listener[" +
                                        std::to_string(it->second) + "]");
          }
        }
        listeners.push_back(std::move(listener));
      });
}

void Loader::readUpstream(const TableReader& root, UpstreamConfig& upstream) {
  const toml::node* node = root.find("upstream");
  if (node == nullptr) {
    diagnostics_.error({source(), 0, 0}, "upstream.host",
                       "required: add an [upstream] table with host = \"imap.example.com\" (or set "
                       "POPBRIDGE_UPSTREAM_HOST)");
    return;
  }
  if (!node->is_table()) {
    root.error("upstream", "expected a table ([upstream]), got " + describe(*node));
    return;
  }
  TableReader reader(diagnostics_, node->as_table(), "upstream", kUpstreamKeys, node);
  bool hostOk = false;
  switch (reader.readString("host", upstream.host)) {
    case Read::Absent:
      reader.errorAtTable("host", "required, e.g. host = \"imap.example.com\"");
      break;
    case Read::Ok: {
      std::string problem;
      hostOk = normalizeHost(upstream.host, problem);
      if (!hostOk) reader.error("host", problem);
      break;
    }
    case Read::Invalid:
      break;
  }
  const Read tls = reader.readEnum("tls", upstream.tls);
  if (reader.readInteger("port", 1, 65535, upstream.port) == Read::Absent) {
    upstream.port = upstream.tls == UpstreamTls::Implicit ? 993 : 143;
  }
  readPath(reader, "ca_file", upstream.caFile);
  reader.readBool("verify_certificate", upstream.verifyCertificate);
  if (reader.readString("server_name", upstream.serverName) == Read::Ok &&
      !upstream.serverName.empty()) {
    std::string problem;
    if (!normalizeHost(upstream.serverName, problem)) reader.error("server_name", problem);
  }
  reader.readDuration("connect_timeout", std::chrono::seconds(1), std::chrono::minutes(10),
                      upstream.connectTimeout);
  reader.readDuration("command_timeout", std::chrono::seconds(1), std::chrono::hours(1),
                      upstream.commandTimeout);
  reader.readEnum("auth", upstream.auth);
  reader.readEnum("min_tls_version", upstream.minTlsVersion);
  reader.readBool("send_client_address", upstream.sendClientAddress);
  reader.readBool("read_ahead", upstream.readAhead);
  reader.readDuration("pool_idle", Duration::zero(), std::chrono::hours(1), upstream.poolIdle);
  reader.readInteger("pool_max_per_account", 1, 1000, upstream.poolMaxPerAccount);
  reader.readInteger("pool_max_total", 1, 1'000'000, upstream.poolMaxTotal);
  reader.readBool("snapshot_cache", upstream.snapshotCache);
  reader.readInteger("snapshot_cache_max_messages", 1, 100'000'000,
                     upstream.snapshotCacheMaxMessages);
  reader.reportUnknownKeys();

  if (!upstream.caFile.empty()) {
    std::string problem;
    if (!checkReadable(upstream.caFile, problem)) reader.error("ca_file", problem);
  }
  if (tls != Read::Ok && tls != Read::Absent) return;
  if (upstream.tls == UpstreamTls::None) {
    if (hostOk && !isLoopbackHost(upstream.host)) {
      reader.warn("tls",
                  "\"none\" sends passwords and mail to " + upstream.host + " in clear text");
    }
    return;
  }
  if (!upstream.verifyCertificate) {
    reader.warn("verify_certificate",
                "false accepts any certificate, so anyone on the network path can read the "
                "upstream passwords and mail");
  }
  if (upstream.minTlsVersion < TlsVersion::V1_2) {
    reader.warn("min_tls_version", "TLS " + std::string(toString(upstream.minTlsVersion)) +
                                       " is deprecated (RFC 8996)");
  }
}

void Loader::readMailboxKeys(const TableReader& reader, MailboxOptions& mailbox) {
  auto checkFolder = [&](std::string_view key, const std::string& value) {
    if (value.empty()) {
      reader.error(key, "must not be empty");
    } else if (std::any_of(value.begin(), value.end(), protocol::isAsciiControl)) {
      reader.error(key, "must not contain control characters, got " + quote(value));
    } else if (value.size() > kMaxFolderLength) {
      reader.error(key, "must be at most " + std::to_string(kMaxFolderLength) + " bytes");
    }
  };
  if (reader.readString("folder", mailbox.folder) == Read::Ok) {
    checkFolder("folder", mailbox.folder);
  }
  const Read onDelete = reader.readEnum("on_delete", mailbox.onDelete);
  const Read moveTo = reader.readString("move_to", mailbox.moveTo);
  if (moveTo == Read::Ok && protocol::isSpecialUse(mailbox.moveTo)) {
    if (auto attribute = protocol::canonicalSpecialUse(mailbox.moveTo)) {
      mailbox.moveTo = *attribute;
    } else {
      // Quoted as in TOML, so each is shown the way it is written in the file.
      std::string valid;
      for (std::string_view name : protocol::kSpecialUseAttributes) {
        valid.append(valid.empty() ? "" : ", ").append(quote(name));
      }
      reader.error("move_to", quote(mailbox.moveTo) +
                                  " is not a special-use attribute; a move_to starting with a "
                                  "backslash must be one of " +
                                  valid + " (RFC 6154, any case)");
    }
  } else if (moveTo == Read::Ok && !mailbox.moveTo.empty()) {
    checkFolder("move_to", mailbox.moveTo);
  }
  reader.readBool("mark_seen_on_retr", mailbox.markSeenOnRetr);
  if (std::string spec; reader.readString("uidl_format", spec) == Read::Ok) {
    std::string problem;
    auto format = protocol::UidlFormat::parse(spec, problem);
    if (!format) {
      reader.error("uidl_format", problem);
    } else {
      if (!format->usesUidValidity() && !format->usesMessageIds()) {
        reader.warn("uidl_format",
                    "without %v a UIDVALIDITY change can give new messages the UIDLs of old "
                    "ones, and clients may then skip or delete the wrong mail");
      }
      mailbox.uidl = std::move(*format);
    }
  }
  reader.readInteger("max_messages", 0, std::numeric_limits<std::uint32_t>::max(),
                     mailbox.maxMessages);
  reader.readBool("exclusive", mailbox.exclusive);

  // Only a table that sets one of the two keys is responsible for their combination; an
  // account inheriting a broken [mailbox] would only repeat [mailbox]'s error.
  const bool setsHere = onDelete == Read::Ok || moveTo == Read::Ok;
  if (!setsHere || onDelete == Read::Invalid || moveTo == Read::Invalid ||
      mailbox.onDelete != DeletePolicy::Move) {
    return;
  }
  const std::string_view key = moveTo == Read::Ok ? "move_to" : "on_delete";
  if (mailbox.moveTo.empty()) {
    reader.error(key, "on_delete = \"move\" needs a non-empty move_to folder");
  } else if (mailbox.moveTo == mailbox.folder && !protocol::isSpecialUse(mailbox.moveTo)) {
    reader.error(key, "on_delete = \"move\" with move_to equal to folder (" +
                          quote(mailbox.folder) + ") would never remove a message");
  }
}

void Loader::readAccount(const TableReader& reader, AccountConfig& account) {
  switch (reader.readString("user", account.user)) {
    case Read::Absent:
      reader.errorAtTable("user", "required: the name a device logs in with");
      break;
    case Read::Ok:
      if (account.user.empty()) {
        reader.error("user", "must not be empty");
      } else if (account.user.size() > kMaxUserLength ||
                 std::any_of(account.user.begin(), account.user.end(),
                             [](char c) { return c == ' ' || protocol::isAsciiControl(c); })) {
        reader.error("user", "expected at most " + std::to_string(kMaxUserLength) +
                                 " bytes without spaces or control characters, got " +
                                 quote(account.user));
      }
      break;
    case Read::Invalid:
      break;
  }
  // The hash is never quoted in a message: it may be a password pasted by mistake.
  if (const toml::node* node = reader.find("password_hash"); node == nullptr) {
    reader.errorAtTable("password_hash", "required: run `popbridge hash-password` to make one");
  } else if (!node->is_string()) {
    reader.error("password_hash", "expected a string with an argon2 hash");
  } else {
    account.passwordHash = node->as_string()->get();
    std::string problem;
    if (!checkPasswordHash(account.passwordHash, problem)) reader.error("password_hash", problem);
  }
  const Read oauth2 = reader.readString("oauth2", account.oauth2);
  if (oauth2 == Read::Ok && account.oauth2.empty()) reader.error("oauth2", "must not be empty");
  const bool usesOAuth2 = oauth2 != Read::Absent;
  if (usesOAuth2 && reader.has("upstream_password_file")) {
    reader.error("upstream_password_file",
                 "an account with oauth2 logs in with an access token, not a password; remove "
                 "one of the two");
  }
  switch (reader.readString("upstream_user", account.upstreamUser)) {
    case Read::Absent:
      if (!usesOAuth2) {
        reader.errorAtTable("upstream_user", "required: the IMAP login this account maps to");
      }
      break;
    case Read::Ok:
      if (account.upstreamUser.empty()) reader.error("upstream_user", "must not be empty");
      break;
    case Read::Invalid:
      break;
  }
  switch (usesOAuth2 ? Read::Invalid
                     : reader.readString("upstream_password_file", account.upstreamPasswordFile)) {
    case Read::Absent:
      reader.errorAtTable("upstream_password_file",
                          "required: a file holding the IMAP password, e.g. a Docker secret, or "
                          "oauth2 = \"NAME\" for an [oauth2.NAME] identity");
      break;
    case Read::Ok: {
      account.upstreamPasswordFile = resolvePath(account.upstreamPasswordFile);
      if (account.upstreamPasswordFile.empty()) {
        reader.error("upstream_password_file", "must not be empty");
        break;
      }
      std::string problem;
      std::string& password = account.upstreamPassword;
      if (!readSmallFile(account.upstreamPasswordFile, kMaxPasswordFileBytes, password, problem)) {
        reader.error("upstream_password_file", problem);
        break;
      }
      // Editors and `echo` add a final newline that is not part of the password.
      while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
        password.pop_back();
      }
      if (password.empty()) {
        reader.error("upstream_password_file", quote(account.upstreamPasswordFile) + " is empty");
      } else if (password.find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos) {
        password.clear();
        reader.error("upstream_password_file",
                     quote(account.upstreamPasswordFile) +
                         " must hold the password alone on one line (it contains a line break "
                         "or a NUL byte)");
      }
      break;
    }
    case Read::Invalid:
      break;
  }
  readMailboxKeys(reader, account.mailbox);
  reader.reportUnknownKeys();
}

void Loader::readAccounts(const toml::table& root, const MailboxOptions& defaults,
                          std::vector<AccountConfig>& accounts) {
  const toml::node* node = root.get("account");
  if (node == nullptr) return;
  const toml::array* array = asArrayOfTables(diagnostics_, *node, "account");
  if (array == nullptr) return;
  std::map<std::string, std::size_t> users;
  forEachTable(diagnostics_, *array, "account", kAccountKeys,
               [&](const TableReader& reader, std::size_t i) {
                 AccountConfig account;
                 account.mailbox = defaults;
                 readAccount(reader, account);
                 bindAccount(reader, account, reader.has("on_delete") || reader.has("move_to"));
                 if (!account.user.empty()) {
                   const auto [it, inserted] = users.emplace(account.user, i);
                   if (!inserted) {
                     reader.error("user", quote(account.user) + " is already defined by account[" +
                                              std::to_string(it->second) + "]");
                   }
                 }
                 accounts.push_back(std::move(account));
               });
}

// --- [oauth2.NAME] ---------------------------------------------------------------------------

namespace {

constexpr std::size_t kMaxSecretFileBytes = 16 * 1024;
constexpr std::size_t kMaxIdentityName = 64;

bool validIdentityName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxIdentityName &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
         });
}

bool validTenant(std::string_view tenant) {
  return !tenant.empty() && tenant.size() <= 255 &&
         std::all_of(tenant.begin(), tenant.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.';
         });
}

// curl's rule for NO_PROXY: "*", or a comma-separated list of names that match the host itself
// or any name below it (a leading dot is optional).
bool noProxyMatches(std::string_view list, std::string_view host) {
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view entry = list.substr(start, end - start);
    while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t'))
      entry.remove_prefix(1);
    while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\t')) entry.remove_suffix(1);
    if (!entry.empty() && entry.front() == '.') entry.remove_prefix(1);
    if (entry == "*") return true;
    if (!entry.empty()) {
      if (protocol::equalsIgnoreCase(host, entry)) return true;
      if (host.size() > entry.size() && host[host.size() - entry.size() - 1] == '.' &&
          protocol::equalsIgnoreCase(host.substr(host.size() - entry.size()), entry)) {
        return true;
      }
    }
    start = end + 1;
  }
  return false;
}

}  // namespace

void Loader::readSecretFile(const TableReader& reader, std::string_view key,
                            const std::string& path, std::string& out) {
  std::string problem;
  if (!readSmallFile(path, kMaxSecretFileBytes, out, problem)) {
    reader.error(key, problem);
    return;
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (out.empty()) {
    reader.error(key, quote(path) + " is empty");
  } else if (std::any_of(out.begin(), out.end(), protocol::isAsciiControl)) {
    protocol::secureWipe(out);
    out.clear();
    reader.error(key, quote(path) + " must hold the secret alone on one line");
  }
}

void Loader::checkEndpoint(const TableReader& reader, std::string_view key,
                           const std::string& url) {
  std::string problem;
  auto parsed = protocol::parseHttpUrl(url, problem);
  // A URL with an '@' may carry a password: it is never echoed.
  const std::string shown = url.find('@') == std::string::npos ? ", got " + quote(url) : "";
  if (!parsed) {
    reader.error(key, problem + shown);
  } else if (!parsed->user.empty() || !parsed->password.empty()) {
    reader.error(key, "must not hold a user or password; use client_id and client_secret_file");
  } else if (parsed->scheme != "https" && !isLoopbackHost(parsed->host)) {
    reader.error(key, "must be an https:// URL (http:// only to a loopback address)" + shown);
  }
}

void Loader::readOAuthIdentity(const TableReader& reader, OAuthIdentityConfig& identity) {
  reader.readEnum("provider", identity.provider);
  const bool hasCommand = reader.has("token_command");
  identity.grant = hasCommand ? OAuthGrant::Command : OAuthGrant::RefreshToken;
  const Read grant = reader.readEnum("grant", identity.grant);
  reader.readString("client_id", identity.clientId);
  reader.readString("scope", identity.scope);
  reader.readString("user", identity.user);
  const Read mechanism = reader.readEnum("mechanism", identity.mechanism);
  reader.readDuration("request_timeout", std::chrono::seconds(1), std::chrono::minutes(5),
                      identity.requestTimeout);
  reader.readDuration("refresh_before", Duration::zero(), std::chrono::hours(1),
                      identity.refreshBefore);
  reader.readDuration("token_command_timeout", std::chrono::seconds(1), std::chrono::minutes(5),
                      identity.tokenCommandTimeout);
  readPath(reader, "ca_file", identity.caFile);
  if (!identity.caFile.empty()) {
    std::string problem;
    if (!checkReadable(identity.caFile, problem)) reader.error("ca_file", problem);
  }

  if (reader.readString("tenant", identity.tenant) == Read::Ok) {
    if (identity.provider != OAuthProvider::Microsoft) {
      reader.error("tenant", "only provider = \"microsoft\" has a tenant");
    } else if (!validTenant(identity.tenant)) {
      reader.error("tenant",
                   "expected a directory name or id such as "
                   "\"contoso.onmicrosoft.com\", got " +
                       quote(identity.tenant));
    }
  }

  // The presets: what Microsoft and Google document for IMAP, filled in where the file is
  // silent.
  const bool appOnly = identity.grant == OAuthGrant::ClientCredentials;
  switch (identity.provider) {
    case OAuthProvider::Microsoft: {
      if (identity.tenant.empty()) {
        if (appOnly) {
          reader.errorAtTable("tenant",
                              "required with grant = \"client_credentials\": app-only access "
                              "needs the directory, e.g. \"contoso.onmicrosoft.com\"");
        }
        identity.tenant = "organizations";
      } else if (appOnly && (identity.tenant == "organizations" || identity.tenant == "common" ||
                             identity.tenant == "consumers")) {
        reader.error("tenant", "grant = \"client_credentials\" needs the directory itself, not " +
                                   quote(identity.tenant));
      }
      const std::string base = "https://login.microsoftonline.com/" + identity.tenant;
      identity.tokenEndpoint = base + "/oauth2/v2.0/token";
      identity.deviceAuthorizationEndpoint = base + "/oauth2/v2.0/devicecode";
      if (identity.scope.empty()) {
        identity.scope = appOnly
                             ? "https://outlook.office365.com/.default"
                             : "https://outlook.office.com/IMAP.AccessAsUser.All offline_access";
      }
      if (mechanism == Read::Absent) identity.mechanism = BearerMechanism::XOAuth2;
      break;
    }
    case OAuthProvider::Google:
      if (appOnly) {
        reader.error("grant",
                     "Google has no client-credentials grant for Gmail; app-only access uses a "
                     "service account with domain-wide delegation: fetch its tokens with "
                     "grant = \"command\"");
      }
      identity.tokenEndpoint = "https://oauth2.googleapis.com/token";
      identity.deviceAuthorizationEndpoint = "https://oauth2.googleapis.com/device/code";
      if (identity.scope.empty()) identity.scope = "https://mail.google.com/";
      break;
    case OAuthProvider::Generic:
      break;
  }
  if (reader.readString("token_endpoint", identity.tokenEndpoint) == Read::Ok ||
      !identity.tokenEndpoint.empty()) {
    checkEndpoint(reader, "token_endpoint", identity.tokenEndpoint);
  }
  if (reader.readString("device_authorization_endpoint", identity.deviceAuthorizationEndpoint) ==
          Read::Ok ||
      !identity.deviceAuthorizationEndpoint.empty()) {
    checkEndpoint(reader, "device_authorization_endpoint", identity.deviceAuthorizationEndpoint);
  }

  // What each grant needs.
  if (identity.grant != OAuthGrant::Command) {
    if (identity.tokenEndpoint.empty()) {
      reader.errorAtTable("token_endpoint",
                          "required with provider = \"generic\" unless grant = \"command\"");
    }
    if (identity.clientId.empty()) {
      reader.errorAtTable("client_id",
                          "required: the application (client) id registered with "
                          "the provider");
    }
  }
  if (reader.readString("client_secret_file", identity.clientSecretFile) == Read::Ok) {
    identity.clientSecretFile = resolvePath(identity.clientSecretFile);
    readSecretFile(reader, "client_secret_file", identity.clientSecretFile, identity.clientSecret);
  } else if (appOnly) {
    reader.errorAtTable("client_secret_file",
                        "required with grant = \"client_credentials\": a file holding the client "
                        "secret, e.g. a Docker secret");
  }
  if (reader.readString("refresh_token_file", identity.refreshTokenFile) == Read::Ok) {
    identity.refreshTokenFile = resolvePath(identity.refreshTokenFile);
    if (identity.grant != OAuthGrant::RefreshToken) {
      reader.error("refresh_token_file", "only used with grant = \"refresh_token\"");
    }
  }
  if (identity.grant == OAuthGrant::RefreshToken) {
    if (identity.refreshTokenFile.empty()) {
      if (!reader.has("refresh_token_file")) {
        reader.errorAtTable("refresh_token_file",
                            "required with grant = \"refresh_token\": where `popbridge oauth "
                            "login " +
                                identity.name + "` stores the refresh token");
      } else {
        reader.error("refresh_token_file", "must not be empty");
      }
    } else {
      std::error_code ec;
      const auto parent = std::filesystem::path(identity.refreshTokenFile).parent_path();
      const std::string dir = parent.empty() ? std::string(".") : parent.string();
      if (!std::filesystem::is_directory(dir, ec)) {
        reader.error("refresh_token_file", "the directory " + quote(dir) + " does not exist");
      } else {
        if (::access(dir.c_str(), W_OK) != 0) {
          reader.warn("refresh_token_file",
                      "the directory " + quote(dir) +
                          " is not writable by this user: rotated refresh tokens (Microsoft and "
                          "Google rotate them) cannot be saved there, nor can `popbridge oauth "
                          "login` store one");
        }
        if (!std::filesystem::exists(identity.refreshTokenFile, ec)) {
          reader.warn("refresh_token_file", quote(identity.refreshTokenFile) +
                                                " does not exist yet: run `popbridge "
                                                "oauth login " +
                                                identity.name + "` before devices log in");
        } else {
          auto perms = std::filesystem::status(identity.refreshTokenFile, ec).permissions();
          using std::filesystem::perms;
          if (!ec && (perms & (perms::group_read | perms::others_read)) != perms::none) {
            reader.warn("refresh_token_file",
                        quote(identity.refreshTokenFile) +
                            " is readable by other users; a refresh token is a password (chmod "
                            "600)");
          }
        }
      }
    }
  }
  if (const toml::node* node = reader.find("token_command")) {
    const toml::array* array = node->as_array();
    bool ok = array != nullptr && !array->empty();
    if (ok) {
      for (const toml::node& element : *array) {
        if (!element.is_string()) {
          ok = false;
          break;
        }
        identity.tokenCommand.push_back(element.as_string()->get());
      }
    }
    if (!ok || identity.tokenCommand.front().empty()) {
      identity.tokenCommand.clear();
      reader.error("token_command",
                   "expected an array of strings, the program first, e.g. "
                   "[\"/usr/local/bin/get-token\", \"--mailbox\", \"scanner\"], got " +
                       describe(*node));
    } else if (identity.grant != OAuthGrant::Command) {
      reader.error("token_command", "only used with grant = \"command\"");
    } else if (identity.tokenCommand.front().find('/') != std::string::npos) {
      identity.tokenCommand.front() = resolvePath(identity.tokenCommand.front());
      std::error_code ec;
      if (!std::filesystem::is_regular_file(identity.tokenCommand.front(), ec)) {
        reader.error("token_command", quote(identity.tokenCommand.front()) + " is not a file");
      }
    }
  } else if (identity.grant == OAuthGrant::Command && grant == Read::Ok) {
    reader.errorAtTable("token_command",
                        "required with grant = \"command\": the program that prints a token");
  }

  if (reader.readString("https_proxy", identity.httpsProxy) == Read::Absent) {
    // Like curl: https_proxy, then HTTPS_PROXY, unless no_proxy names the endpoint's host.
    for (const char* name : {"https_proxy", "HTTPS_PROXY"}) {
      auto it = env_.find(name);
      if (it != env_.end() && !it->second.empty()) {
        identity.httpsProxy = it->second;
        break;
      }
    }
    if (!identity.httpsProxy.empty()) {
      std::string problem;
      auto endpoint = protocol::parseHttpUrl(identity.tokenEndpoint, problem);
      for (const char* name : {"no_proxy", "NO_PROXY"}) {
        auto it = env_.find(name);
        if (endpoint && it != env_.end() && noProxyMatches(it->second, endpoint->host)) {
          identity.httpsProxy.clear();
          break;
        }
      }
    }
  }
  if (!identity.httpsProxy.empty() && identity.httpsProxy.find("://") == std::string::npos) {
    // curl reads "proxy.corp:3128" as http://; so does every tool that sets HTTPS_PROXY so.
    identity.httpsProxy = "http://" + identity.httpsProxy;
  }
  if (!identity.httpsProxy.empty()) {
    std::string problem;
    auto proxy = protocol::parseHttpUrl(identity.httpsProxy, problem);
    if (!proxy) {
      reader.error("https_proxy", problem);
    } else if (proxy->scheme != "http") {
      reader.error("https_proxy",
                   "expected an http://host:port proxy (HTTPS goes through it with CONNECT)");
    }
  }
  reader.reportUnknownKeys();
}

void Loader::readOAuth2(const toml::table& root, std::vector<OAuthIdentityConfig>& identities) {
  const toml::node* node = root.get("oauth2");
  if (node == nullptr) return;
  const toml::table* table = node->as_table();
  if (table == nullptr) {
    diagnostics_.error(position("oauth2", node->source()), "oauth2",
                       "expected tables [oauth2.NAME], got " + describe(*node));
    return;
  }
  for (const auto& [key, value] : *table) {
    const std::string name(key.str());
    const std::string path = "oauth2." + name;
    if (!value.is_table()) {
      diagnostics_.error(position(path, value.source()), path,
                         "expected a table ([oauth2." + name + "]), got " + describe(value));
      continue;
    }
    const TableReader reader(diagnostics_, value.as_table(), path, kOAuth2Keys, &value);
    OAuthIdentityConfig identity;
    identity.name = name;
    if (!validIdentityName(name)) {
      reader.errorAtTable("", "the name must be 1-64 letters, digits, '-', '_' or '.'");
    }
    readOAuthIdentity(reader, identity);
    identities.push_back(std::move(identity));
  }
}

void Loader::bindAccount(const TableReader& reader, AccountConfig& account, bool setsDelete) {
  if (account.oauth2.empty() || identities_ == nullptr) return;
  const OAuthIdentityConfig* identity = nullptr;
  for (const OAuthIdentityConfig& candidate : *identities_) {
    if (candidate.name == account.oauth2) identity = &candidate;
  }
  if (identity == nullptr) {
    std::string message = "no [oauth2." + account.oauth2 + "] is defined";
    for (const OAuthIdentityConfig& candidate : *identities_) {
      if (editDistance(candidate.name, account.oauth2) <= kMaxSuggestionDistance) {
        message += " (did you mean " + quote(candidate.name) + "?)";
        break;
      }
    }
    reader.error("oauth2", std::move(message));
    return;
  }
  if (account.upstreamUser.empty()) {
    if (identity->user.empty()) {
      reader.errorAtTable("upstream_user", "required: [oauth2." + identity->name +
                                               "] has no user, so the account must name the "
                                               "mailbox it logs in to");
    }
    account.upstreamUser = identity->user;
  }
  // On Gmail, \Deleted + EXPUNGE in INBOX only archives (removes the INBOX label), and on
  // Microsoft 365 a flagged message stays visible in Outlook: moving to the special-use Trash
  // is what a user's own "delete" does on both, and stays recoverable.
  if (!setsDelete && !mailboxSetsDelete_ && identity->provider != OAuthProvider::Generic) {
    account.mailbox.onDelete = DeletePolicy::Move;
    account.mailbox.moveTo = "\\Trash";
  }
}

// %{stable} falls back to the persistent map where the server has no EMAILID or X-GM-MSGID
// (Dovecot, Cyrus, Exchange): without a store that map lasts one session.
void Loader::warnStableWithoutState(const Config& config) {
  if (!config.state.path.empty() || config.state.redisEnabled()) return;
  const bool used = config.mailbox.uidl.usesStable() ||
                    std::any_of(config.accounts.begin(), config.accounts.end(),
                                [](const AccountConfig& a) { return a.mailbox.uidl.usesStable(); });
  if (!used) return;
  diagnostics_.warn({source(), 0, 0}, "mailbox.uidl_format",
                    "%{stable} keeps its UIDL map only with [state] path or redis; without one, a "
                    "message without EMAILID or X-GM-MSGID gets %08Xu%08Xv, which changes with "
                    "UIDVALIDITY");
}

void Loader::warnUnusedIdentities(const Config& config) {
  for (const OAuthIdentityConfig& identity : config.oauth2) {
    const bool used =
        std::any_of(config.accounts.begin(), config.accounts.end(),
                    [&](const AccountConfig& a) { return a.oauth2 == identity.name; });
    if (!used) {
      diagnostics_.warn({source(), 0, 0}, "oauth2." + identity.name,
                        "no [[account]] uses this identity (oauth2 = \"" + identity.name + "\")");
    }
  }
}

// --- [metrics] ---------------------------------------------------------------------------------

void Loader::readMetrics(const TableReader& root, MetricsConfig& metrics) {
  const toml::node* node = root.find("metrics");
  if (node == nullptr) return;
  if (!node->is_table()) {
    root.error("metrics", "expected a table ([metrics]), got " + describe(*node));
    return;
  }
  TableReader reader(diagnostics_, node->as_table(), "metrics", kMetricsKeys, node);
  if (reader.readString("address", metrics.address) == Read::Ok && !metrics.address.empty()) {
    std::string problem;
    if (!parseListenAddress(metrics.address, metrics.host, metrics.port, problem)) {
      reader.error("address", problem);
    } else if (!isLoopbackHost(metrics.host)) {
      // The page tells anyone who can reach it the user count and traffic; say so once.
      reader.warn("address", "metrics listener " + metrics.address +
                                 " is reachable from other hosts; /metrics has no "
                                 "authentication, so firewall it or bind to 127.0.0.1");
    }
  }
  reader.readDuration("readyz_cache", std::chrono::seconds(0), std::chrono::minutes(10),
                      metrics.readyzCache);
  reader.readDuration("healthz_stale", std::chrono::seconds(2), std::chrono::minutes(10),
                      metrics.healthzStale);
  reader.readInteger("max_connections", 1, 1024, metrics.maxConnections);
  reader.reportUnknownKeys();
}

// --- [state] -----------------------------------------------------------------------------------

void Loader::readRedisUrl(const TableReader& reader, const std::string& url, StateConfig& state) {
  // Never echoed: the URL may hold a password.
  std::string_view rest(url);
  std::string http;
  if (rest.starts_with("redis://")) {
    http = "http://" + std::string(rest.substr(8));
  } else if (rest.starts_with("rediss://")) {
    state.redisTls = true;
    http = "https://" + std::string(rest.substr(9));
  } else {
    reader.error("redis", "expected redis://[user:password@]host[:port][/db] or rediss://...");
    return;
  }
  std::string problem;
  auto parsed = protocol::parseHttpUrl(http, problem);
  if (!parsed) {
    // parseHttpUrl's reasons show no userinfo; the scheme they name is ours again.
    for (std::size_t at = problem.find("http"); at != std::string::npos;
         at = problem.find("http", at + 5)) {
      problem.replace(at, 4, "redis");
    }
    reader.error("redis", "not a valid URL: " + problem);
    return;
  }
  // parseHttpUrl fills in http's default port: tell an explicit one from it.
  std::string_view authority(http);
  authority.remove_prefix(authority.find("://") + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  const auto colon = authority.rfind(':');
  const bool explicitPort =
      colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos;
  state.redisHost = parsed->host;
  state.redisPort = explicitPort ? parsed->port : 6379;
  state.redisUser = parsed->user;
  state.redisPassword = parsed->password;
  const std::string& target = parsed->target;
  if (target != "/" && !target.empty()) {
    unsigned database = 0;
    const std::string digits = target.substr(1);
    if (digits.empty() || digits.size() > 5 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        (database = static_cast<unsigned>(std::stoul(digits))) > 65535) {
      reader.error("redis", "the path must be a database number (/0, /1, ...)");
      return;
    }
    state.redisDatabase = database;
  }
}

void Loader::readState(const TableReader& root, StateConfig& state) {
  const toml::node* node = root.find("state");
  if (node == nullptr) return;
  if (!node->is_table()) {
    root.error("state", "expected a table ([state]), got " + describe(*node));
    return;
  }
  TableReader reader(diagnostics_, node->as_table(), "state", kStateKeys, node);
  readPath(reader, "path", state.path);
  std::string url;
  if (reader.readString("redis", url) == Read::Ok && !url.empty()) readRedisUrl(reader, url, state);
  std::string user;
  if (reader.readString("redis_user", user) == Read::Ok) {
    if (!state.redisUser.empty()) {
      reader.error("redis_user", "the redis URL names a user already");
    } else {
      state.redisUser = user;
    }
  }
  readPath(reader, "redis_password_file", state.redisPasswordFile);
  if (!state.redisPasswordFile.empty()) {
    if (!state.redisPassword.empty()) {
      reader.error("redis_password_file", "the redis URL holds a password already; use one");
    } else {
      readSecretFile(reader, "redis_password_file", state.redisPasswordFile, state.redisPassword);
    }
  }
  readPath(reader, "redis_ca_file", state.redisCaFile);
  reader.readDuration("redis_timeout", std::chrono::milliseconds(10), std::chrono::minutes(1),
                      state.redisTimeout);
  reader.readDuration("lease_ttl", std::chrono::seconds(1), std::chrono::hours(1), state.leaseTtl);
  reader.readString("key_prefix", state.keyPrefix);
  if (!state.redisEnabled()) {
    for (std::string_view key : {"redis_user", "redis_password_file", "redis_ca_file"}) {
      if (reader.has(key)) reader.warn(key, "has no effect without redis");
    }
  } else {
    if (!state.redisTls && reader.has("redis_ca_file")) {
      reader.warn("redis_ca_file", "has no effect with redis:// (rediss:// uses TLS)");
    }
    if (!state.redisTls && !state.redisPassword.empty() && !isLoopbackHost(state.redisHost)) {
      reader.warn("redis",
                  "sends the Redis password in plaintext to a host that is not "
                  "loopback; use rediss://");
    }
    if (state.redisTimeout * 2 > state.leaseTtl) {
      reader.error("lease_ttl", "must be at least twice redis_timeout (" +
                                    formatDuration(state.redisTimeout) +
                                    "), or a slow renewal loses the lease");
    }
    if (reader.has("path")) {
      reader.warn("path", "not used with redis: the replicas keep their state in Redis");
    }
  }
  reader.reportUnknownKeys();
}

LoadResult Loader::load(std::string_view text) {
  LoadResult result;
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(source()));
  } catch (const toml::parse_error& e) {
    result.errors.push_back({source(), e.source().begin.line, e.source().begin.column, "",
                             "TOML syntax error: " + std::string(e.description())});
    return result;
  }

  applyEnvironment(root);
  Config config;
  TableReader rootReader(diagnostics_, &root, "", kRootKeys, nullptr);
  readServer(rootReader, config.server);
  readListeners(root, config.listeners);
  readUpstream(rootReader, config.upstream);
  if (const toml::node* node = root.get("mailbox")) {
    if (node->is_table()) {
      TableReader reader(diagnostics_, node->as_table(), "mailbox", kMailboxKeys, node);
      mailboxSetsDelete_ = reader.has("on_delete") || reader.has("move_to");
      readMailboxKeys(reader, config.mailbox);
      reader.reportUnknownKeys();
    } else {
      rootReader.error("mailbox", "expected a table ([mailbox]), got " + describe(*node));
    }
  }
  readOAuth2(root, config.oauth2);
  identities_ = &config.oauth2;
  readAccounts(root, config.mailbox, config.accounts);
  warnUnusedIdentities(config);
  readMetrics(rootReader, config.metrics);
  readState(rootReader, config.state);
  warnStableWithoutState(config);
  rootReader.reportUnknownKeys();

  result.errors = diagnostics_.takeErrors();
  result.warnings = diagnostics_.takeWarnings();
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string StateConfig::redisDisplay() const {
  if (!redisEnabled()) return "";
  const bool v6 = redisHost.find(':') != std::string::npos;
  return std::string(redisTls ? "rediss://" : "redis://") + (v6 ? "[" : "") + redisHost +
         (v6 ? "]" : "") + ":" + std::to_string(redisPort) + "/" + std::to_string(redisDatabase);
}

std::string ConfigError::toString() const {
  std::string out = file;
  if (line != 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!keyPath.empty()) out += keyPath + ": ";
  out += message;
  return out;
}

const OAuthIdentityConfig* Config::findOAuthIdentity(std::string_view name) const {
  for (const OAuthIdentityConfig& identity : oauth2) {
    if (identity.name == name) return &identity;
  }
  return nullptr;
}

const AccountConfig* Config::findAccount(std::string_view user) const {
  for (const AccountConfig& account : accounts) {
    if (account.user == user) return &account;
  }
  return nullptr;
}

LoadResult loadConfigString(std::string_view toml, std::string_view sourceName,
                            const Environment& env, const CipherListChecker& checkCiphers) {
  try {
    Loader loader(sourceName, "", env, checkCiphers);
    return loader.load(toml);
  } catch (const std::exception& e) {
    // Only allocation failures can get here; the API promises not to throw.
    LoadResult result;
    result.errors.push_back(
        {std::string(sourceName), 0, 0, "", "internal error: " + std::string(e.what())});
    return result;
  }
}

LoadResult loadConfigFile(const std::string& path, const Environment& env,
                          const CipherListChecker& checkCiphers) {
  try {
    std::string text;
    std::string problem;
    if (!readSmallFile(path, kMaxConfigFileBytes, text, problem)) {
      LoadResult result;
      result.errors.push_back({path, 0, 0, "", problem});
      return result;
    }
    Loader loader(path, std::filesystem::path(path).parent_path().string(), env, checkCiphers);
    return loader.load(text);
  } catch (const std::exception& e) {
    LoadResult result;
    result.errors.push_back({path, 0, 0, "", "internal error: " + std::string(e.what())});
    return result;
  }
}

}  // namespace popbridge::config
