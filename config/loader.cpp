// Reads the whole configuration: applies the environment overrides, reads each table and checks
// the combinations of keys that no single key can check alone.
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
  void readUpstream(const TableReader& root, UpstreamConfig& upstream);
  // Reads the [mailbox] keys present in `reader` over `mailbox`, then checks the combination.
  void readMailboxKeys(const TableReader& reader, MailboxOptions& mailbox);
  void readAccounts(const toml::table& root, const MailboxOptions& defaults,
                    std::vector<AccountConfig>& accounts);
  void readAccount(const TableReader& reader, AccountConfig& account);
  void readPath(const TableReader& reader, std::string_view key, std::string& out);

  Diagnostics diagnostics_;
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
  if (server.loginThrottleAfter != 0 && server.authFailureDelay == Duration::zero()) {
    reader.warn("auth_failure_delay",
                "0s also turns off the per-IP login throttle (login_throttle_after), which "
                "doubles this delay");
  }
  reader.readDuration("shutdown_timeout", Duration::zero(), std::chrono::hours(1),
                      server.shutdownTimeout);
  reader.readInteger("buffer_size", 4096, 16 * 1024 * 1024, server.bufferSize);
  reader.readInteger("write_high_watermark", 4096, 1024 * 1024 * 1024, server.writeHighWatermark);
  reader.reportUnknownKeys();
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
  if (moveTo == Read::Ok && !mailbox.moveTo.empty()) checkFolder("move_to", mailbox.moveTo);
  reader.readBool("mark_seen_on_retr", mailbox.markSeenOnRetr);
  if (std::string spec; reader.readString("uidl_format", spec) == Read::Ok) {
    std::string problem;
    auto format = protocol::UidlFormat::parse(spec, problem);
    if (!format) {
      reader.error("uidl_format", problem);
    } else {
      if (!format->usesUidValidity()) {
        reader.warn("uidl_format",
                    "without %v a UIDVALIDITY change can give new messages the UIDLs of old "
                    "ones, and clients may then skip or delete the wrong mail");
      }
      mailbox.uidl = std::move(*format);
    }
  }
  reader.readInteger("max_messages", 0, std::numeric_limits<std::uint32_t>::max(),
                     mailbox.maxMessages);

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
  } else if (mailbox.moveTo == mailbox.folder) {
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
  switch (reader.readString("upstream_user", account.upstreamUser)) {
    case Read::Absent:
      reader.errorAtTable("upstream_user", "required: the IMAP login this account maps to");
      break;
    case Read::Ok:
      if (account.upstreamUser.empty()) reader.error("upstream_user", "must not be empty");
      break;
    case Read::Invalid:
      break;
  }
  switch (reader.readString("upstream_password_file", account.upstreamPasswordFile)) {
    case Read::Absent:
      reader.errorAtTable("upstream_password_file",
                          "required: a file holding the IMAP password, e.g. a Docker secret");
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
      readMailboxKeys(reader, config.mailbox);
      reader.reportUnknownKeys();
    } else {
      rootReader.error("mailbox", "expected a table ([mailbox]), got " + describe(*node));
    }
  }
  readAccounts(root, config.mailbox, config.accounts);
  rootReader.reportUnknownKeys();

  result.errors = diagnostics_.takeErrors();
  result.warnings = diagnostics_.takeWarnings();
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string ConfigError::toString() const {
  std::string out = file;
  if (line != 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!keyPath.empty()) out += keyPath + ": ";
  out += message;
  return out;
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
