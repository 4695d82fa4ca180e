// The only translation unit that includes toml++: it is heavy to compile, and keeping it here
// keeps TOML types out of every other header.
#include "config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <span>
#include <tuple>

#include "config/password.h"
#include "protocol/pop3/uidl_format.h"

namespace popbridge::config {
namespace {

constexpr std::size_t kMaxConfigFileBytes = 1024 * 1024;
constexpr std::size_t kMaxPasswordFileBytes = 4096;
constexpr std::size_t kMaxFolderLength = 1024;
constexpr std::size_t kMaxUserLength = 255;
constexpr std::size_t kMaxHostLength = 253;

// ---------------------------------------------------------------------------------------------
// Enum names: one table per enum, shared by the parser, toString() and the error messages.

template <class E>
struct EnumName {
  std::string_view name;
  E value;
};

constexpr std::array<EnumName<LogLevel>, 4> kLogLevels{{{"error", LogLevel::Error},
                                                        {"warn", LogLevel::Warn},
                                                        {"info", LogLevel::Info},
                                                        {"debug", LogLevel::Debug}}};
constexpr std::array<EnumName<LogFormat>, 2> kLogFormats{
    {{"text", LogFormat::Text}, {"json", LogFormat::Json}}};
constexpr std::array<EnumName<ListenerTls>, 3> kListenerTls{{{"none", ListenerTls::None},
                                                             {"starttls", ListenerTls::StartTls},
                                                             {"implicit", ListenerTls::Implicit}}};
constexpr std::array<EnumName<UpstreamTls>, 3> kUpstreamTls{{{"implicit", UpstreamTls::Implicit},
                                                             {"starttls", UpstreamTls::StartTls},
                                                             {"none", UpstreamTls::None}}};
constexpr std::array<EnumName<DeletePolicy>, 5> kDeletePolicies{{{"flag", DeletePolicy::Flag},
                                                                 {"expunge", DeletePolicy::Expunge},
                                                                 {"move", DeletePolicy::Move},
                                                                 {"seen", DeletePolicy::Seen},
                                                                 {"keep", DeletePolicy::Keep}}};
constexpr std::array<EnumName<TlsVersion>, 4> kTlsVersions{{{"1.0", TlsVersion::V1_0},
                                                            {"1.1", TlsVersion::V1_1},
                                                            {"1.2", TlsVersion::V1_2},
                                                            {"1.3", TlsVersion::V1_3}}};
constexpr std::array<EnumName<UpstreamAuth>, 3> kUpstreamAuth{
    {{"auto", UpstreamAuth::Auto}, {"login", UpstreamAuth::Login}, {"plain", UpstreamAuth::Plain}}};

template <class E, std::size_t N>
std::string_view nameOf(const std::array<EnumName<E>, N>& names, E value) {
  for (const auto& entry : names) {
    if (entry.value == value) return entry.name;
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// The schema: every key each table accepts. Unknown keys are errors, with a suggestion.

constexpr std::array<std::string_view, 5> kRootKeys{"server", "listener", "upstream", "mailbox",
                                                    "account"};
constexpr std::array<std::string_view, 11> kServerKeys{
    "workers",          "idle_timeout", "max_connections",     "max_connections_per_ip",
    "log_level",        "log_format",   "max_bad_commands",    "auth_failure_delay",
    "shutdown_timeout", "buffer_size",  "write_high_watermark"};
constexpr std::array<std::string_view, 7> kListenerKeys{"address",          "tls",
                                                        "certificate",      "private_key",
                                                        "min_tls_version",  "allow_plaintext_auth",
                                                        "handshake_timeout"};
constexpr std::array<std::string_view, 10> kUpstreamKeys{"host",
                                                         "port",
                                                         "tls",
                                                         "ca_file",
                                                         "verify_certificate",
                                                         "server_name",
                                                         "connect_timeout",
                                                         "command_timeout",
                                                         "auth",
                                                         "min_tls_version"};
constexpr std::array<std::string_view, 6> kMailboxKeys{
    "folder", "on_delete", "move_to", "mark_seen_on_retr", "uidl_format", "max_messages"};
constexpr std::array<std::string_view, 10> kAccountKeys{
    "user",        "password_hash", "upstream_user", "upstream_password_file",
    "folder",      "on_delete",     "move_to",       "mark_seen_on_retr",
    "uidl_format", "max_messages"};

// ---------------------------------------------------------------------------------------------
// Small text helpers.

// Quotes a value for an error message; control bytes are escaped and long values shortened.
std::string quote(std::string_view text) {
  static constexpr std::size_t kMaxShown = 80;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMaxShown) out += "...";
  out += '"';
  return out;
}

// How a TOML value appears in "got ..." of an error message.
std::string describe(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return quote(node.as_string()->get());
    case toml::node_type::integer:
      return std::to_string(node.as_integer()->get());
    case toml::node_type::floating_point: {
      std::string text = std::to_string(node.as_floating_point()->get());
      // std::to_string prints 6 decimals; trim them for readability ("1.5", not "1.500000").
      while (text.size() > 1 && text.back() == '0') text.pop_back();
      if (!text.empty() && text.back() == '.') text.pop_back();
      return "the float " + text;
    }
    case toml::node_type::boolean:
      return node.as_boolean()->get() ? "true" : "false";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

template <class E, std::size_t N>
std::string oneOf(const std::array<EnumName<E>, N>& names) {
  std::string out = "one of ";
  for (std::size_t i = 0; i < N; ++i) {
    if (i > 0) out += ", ";
    out += names[i].name;
  }
  return out;
}

std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

bool hasControlCharacters(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7F;
  });
}

std::string errnoText(int error) {
  return std::strerror(error);
}

// ---------------------------------------------------------------------------------------------
// Addresses and files.

enum class IpKind { None, V4, V6 };

IpKind ipKind(const std::string& text, std::array<unsigned char, 16>* bytes = nullptr) {
  std::array<unsigned char, 16> buffer{};
  if (::inet_pton(AF_INET, text.c_str(), buffer.data()) == 1) {
    if (bytes) *bytes = buffer;
    return IpKind::V4;
  }
  if (::inet_pton(AF_INET6, text.c_str(), buffer.data()) == 1) {
    if (bytes) *bytes = buffer;
    return IpKind::V6;
  }
  return IpKind::None;
}

bool isLoopbackIp(const std::string& host) {
  std::array<unsigned char, 16> bytes{};
  switch (ipKind(host, &bytes)) {
    case IpKind::V4:
      return bytes[0] == 127;
    case IpKind::V6: {
      static constexpr std::array<unsigned char, 16> kLoopback{0, 0, 0, 0, 0, 0, 0, 0,
                                                               0, 0, 0, 0, 0, 0, 0, 1};
      static constexpr std::array<unsigned char, 12> kMappedPrefix{0, 0, 0, 0,    0,
                                                                   0, 0, 0, 0xFF, 0xFF};
      if (bytes == kLoopback) return true;
      // ::ffff:127.x.y.z
      return std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), bytes.begin()) &&
             bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127;
    }
    case IpKind::None:
      break;
  }
  return false;
}

bool isLoopbackHost(const std::string& host) {
  std::string lower = host;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower == "localhost" || lower == "localhost." || isLoopbackIp(host);
}

// "1.2.3.4:110" or "[::1]:995". On failure `error` is the full message.
bool parseListenAddress(std::string_view text, std::string& host, std::uint16_t& port,
                        std::string& error) {
  const std::string shape =
      "expected \"IPv4:port\" or \"[IPv6]:port\" such as \"0.0.0.0:110\" or \"[::]:995\", got " +
      quote(text);
  std::string_view portText;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = shape;
      return false;
    }
    host = std::string(text.substr(1, close - 1));
    portText = text.substr(close + 2);
    if (ipKind(host) != IpKind::V6) {
      error = quote(host) + " is not an IPv6 address (a listener binds to a literal IP)";
      return false;
    }
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      error = shape;
      return false;
    }
    host = std::string(text.substr(0, colon));
    portText = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      error = shape + " (write IPv6 addresses in brackets, e.g. \"[::]:995\")";
      return false;
    }
    if (ipKind(host) != IpKind::V4) {
      error = quote(host) +
              " is not an IPv4 address (a listener binds to a literal IP, e.g. \"0.0.0.0:110\")";
      return false;
    }
  }
  unsigned long value = 0;
  bool digits = !portText.empty() && portText.size() <= 5;
  for (char c : portText) {
    digits = digits && c >= '0' && c <= '9';
    if (digits) value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  if (!digits || value < 1 || value > 65535) {
    error = "expected a port between 1 and 65535 after the address, got " + quote(portText);
    return false;
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}

// A DNS name or an IP literal; brackets around IPv6 are accepted and removed.
bool normalizeHost(std::string& host, std::string& error) {
  std::string candidate = host;
  if (candidate.size() >= 2 && candidate.front() == '[' && candidate.back() == ']') {
    candidate = candidate.substr(1, candidate.size() - 2);
    if (ipKind(candidate) != IpKind::V6) {
      error = "expected a host name or IP address such as \"imap.example.com\", got " + quote(host);
      return false;
    }
    host = candidate;
    return true;
  }
  if (candidate.find(':') != std::string::npos) {
    if (ipKind(candidate) == IpKind::V6) return true;
    error = "expected a host name or IP address such as \"imap.example.com\", got " + quote(host) +
            " (the port is a separate key)";
    return false;
  }
  const bool valid = !candidate.empty() && candidate.size() <= kMaxHostLength &&
                     std::all_of(candidate.begin(), candidate.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
                     });
  if (!valid) {
    error = "expected a host name or IP address such as \"imap.example.com\", got " + quote(host);
    return false;
  }
  return true;
}

// Opens the file to prove it is readable now, rather than failing at the first connection.
bool checkReadable(const std::string& path, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot read " + quote(path) + ": " + errnoText(errno);
    return false;
  }
  struct stat info {};
  const bool isDirectory = ::fstat(fd, &info) == 0 && S_ISDIR(info.st_mode);
  ::close(fd);
  if (isDirectory) {
    error = "cannot read " + quote(path) + ": it is a directory";
    return false;
  }
  return true;
}

// Reads a whole small file. Returns false with `error` set when it cannot or it is too large.
bool readSmallFile(const std::string& path, std::size_t limit, std::string& out,
                   std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot read " + quote(path) + ": " + errnoText(errno);
    return false;
  }
  out.clear();
  std::array<char, 8192> buffer;
  bool ok = true;
  while (true) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      error = "cannot read " + quote(path) + ": " + errnoText(errno);
      ok = false;
      break;
    }
    if (n == 0) break;
    out.append(buffer.data(), static_cast<std::size_t>(n));
    if (out.size() > limit) {
      error = quote(path) + " is larger than " + std::to_string(limit) + " bytes";
      ok = false;
      break;
    }
  }
  ::close(fd);
  return ok;
}

// ---------------------------------------------------------------------------------------------
// The loader.

struct Position {
  std::string file;
  std::uint32_t line = 0;
  std::uint32_t column = 0;
};

enum class Read { Absent, Ok, Invalid };

class Loader;

// Reads the keys of one TOML table, remembering which were consumed so that the rest can be
// reported as unknown.
class TableReader {
 public:
  TableReader(Loader& loader, const toml::table* table, std::string path,
              std::span<const std::string_view> keys, const toml::node* tableNode)
      : loader_(loader), table_(table), path_(std::move(path)), keys_(keys), node_(tableNode) {}

  std::string keyPath(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  const std::string& path() const { return path_; }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  const toml::node* find(std::string_view key) const { return table_ ? table_->get(key) : nullptr; }

  // Where the key's value was set; the table header when the key is absent.
  Position positionOf(std::string_view key) const;
  Position tablePosition() const;

  void error(std::string_view key, std::string message) const;
  void warn(std::string_view key, std::string message) const;
  // Reported at the table header: for keys that are required but absent.
  void errorAtTable(std::string_view key, std::string message) const;

  Read readString(std::string_view key, std::string& out) const;
  Read readBool(std::string_view key, bool& out) const;
  template <class T>
  Read readInteger(std::string_view key, std::int64_t min, std::int64_t max, T& out) const;
  Read readDuration(std::string_view key, Duration min, Duration max, Duration& out) const;
  template <class E, std::size_t N>
  Read readEnum(std::string_view key, const std::array<EnumName<E>, N>& names, E& out) const;

  void reportUnknownKeys() const;

 private:
  void typeError(std::string_view key, const toml::node& node, std::string_view expected) const;

  Loader& loader_;
  const toml::table* table_;
  std::string path_;
  std::span<const std::string_view> keys_;
  const toml::node* node_;
};

class Loader {
 public:
  Loader(std::string_view sourceName, std::string baseDir, const Environment& env)
      : source_(sourceName), baseDir_(std::move(baseDir)), env_(env) {}

  LoadResult load(std::string_view text);
  const std::string& source() const { return source_; }

  Position position(const std::string& keyPath, const toml::source_region& region) const {
    if (auto it = overrides_.find(keyPath); it != overrides_.end()) return {it->second, 0, 0};
    return {source_, region.begin.line, region.begin.column};
  }
  Position tablePosition(const toml::node* node) const {
    if (node == nullptr) return {source_, 0, 0};
    return {source_, node->source().begin.line, node->source().begin.column};
  }
  void error(Position at, std::string keyPath, std::string message) {
    errors_.push_back(
        {std::move(at.file), at.line, at.column, std::move(keyPath), std::move(message)});
  }
  void warn(Position at, std::string keyPath, std::string message) {
    warnings_.push_back(
        {std::move(at.file), at.line, at.column, std::move(keyPath), std::move(message)});
  }
  std::string resolvePath(const std::string& path) const {
    if (path.empty() || baseDir_.empty() || path.front() == '/') return path;
    return (std::filesystem::path(baseDir_) / path).lexically_normal().string();
  }

 private:
  void applyEnvironment(toml::table& root);
  void readServer(const TableReader& root, ServerConfig& server);
  void readListeners(const toml::table& root, std::vector<ListenerConfig>& listeners);
  void readListener(const TableReader& reader, ListenerConfig& listener);
  void readUpstream(const TableReader& root, UpstreamConfig& upstream);
  // Reads the [mailbox] keys present in `reader` over `mailbox`, then checks the combination.
  void readMailboxKeys(const TableReader& reader, MailboxConfig& mailbox);
  void readAccounts(const toml::table& root, const MailboxConfig& defaults,
                    std::vector<AccountConfig>& accounts);
  void readAccount(const TableReader& reader, AccountConfig& account);
  void readPath(const TableReader& reader, std::string_view key, std::string& out);

  std::string source_;
  std::string baseDir_;
  const Environment& env_;
  std::map<std::string, std::string> overrides_;  // key path -> environment variable
  std::vector<ConfigError> errors_;
  std::vector<ConfigError> warnings_;
};

Position TableReader::positionOf(std::string_view key) const {
  if (const toml::node* node = find(key)) return loader_.position(keyPath(key), node->source());
  return tablePosition();
}

Position TableReader::tablePosition() const {
  return loader_.tablePosition(node_);
}

void TableReader::error(std::string_view key, std::string message) const {
  loader_.error(positionOf(key), keyPath(key), std::move(message));
}

void TableReader::warn(std::string_view key, std::string message) const {
  loader_.warn(positionOf(key), keyPath(key), std::move(message));
}

void TableReader::errorAtTable(std::string_view key, std::string message) const {
  loader_.error(tablePosition(), keyPath(key), std::move(message));
}

void TableReader::typeError(std::string_view key, const toml::node& node,
                            std::string_view expected) const {
  error(key, "expected " + std::string(expected) + ", got " + describe(node));
}

Read TableReader::readString(std::string_view key, std::string& out) const {
  const toml::node* node = find(key);
  if (node == nullptr) return Read::Absent;
  if (!node->is_string()) {
    typeError(key, *node, "a string");
    return Read::Invalid;
  }
  out = node->as_string()->get();
  return Read::Ok;
}

Read TableReader::readBool(std::string_view key, bool& out) const {
  const toml::node* node = find(key);
  if (node == nullptr) return Read::Absent;
  if (!node->is_boolean()) {
    std::string hint;
    if (node->is_string() &&
        (node->as_string()->get() == "true" || node->as_string()->get() == "false")) {
      hint = " (remove the quotes)";
    }
    error(key, "expected true or false, got " + describe(*node) + hint);
    return Read::Invalid;
  }
  out = node->as_boolean()->get();
  return Read::Ok;
}

template <class T>
Read TableReader::readInteger(std::string_view key, std::int64_t min, std::int64_t max,
                              T& out) const {
  const toml::node* node = find(key);
  if (node == nullptr) return Read::Absent;
  const std::string expected =
      "an integer between " + std::to_string(min) + " and " + std::to_string(max);
  if (!node->is_integer()) {
    std::string hint;
    if (node->is_string()) {
      const std::string& text = node->as_string()->get();
      if (!text.empty() &&
          std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        hint = " (remove the quotes)";
      }
    }
    error(key, "expected " + expected + ", got " + describe(*node) + hint);
    return Read::Invalid;
  }
  const std::int64_t value = node->as_integer()->get();
  if (value < min || value > max) {
    error(key, "expected " + expected + ", got " + std::to_string(value));
    return Read::Invalid;
  }
  out = static_cast<T>(value);
  return Read::Ok;
}

Read TableReader::readDuration(std::string_view key, Duration min, Duration max,
                               Duration& out) const {
  const toml::node* node = find(key);
  if (node == nullptr) return Read::Absent;
  if (!node->is_string()) {
    std::string hint;
    if (node->is_integer()) {
      hint = " (write it as a string with a unit, e.g. \"" +
             std::to_string(node->as_integer()->get()) + "s\")";
    }
    error(key, "expected " + std::string(kDurationExamples) + ", got " + describe(*node) + hint);
    return Read::Invalid;
  }
  const std::string& text = node->as_string()->get();
  std::string problem;
  const auto value = parseDuration(text, problem);
  if (!value) {
    error(key, problem);
    return Read::Invalid;
  }
  if (*value < min || *value > max) {
    error(key, "expected a duration between " + formatDuration(min) + " and " +
                   formatDuration(max) + ", got " + quote(text));
    return Read::Invalid;
  }
  out = *value;
  return Read::Ok;
}

template <class E, std::size_t N>
Read TableReader::readEnum(std::string_view key, const std::array<EnumName<E>, N>& names,
                           E& out) const {
  const toml::node* node = find(key);
  if (node == nullptr) return Read::Absent;
  if (node->is_string()) {
    const std::string& text = node->as_string()->get();
    for (const auto& entry : names) {
      if (entry.name == text) {
        out = entry.value;
        return Read::Ok;
      }
    }
  }
  error(key, "expected " + oneOf(names) + ", got " + describe(*node));
  return Read::Invalid;
}

void TableReader::reportUnknownKeys() const {
  if (table_ == nullptr) return;
  for (auto&& [key, value] : *table_) {
    const std::string_view name = key.str();
    if (std::find(keys_.begin(), keys_.end(), name) != keys_.end()) continue;
    std::string message = "unknown key";
    if (name == "password" || name == "upstream_password") {
      // A clear-text password in the config is exactly what the file format avoids.
      message +=
          "; passwords are not written in the config: use password_hash (from `popbridge "
          "hash-password`) or upstream_password_file";
    } else {
      std::string_view best;
      std::size_t bestDistance = 3;  // suggest only close matches
      for (std::string_view candidate : keys_) {
        const std::size_t distance = editDistance(name, candidate);
        if (distance < bestDistance) {
          bestDistance = distance;
          best = candidate;
        }
      }
      if (!best.empty()) message += " (did you mean " + std::string(best) + "?)";
    }
    Position at{loader_.source(), key.source().begin.line, key.source().begin.column};
    loader_.error(at, keyPath(name), std::move(message));
  }
}

// ---------------------------------------------------------------------------------------------

void Loader::applyEnvironment(toml::table& root) {
  struct Override {
    std::string_view variable;
    std::string_view table;
    std::string_view key;
    bool integer;
  };
  static constexpr std::array<Override, 9> kOverrides{{
      {"POPBRIDGE_UPSTREAM_HOST", "upstream", "host", false},
      {"POPBRIDGE_UPSTREAM_PORT", "upstream", "port", true},
      {"POPBRIDGE_UPSTREAM_TLS", "upstream", "tls", false},
      {"POPBRIDGE_UPSTREAM_CA_FILE", "upstream", "ca_file", false},
      {"POPBRIDGE_UPSTREAM_SERVER_NAME", "upstream", "server_name", false},
      {"POPBRIDGE_LOG_LEVEL", "server", "log_level", false},
      {"POPBRIDGE_LOG_FORMAT", "server", "log_format", false},
      {"POPBRIDGE_MAILBOX_FOLDER", "mailbox", "folder", false},
      {"POPBRIDGE_MAILBOX_ON_DELETE", "mailbox", "on_delete", false},
  }};
  // A misspelt variable would otherwise be ignored without a trace.
  static constexpr std::string_view kPrefix = "POPBRIDGE_";
  for (const auto& variable : env_) {
    const std::string& name = variable.first;
    if (name.compare(0, kPrefix.size(), kPrefix) != 0) continue;
    const auto known = std::find_if(kOverrides.begin(), kOverrides.end(),
                                    [&](const Override& o) { return o.variable == name; });
    if (known != kOverrides.end()) continue;
    std::string message = "unknown environment variable, ignored";
    for (const Override& o : kOverrides) {
      if (editDistance(name, o.variable) <= 2) {
        message += " (did you mean " + std::string(o.variable) + "?)";
        break;
      }
    }
    warn({name, 0, 0}, "", std::move(message));
  }

  for (const Override& entry : kOverrides) {
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
    overrides_[keyPath] = std::string(entry.variable);
    if (entry.integer) {
      // Environment values are text; the port is the one integer key among the overrides.
      std::int64_t number = 0;
      bool digits = !value.empty() && value.size() <= 9;
      for (char c : value) {
        digits = digits && c >= '0' && c <= '9';
        if (digits) number = number * 10 + (c - '0');
      }
      if (!digits) {
        error({std::string(entry.variable), 0, 0}, keyPath,
              "expected an integer between 1 and 65535, got " + quote(value));
        table->erase(entry.key);  // the file's value must not be reported a second time
        continue;
      }
      table->insert_or_assign(entry.key, number);
    } else {
      table->insert_or_assign(entry.key, value);
    }
  }
}

void Loader::readPath(const TableReader& reader, std::string_view key, std::string& out) {
  // Relative paths from the environment stay relative to the working directory, like any
  // other command-line path; only the file's own paths follow the file.
  if (reader.readString(key, out) == Read::Ok && overrides_.count(reader.keyPath(key)) == 0) {
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
  TableReader reader(*this, node->as_table(), "server", kServerKeys, node);
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
  reader.readEnum("log_level", kLogLevels, server.logLevel);
  reader.readEnum("log_format", kLogFormats, server.logFormat);
  reader.readInteger("max_bad_commands", 1, 1000, server.maxBadCommands);
  reader.readDuration("auth_failure_delay", Duration::zero(), std::chrono::minutes(1),
                      server.authFailureDelay);
  reader.readDuration("shutdown_timeout", Duration::zero(), std::chrono::hours(1),
                      server.shutdownTimeout);
  reader.readInteger("buffer_size", 4096, 16 * 1024 * 1024, server.bufferSize);
  reader.readInteger("write_high_watermark", 4096, 1024 * 1024 * 1024, server.writeHighWatermark);
  reader.reportUnknownKeys();
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
  const Read tls = reader.readEnum("tls", kListenerTls, listener.tls);
  readPath(reader, "certificate", listener.certificate);
  readPath(reader, "private_key", listener.privateKey);
  reader.readEnum("min_tls_version", kTlsVersions, listener.minTlsVersion);
  reader.readBool("allow_plaintext_auth", listener.allowPlaintextAuth);
  reader.readDuration("handshake_timeout", std::chrono::seconds(1), std::chrono::minutes(10),
                      listener.handshakeTimeout);
  reader.reportUnknownKeys();

  if (tls == Read::Invalid) return;  // the TLS checks below would only add noise
  const std::string tlsClause = "when tls = \"" + std::string(toString(listener.tls)) + "\"" +
                                (tls == Read::Absent ? " (the default)" : "");
  if (listener.tls == ListenerTls::None) {
    for (std::string_view key : {"certificate", "private_key"}) {
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
      !isLoopbackIp(listener.host)) {
    reader.warn("allow_plaintext_auth",
                "passwords may cross the network in clear text on " + listener.address);
  }
}

void Loader::readListeners(const toml::table& root, std::vector<ListenerConfig>& listeners) {
  const toml::node* node = root.get("listener");
  if (node == nullptr) {
    error({source_, 0, 0}, "listener",
          "at least one [[listener]] is required, e.g. address = \"0.0.0.0:110\"");
    return;
  }
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    error(position("listener", node->source()), "listener",
          "expected an array of tables ([[listener]]), got " + describe(*node));
    return;
  }
  if (array->empty()) {
    error(position("listener", node->source()), "listener",
          "at least one [[listener]] is required, e.g. address = \"0.0.0.0:110\"");
    return;
  }
  std::map<std::pair<std::string, std::uint16_t>, std::size_t> seen;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const std::string path = "listener[" + std::to_string(i) + "]";
    if (!element.is_table()) {
      error(position(path, element.source()), path,
            "expected a table ([[listener]]), got " + describe(element));
      continue;
    }
    TableReader reader(*this, element.as_table(), path, kListenerKeys, &element);
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
  }
}

void Loader::readUpstream(const TableReader& root, UpstreamConfig& upstream) {
  const toml::node* node = root.find("upstream");
  if (node == nullptr) {
    error({source_, 0, 0}, "upstream.host",
          "required: add an [upstream] table with host = \"imap.example.com\" (or set "
          "POPBRIDGE_UPSTREAM_HOST)");
    return;
  }
  if (!node->is_table()) {
    root.error("upstream", "expected a table ([upstream]), got " + describe(*node));
    return;
  }
  TableReader reader(*this, node->as_table(), "upstream", kUpstreamKeys, node);
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
  const Read tls = reader.readEnum("tls", kUpstreamTls, upstream.tls);
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
  reader.readEnum("auth", kUpstreamAuth, upstream.auth);
  reader.readEnum("min_tls_version", kTlsVersions, upstream.minTlsVersion);
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

void Loader::readMailboxKeys(const TableReader& reader, MailboxConfig& mailbox) {
  auto checkFolder = [&](std::string_view key, const std::string& value) {
    if (value.empty()) {
      reader.error(key, "must not be empty");
    } else if (hasControlCharacters(value)) {
      reader.error(key, "must not contain control characters, got " + quote(value));
    } else if (value.size() > kMaxFolderLength) {
      reader.error(key, "must be at most " + std::to_string(kMaxFolderLength) + " bytes");
    }
  };
  if (reader.readString("folder", mailbox.folder) == Read::Ok) {
    checkFolder("folder", mailbox.folder);
  }
  const Read onDelete = reader.readEnum("on_delete", kDeletePolicies, mailbox.onDelete);
  const Read moveTo = reader.readString("move_to", mailbox.moveTo);
  if (moveTo == Read::Ok && !mailbox.moveTo.empty()) checkFolder("move_to", mailbox.moveTo);
  reader.readBool("mark_seen_on_retr", mailbox.markSeenOnRetr);
  if (reader.readString("uidl_format", mailbox.uidlFormat) == Read::Ok) {
    std::string problem;
    const auto format = protocol::UidlFormat::parse(mailbox.uidlFormat, problem);
    if (!format) {
      reader.error("uidl_format", problem);
    } else if (!format->usesUidValidity()) {
      reader.warn("uidl_format",
                  "without %v a UIDVALIDITY change can give new messages the UIDLs of old ones, "
                  "and clients may then skip or delete the wrong mail");
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
                 std::any_of(account.user.begin(), account.user.end(), [](char c) {
                   const auto u = static_cast<unsigned char>(c);
                   return u <= 0x20 || u == 0x7F;
                 })) {
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

void Loader::readAccounts(const toml::table& root, const MailboxConfig& defaults,
                          std::vector<AccountConfig>& accounts) {
  const toml::node* node = root.get("account");
  if (node == nullptr) return;
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    error(position("account", node->source()), "account",
          "expected an array of tables ([[account]]), got " + describe(*node));
    return;
  }
  std::map<std::string, std::size_t> users;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const std::string path = "account[" + std::to_string(i) + "]";
    if (!element.is_table()) {
      error(position(path, element.source()), path,
            "expected a table ([[account]]), got " + describe(element));
      continue;
    }
    TableReader reader(*this, element.as_table(), path, kAccountKeys, &element);
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
  }
}

LoadResult Loader::load(std::string_view text) {
  LoadResult result;
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(source_));
  } catch (const toml::parse_error& e) {
    result.errors.push_back({source_, e.source().begin.line, e.source().begin.column, "",
                             "TOML syntax error: " + std::string(e.description())});
    return result;
  }

  applyEnvironment(root);
  Config config;
  TableReader rootReader(*this, &root, "", kRootKeys, nullptr);
  readServer(rootReader, config.server);
  readListeners(root, config.listeners);
  readUpstream(rootReader, config.upstream);
  if (const toml::node* node = root.get("mailbox")) {
    if (node->is_table()) {
      TableReader reader(*this, node->as_table(), "mailbox", kMailboxKeys, node);
      readMailboxKeys(reader, config.mailbox);
      reader.reportUnknownKeys();
    } else {
      rootReader.error("mailbox", "expected a table ([mailbox]), got " + describe(*node));
    }
  }
  readAccounts(root, config.mailbox, config.accounts);
  rootReader.reportUnknownKeys();

  // Report in file order, whatever order the checks ran in; unpositioned problems last.
  auto byPosition = [](const ConfigError& a, const ConfigError& b) {
    const bool aPlaced = a.line != 0, bPlaced = b.line != 0;
    if (aPlaced != bPlaced) return aPlaced;
    if (!aPlaced) return false;
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  };
  std::stable_sort(errors_.begin(), errors_.end(), byPosition);
  std::stable_sort(warnings_.begin(), warnings_.end(), byPosition);
  result.errors = std::move(errors_);
  for (const ConfigError& warning : warnings_) result.warnings.push_back(warning.toString());
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
                            const Environment& env) {
  try {
    Loader loader(sourceName, "", env);
    return loader.load(toml);
  } catch (const std::exception& e) {
    // Only allocation failures can get here; the API promises not to throw.
    LoadResult result;
    result.errors.push_back(
        {std::string(sourceName), 0, 0, "", "internal error: " + std::string(e.what())});
    return result;
  }
}

LoadResult loadConfigFile(const std::string& path, const Environment& env) {
  try {
    std::string text;
    std::string problem;
    if (!readSmallFile(path, kMaxConfigFileBytes, text, problem)) {
      LoadResult result;
      result.errors.push_back({path, 0, 0, "", problem});
      return result;
    }
    Loader loader(path, std::filesystem::path(path).parent_path().string(), env);
    return loader.load(text);
  } catch (const std::exception& e) {
    LoadResult result;
    result.errors.push_back({path, 0, 0, "", "internal error: " + std::string(e.what())});
    return result;
  }
}

std::string_view toString(LogLevel value) {
  return nameOf(kLogLevels, value);
}
std::string_view toString(LogFormat value) {
  return nameOf(kLogFormats, value);
}
std::string_view toString(ListenerTls value) {
  return nameOf(kListenerTls, value);
}
std::string_view toString(UpstreamTls value) {
  return nameOf(kUpstreamTls, value);
}
std::string_view toString(DeletePolicy value) {
  return nameOf(kDeletePolicies, value);
}
std::string_view toString(TlsVersion value) {
  return nameOf(kTlsVersions, value);
}
std::string_view toString(UpstreamAuth value) {
  return nameOf(kUpstreamAuth, value);
}

namespace {

std::string yesNo(bool value) {
  return value ? "true" : "false";
}

std::string summarizeMailbox(const MailboxConfig& mailbox) {
  std::string out =
      "folder=" + quote(mailbox.folder) + " on_delete=" + std::string(toString(mailbox.onDelete));
  if (mailbox.onDelete == DeletePolicy::Move) out += " move_to=" + quote(mailbox.moveTo);
  out += " mark_seen_on_retr=" + yesNo(mailbox.markSeenOnRetr);
  out += " uidl_format=" + quote(mailbox.uidlFormat);
  out += " max_messages=" +
         (mailbox.maxMessages == 0 ? std::string("0 (all)") : std::to_string(mailbox.maxMessages));
  return out;
}

}  // namespace

std::string summarize(const Config& config) {
  const ServerConfig& s = config.server;
  std::string out;
  out += "server: workers=" +
         (s.workers == 0 ? std::string("0 (one per core)") : std::to_string(s.workers));
  out += " idle_timeout=" + formatDuration(s.idleTimeout);
  out += " max_connections=" + std::to_string(s.maxConnections);
  out += " max_connections_per_ip=" + (s.maxConnectionsPerIp == 0
                                           ? std::string("0 (unlimited)")
                                           : std::to_string(s.maxConnectionsPerIp));
  out += " log_level=" + std::string(toString(s.logLevel));
  out += " log_format=" + std::string(toString(s.logFormat));
  out += " max_bad_commands=" + std::to_string(s.maxBadCommands);
  out += " auth_failure_delay=" + formatDuration(s.authFailureDelay);
  out += " shutdown_timeout=" + formatDuration(s.shutdownTimeout);
  out += " buffer_size=" + std::to_string(s.bufferSize);
  out += " write_high_watermark=" + std::to_string(s.writeHighWatermark) + "\n";

  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& l = config.listeners[i];
    out += "listener[" + std::to_string(i) + "]: " + l.address +
           " tls=" + std::string(toString(l.tls));
    if (l.tls != ListenerTls::None) {
      out += " certificate=" + quote(l.certificate) + " private_key=" + quote(l.privateKey) +
             " min_tls_version=" + std::string(toString(l.minTlsVersion)) +
             " handshake_timeout=" + formatDuration(l.handshakeTimeout);
    }
    out += " allow_plaintext_auth=" + yesNo(l.allowPlaintextAuth) + "\n";
  }

  const UpstreamConfig& u = config.upstream;
  const bool ipv6 = u.host.find(':') != std::string::npos;
  out += "upstream: " + (ipv6 ? "[" + u.host + "]" : u.host) + ":" + std::to_string(u.port) +
         " tls=" + std::string(toString(u.tls));
  if (u.tls != UpstreamTls::None) {
    out += " server_name=" + quote(u.effectiveServerName()) +
           " verify_certificate=" + yesNo(u.verifyCertificate) +
           " ca_file=" + (u.caFile.empty() ? std::string("(system bundle)") : quote(u.caFile)) +
           " min_tls_version=" + std::string(toString(u.minTlsVersion));
  }
  out += " auth=" + std::string(toString(u.auth));
  out += " connect_timeout=" + formatDuration(u.connectTimeout);
  out += " command_timeout=" + formatDuration(u.commandTimeout) + "\n";

  out += "mailbox: " + summarizeMailbox(config.mailbox) + "\n";

  if (config.accounts.empty()) {
    out += "accounts: none (logins are passed through to the upstream)\n";
  }
  for (std::size_t i = 0; i < config.accounts.size(); ++i) {
    const AccountConfig& a = config.accounts[i];
    // The password hash and the upstream password are deliberately left out.
    out += "account[" + std::to_string(i) + "]: user=" + quote(a.user) +
           " upstream_user=" + quote(a.upstreamUser) +
           " upstream_password_file=" + quote(a.upstreamPasswordFile) + " " +
           summarizeMailbox(a.mailbox) + "\n";
  }
  return out;
}

}  // namespace popbridge::config
