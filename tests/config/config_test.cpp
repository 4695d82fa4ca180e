#include "config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

namespace popbridge::config {
namespace {

using namespace std::chrono_literals;

// A syntactically valid argon2 hash (the example config's "change-me"); loading never runs it.
const std::string kHash =
    "$argon2id$v=19$m=19456,t=2,p=1$+x9QXnwAcOfqGkQ7CoKktA$"
    "6emEGL+kJSEP8bRjp2ps2/5UgClj/+kc67wGDv9ktgw";

// Four lines: a loopback cleartext listener that needs no files and gives no warnings.
const std::string kListenerOnly =
    "[[listener]]\n"
    "address = \"127.0.0.1:1100\"\n"
    "tls = \"none\"\n"
    "allow_plaintext_auth = true\n";
// Three lines: a loopback cleartext upstream that gives no warnings.
const std::string kUpstreamOnly =
    "[upstream]\n"
    "host = \"127.0.0.1\"\n"
    "tls = \"none\"\n";
const std::string kMinimal = kListenerOnly + kUpstreamOnly;

// Five lines; the password file exists in every test's directory.
std::string account(const std::string& user) {
  return "[[account]]\n"
         "user = \"" +
         user +
         "\"\n"
         "password_hash = \"" +
         kHash +
         "\"\n"
         "upstream_user = \"" +
         user +
         "@example.com\"\n"
         "upstream_password_file = \"@DIR@/secret\"\n";
}

std::string replaceAll(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "popbridge-config-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const {
    const std::filesystem::path file = std::filesystem::path(path_) / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << content;
    return file.string();
  }

 private:
  std::string path_;
};

class ConfigTest : public ::testing::Test {
 protected:
  ConfigTest() {
    dir_.write("cert.pem", "-----BEGIN CERTIFICATE-----\n");
    dir_.write("key.pem", "-----BEGIN PRIVATE KEY-----\n");
    dir_.write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    dir_.write("secret", "s3cret pass\n");
    dir_.write("empty-secret", "\n");
    dir_.write("two-line-secret", "first\nsecond\n");
  }

  std::string withDir(const std::string& text) const {
    return replaceAll(text, "@DIR@", dir_.path());
  }

  LoadResult load(const std::string& text, const Environment& env = {}) const {
    return loadConfigString(withDir(text), "t.toml", env);
  }

  static std::vector<std::string> errorsOf(const LoadResult& result) {
    std::vector<std::string> out;
    for (const ConfigError& error : result.errors) out.push_back(error.toString());
    return out;
  }

  TempDir dir_;
};

// ---------------------------------------------------------------------------------------------
// One bad config per error class, with the exact message.

struct ErrorCase {
  std::string name;
  std::string toml;
  std::vector<std::string> errors;  // "@DIR@" stands for the test's directory
};

// Shown by gtest in test listings and failures instead of the parameter's bytes.
void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << c.name;
}

class ConfigErrors : public ConfigTest, public ::testing::WithParamInterface<ErrorCase> {};

TEST_P(ConfigErrors, ReportsExactlyTheseErrors) {
  const ErrorCase& c = GetParam();
  const LoadResult result = load(c.toml);
  EXPECT_FALSE(result.ok());
  EXPECT_FALSE(result.config.has_value());
  std::vector<std::string> expected;
  for (const std::string& error : c.errors) expected.push_back(withDir(error));
  EXPECT_EQ(errorsOf(result), expected);
}

const std::string kDurationText =
    "expected a duration like \"500ms\", \"30s\", \"10m\", \"1h\" or \"1h30m\", got ";
const std::string kHashShape =
    "expected an argon2 hash like \"$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>\" as printed by "
    "`popbridge hash-password`";
const std::string kAddressShape =
    "expected \"IPv4:port\" or \"[IPv6]:port\" such as \"0.0.0.0:110\" or \"[::]:995\", got ";

std::string listenerWith(const std::string& lines) {
  return "[[listener]]\n" + lines + kUpstreamOnly;
}
std::string upstreamWith(const std::string& lines) {
  return kListenerOnly + "[upstream]\n" + lines;
}

const ErrorCase kErrorCases[] = {
    // TOML itself.
    {"SyntaxError",
     "[server]\nworkers = \n" + kMinimal,
     {"t.toml:2:11: TOML syntax error: Error while parsing key-value pair: expected value, saw "
      "'\\n'"}},
    {"DuplicateKey",
     "[server]\nworkers = 1\nworkers = 2\n" + kMinimal,
     {"t.toml:3:11: TOML syntax error: Error while parsing key-value pair: cannot redefine "
      "existing integer 'workers'"}},
    // Unknown keys, everywhere.
    {"UnknownServerKey",
     "[server]\nworkrs = 2\n" + kMinimal,
     {"t.toml:2:1: server.workrs: unknown key (did you mean workers?)"}},
    {"UnknownTable",
     "[listners]\n" + kMinimal,
     {"t.toml:1:2: listners: unknown key (did you mean listener?)"}},
    {"UnknownListenerKey",
     kListenerOnly + "backlog = 5\n" + kUpstreamOnly,
     {"t.toml:5:1: listener[0].backlog: unknown key"}},
    {"UnknownUpstreamKey",
     upstreamWith("host = \"127.0.0.1\"\ntls = \"none\"\nhots = \"x\"\n"),
     {"t.toml:8:1: upstream.hots: unknown key (did you mean host?)"}},
    {"UnknownMailboxKey",
     "[mailbox]\nfolders = \"INBOX\"\n" + kMinimal,
     {"t.toml:2:1: mailbox.folders: unknown key (did you mean folder?)"}},
    {"UnknownAccountKey",
     account("a") + "on_delet = \"keep\"\n" + kMinimal,
     {"t.toml:6:1: account[0].on_delet: unknown key (did you mean on_delete?)"}},
    {"ClearTextPasswordKey",
     account("a") + "password = \"hunter2\"\n" + kMinimal,
     {"t.toml:6:1: account[0].password: unknown key; passwords are not written in the config: "
      "use password_hash (from `popbridge hash-password`) or upstream_password_file"}},
    // Wrong types.
    {"StringForInteger",
     "[server]\nworkers = \"4\"\n" + kMinimal,
     {"t.toml:2:11: server.workers: expected an integer between 0 and 1024, got \"4\" (remove "
      "the quotes)"}},
    {"FloatForInteger",
     "[server]\nmax_connections = 1.5\n" + kMinimal,
     {"t.toml:2:19: server.max_connections: expected an integer between 1 and 1000000, got the "
      "float 1.5"}},
    {"DateForInteger",
     "[server]\nworkers = 1979-05-27\n" + kMinimal,
     {"t.toml:2:11: server.workers: expected an integer between 0 and 1024, got a date"}},
    {"StringForBool",
     "[mailbox]\nmark_seen_on_retr = \"yes\"\n" + kMinimal,
     {"t.toml:2:21: mailbox.mark_seen_on_retr: expected true or false, got \"yes\""}},
    {"QuotedBool",
     "[mailbox]\nmark_seen_on_retr = \"true\"\n" + kMinimal,
     {"t.toml:2:21: mailbox.mark_seen_on_retr: expected true or false, got \"true\" (remove the "
      "quotes)"}},
    {"IntegerForString",
     "[mailbox]\nfolder = 5\n" + kMinimal,
     {"t.toml:2:10: mailbox.folder: expected a string, got 5"}},
    {"ValueForTable",
     "server = 1\n" + kMinimal,
     {"t.toml:1:10: server: expected a table ([server]), got 1"}},
    {"ArrayForTable",
     "mailbox = [1]\n" + kMinimal,
     {"t.toml:1:11: mailbox: expected a table ([mailbox]), got an array"}},
    // Enumerations.
    {"BadListenerTls",
     listenerWith("address = \"127.0.0.1:1100\"\ntls = \"tsl\"\n"),
     {"t.toml:3:7: listener[0].tls: expected one of none, starttls, implicit, got \"tsl\""}},
    {"BadUpstreamTls",
     upstreamWith("host = \"127.0.0.1\"\ntls = \"ssl\"\n"),
     {"t.toml:7:7: upstream.tls: expected one of implicit, starttls, none, got \"ssl\""}},
    {"BadLogLevel",
     "[server]\nlog_level = 3\n" + kMinimal,
     {"t.toml:2:13: server.log_level: expected one of error, warn, info, debug, got 3"}},
    {"BadLogFormat",
     "[server]\nlog_format = \"JSON\"\n" + kMinimal,
     {"t.toml:2:14: server.log_format: expected one of text, json, got \"JSON\""}},
    {"BadDeletePolicy",
     "[mailbox]\non_delete = \"delete\"\n" + kMinimal,
     {"t.toml:2:13: mailbox.on_delete: expected one of flag, expunge, move, seen, keep, got "
      "\"delete\""}},
    {"UnquotedTlsVersion",
     upstreamWith("host = \"127.0.0.1\"\nmin_tls_version = 1.2\n"),
     {"t.toml:7:19: upstream.min_tls_version: expected one of 1.0, 1.1, 1.2, 1.3, got the float "
      "1.2"}},
    {"BadUpstreamAuth",
     upstreamWith("host = \"127.0.0.1\"\ntls = \"none\"\nauth = \"cram-md5\"\n"),
     {"t.toml:8:8: upstream.auth: expected one of auto, login, plain, got \"cram-md5\""}},
    // Durations.
    {"BadDuration",
     "[server]\nidle_timeout = \"10 min\"\n" + kMinimal,
     {"t.toml:2:16: server.idle_timeout: " + kDurationText + "\"10 min\""}},
    {"IntegerDuration",
     "[server]\nidle_timeout = 600\n" + kMinimal,
     {"t.toml:2:16: server.idle_timeout: " + kDurationText +
      "600 (write it as a string with a unit, e.g. \"600s\")"}},
    {"DurationWithoutUnit",
     "[server]\nauth_failure_delay = \"3\"\n" + kMinimal,
     {"t.toml:2:22: server.auth_failure_delay: " + kDurationText +
      "\"3\" (add a unit, e.g. \"3s\")"}},
    {"DurationOutOfRange",
     "[server]\nidle_timeout = \"500ms\"\n" + kMinimal,
     {"t.toml:2:16: server.idle_timeout: expected a duration between 1s and 24h, got \"500ms\""}},
    {"HandshakeTimeoutOutOfRange",
     kListenerOnly + "handshake_timeout = \"1h\"\n" + kUpstreamOnly,
     {"t.toml:5:21: listener[0].handshake_timeout: expected a duration between 1s and 10m, got "
      "\"1h\""}},
    // Integer ranges.
    {"PortOutOfRange",
     upstreamWith("host = \"127.0.0.1\"\ntls = \"none\"\nport = 70000\n"),
     {"t.toml:8:8: upstream.port: expected an integer between 1 and 65535, got 70000"}},
    {"BufferTooSmall",
     "[server]\nbuffer_size = 512\n" + kMinimal,
     {"t.toml:2:15: server.buffer_size: expected an integer between 4096 and 16777216, got 512"}},
    {"NegativeMaxMessages",
     "[mailbox]\nmax_messages = -1\n" + kMinimal,
     {"t.toml:2:16: mailbox.max_messages: expected an integer between 0 and 4294967295, got -1"}},
    // Listener addresses.
    {"HostNameAsListenAddress",
     listenerWith("address = \"localhost:110\"\ntls = \"none\"\nallow_plaintext_auth = true\n"),
     {"t.toml:2:11: listener[0].address: \"localhost\" is not an IPv4 address (a listener binds "
      "to a literal IP, e.g. \"0.0.0.0:110\")"}},
    {"AddressWithoutPort",
     listenerWith("address = \"0.0.0.0\"\ntls = \"none\"\n"),
     {"t.toml:2:11: listener[0].address: " + kAddressShape + "\"0.0.0.0\""}},
    {"Ipv6WithoutBrackets",
     listenerWith("address = \"::1:110\"\ntls = \"none\"\n"),
     {"t.toml:2:11: listener[0].address: " + kAddressShape +
      "\"::1:110\" (write IPv6 addresses in brackets, e.g. \"[::]:995\")"}},
    {"BadIpv6",
     listenerWith("address = \"[::g]:110\"\ntls = \"none\"\n"),
     {"t.toml:2:11: listener[0].address: \"::g\" is not an IPv6 address (a listener binds to a "
      "literal IP)"}},
    {"Ipv6WithoutPort",
     listenerWith("address = \"[::1]\"\ntls = \"none\"\n"),
     {"t.toml:2:11: listener[0].address: " + kAddressShape + "\"[::1]\""}},
    {"PortZero",
     listenerWith("address = \"127.0.0.1:0\"\ntls = \"none\"\n"),
     {"t.toml:2:11: listener[0].address: expected a port between 1 and 65535 after the address, "
      "got \"0\""}},
    {"PortName",
     listenerWith("address = \"127.0.0.1:pop3\"\ntls = \"none\"\n"),
     {"t.toml:2:11: listener[0].address: expected a port between 1 and 65535 after the address, "
      "got \"pop3\""}},
    {"PortTooLarge",
     listenerWith("address = \"[::]:65536\"\ntls = \"none\"\n"),
     {"t.toml:2:11: listener[0].address: expected a port between 1 and 65535 after the address, "
      "got \"65536\""}},
    {"MissingAddress",
     listenerWith("tls = \"none\"\nallow_plaintext_auth = true\n"),
     {"t.toml:1:1: listener[0].address: required, e.g. address = \"0.0.0.0:110\""}},
    {"DuplicateListener",
     kListenerOnly + kListenerOnly + kUpstreamOnly,
     {"t.toml:6:11: listener[1].address: \"127.0.0.1:1100\" is already used by listener[0]"}},
    // Listener TLS files.
    {"TlsListenerWithoutFiles",
     listenerWith("address = \"127.0.0.1:1100\"\n"),
     {"t.toml:1:1: listener[0].certificate: required when tls = \"starttls\" (the default)",
      "t.toml:1:1: listener[0].private_key: required when tls = \"starttls\" (the default)"}},
    {"MissingCertificateFile",
     listenerWith("address = \"127.0.0.1:1100\"\ntls = \"implicit\"\ncertificate = "
                  "\"@DIR@/missing.pem\"\nprivate_key = \"@DIR@/key.pem\"\n"),
     {"t.toml:4:15: listener[0].certificate: cannot read \"@DIR@/missing.pem\": No such file or "
      "directory"}},
    {"CertificateIsDirectory",
     listenerWith("address = \"127.0.0.1:1100\"\ntls = \"implicit\"\ncertificate = "
                  "\"@DIR@/cert.pem\"\nprivate_key = \"@DIR@\"\n"),
     {"t.toml:5:15: listener[0].private_key: cannot read \"@DIR@\": it is a directory"}},
    {"EmptyCertificate",
     listenerWith("address = \"127.0.0.1:1100\"\ncertificate = \"\"\nprivate_key = "
                  "\"@DIR@/key.pem\"\n"),
     {"t.toml:3:15: listener[0].certificate: must not be empty when tls = \"starttls\" "
      "(the default)"}},
    // Listener tables.
    {"NoListener",
     kUpstreamOnly,
     {"t.toml: listener: at least one [[listener]] is required, e.g. address = \"0.0.0.0:110\""}},
    {"EmptyListenerArray",
     "listener = []\n" + kUpstreamOnly,
     {"t.toml:1:12: listener: at least one [[listener]] is required, e.g. address = "
      "\"0.0.0.0:110\""}},
    {"ListenerAsTable",
     "[listener]\naddress = \"127.0.0.1:1100\"\n" + kUpstreamOnly,
     {"t.toml:1:1: listener: expected an array of tables ([[listener]]), got a table"}},
    {"ListenerAsString",
     "listener = [\"127.0.0.1:110\"]\n" + kUpstreamOnly,
     {"t.toml:1:13: listener[0]: expected a table ([[listener]]), got \"127.0.0.1:110\""}},
    // Upstream.
    {"NoUpstream",
     kListenerOnly,
     {"t.toml: upstream.host: required: add an [upstream] table with host = \"imap.example.com\" "
      "(or set POPBRIDGE_UPSTREAM_HOST)"}},
    {"MissingUpstreamHost",
     upstreamWith("tls = \"none\"\n"),
     {"t.toml:5:1: upstream.host: required, e.g. host = \"imap.example.com\""}},
    {"BadUpstreamHost",
     upstreamWith("host = \"imap example.com\"\n"),
     {"t.toml:6:8: upstream.host: expected a host name or IP address such as "
      "\"imap.example.com\", got \"imap example.com\""}},
    {"UpstreamHostWithPort",
     upstreamWith("host = \"imap.example.com:993\"\n"),
     {"t.toml:6:8: upstream.host: expected a host name or IP address such as "
      "\"imap.example.com\", got \"imap.example.com:993\" (the port is a separate key)"}},
    {"BadServerName",
     upstreamWith("host = \"127.0.0.1\"\nserver_name = \"a/b\"\n"),
     {"t.toml:7:15: upstream.server_name: expected a host name or IP address such as "
      "\"imap.example.com\", got \"a/b\""}},
    {"MissingCaFile",
     upstreamWith("host = \"127.0.0.1\"\nca_file = \"@DIR@/nope.pem\"\n"),
     {"t.toml:7:11: upstream.ca_file: cannot read \"@DIR@/nope.pem\": No such file or directory"}},
    // Mailbox.
    {"EmptyFolder",
     "[mailbox]\nfolder = \"\"\n" + kMinimal,
     {"t.toml:2:10: mailbox.folder: must not be empty"}},
    {"FolderWithLineBreak",
     "[mailbox]\nfolder = \"a\\nb\"\n" + kMinimal,
     {"t.toml:2:10: mailbox.folder: must not contain control characters, got \"a\\x0ab\""}},
    {"MoveWithoutTarget",
     "[mailbox]\non_delete = \"move\"\nmove_to = \"\"\n" + kMinimal,
     {"t.toml:3:11: mailbox.move_to: on_delete = \"move\" needs a non-empty move_to folder"}},
    {"MoveIntoItself",
     "[mailbox]\nfolder = \"Trash\"\non_delete = \"move\"\n" + kMinimal,
     {"t.toml:3:13: mailbox.on_delete: on_delete = \"move\" with move_to equal to folder "
      "(\"Trash\") would never remove a message"}},
    {"BadUidlFormat",
     "[mailbox]\nuidl_format = \"%08Xu%m\"\n" + kMinimal,
     {"t.toml:2:15: mailbox.uidl_format: unknown directive \"%m\" at offset 5: expected %u (UID), "
      "%v (UIDVALIDITY) or %%, optionally with 0, a width and X, x or d, as in %08Xu"}},
    {"UidlFormatWithoutUid",
     "[mailbox]\nuidl_format = \"%08Xv\"\n" + kMinimal,
     {"t.toml:2:15: mailbox.uidl_format: must contain %u: without the message UID the UIDLs are "
      "not unique"}},
    {"UidlFormatTooLong",
     "[mailbox]\nuidl_format = \"%040u%040v\"\n" + kMinimal,
     {"t.toml:2:15: mailbox.uidl_format: output can reach more than 70 characters (the RFC 1939 "
      "limit for a UIDL); the template is too long from offset 5 on"}},
    {"UidlFormatWithSpace",
     "[mailbox]\nuidl_format = \"%u %v\"\n" + kMinimal,
     {"t.toml:2:15: mailbox.uidl_format: character 0x20 at offset 2 is not allowed: a UIDL may "
      "only contain printable ASCII 0x21-0x7E"}},
    // Accounts.
    {"AccountAsTable",
     "[account]\nuser = \"a\"\n" + kMinimal,
     {"t.toml:1:1: account: expected an array of tables ([[account]]), got a table"}},
    {"AccountWithoutUser",
     "[[account]]\npassword_hash = \"" + kHash +
         "\"\nupstream_user = \"u\"\nupstream_password_file = \"@DIR@/secret\"\n" + kMinimal,
     {"t.toml:1:1: account[0].user: required: the name a device logs in with"}},
    {"AccountWithoutCredentials",
     "[[account]]\nuser = \"a\"\n" + kMinimal,
     {"t.toml:1:1: account[0].password_hash: required: run `popbridge hash-password` to make one",
      "t.toml:1:1: account[0].upstream_user: required: the IMAP login this account maps to",
      "t.toml:1:1: account[0].upstream_password_file: required: a file holding the IMAP password, "
      "e.g. a Docker secret"}},
    {"AccountUserWithSpace",
     replaceAll(account("a"), "\"a\"", "\"a b\"") + kMinimal,
     {"t.toml:2:8: account[0].user: expected at most 255 bytes without spaces or control "
      "characters, got \"a b\""}},
    {"DuplicateAccount",
     account("scanner") + account("printer") + account("scanner") + kMinimal,
     {"t.toml:12:8: account[2].user: \"scanner\" is already defined by account[0]"}},
    {"PasswordHashNotArgon2",
     replaceAll(account("a"), kHash, "hunter2") + kMinimal,
     {"t.toml:3:17: account[0].password_hash: " + kHashShape}},
    {"PasswordHashNotString",
     replaceAll(account("a"), "\"" + kHash + "\"", "5") + kMinimal,
     {"t.toml:3:17: account[0].password_hash: expected a string with an argon2 hash"}},
    {"MissingPasswordFile",
     replaceAll(account("a"), "@DIR@/secret", "@DIR@/nope") + kMinimal,
     {"t.toml:5:26: account[0].upstream_password_file: cannot read \"@DIR@/nope\": No such file "
      "or directory"}},
    {"EmptyPasswordFile",
     replaceAll(account("a"), "@DIR@/secret", "@DIR@/empty-secret") + kMinimal,
     {"t.toml:5:26: account[0].upstream_password_file: \"@DIR@/empty-secret\" is empty"}},
    {"TwoLinePasswordFile",
     replaceAll(account("a"), "@DIR@/secret", "@DIR@/two-line-secret") + kMinimal,
     {"t.toml:5:26: account[0].upstream_password_file: \"@DIR@/two-line-secret\" must hold the "
      "password alone on one line (it contains a line break or a NUL byte)"}},
    {"AccountMoveWithoutTarget",
     "[mailbox]\nmove_to = \"\"\n" + account("a") + "on_delete = \"move\"\n" + kMinimal,
     {"t.toml:8:13: account[0].on_delete: on_delete = \"move\" needs a non-empty move_to folder"}},
    {"AccountBadUidlFormat",
     account("a") + "uidl_format = \"%m\"\n" + kMinimal,
     {"t.toml:6:15: account[0].uidl_format: unknown directive \"%m\" at offset 0: expected %u "
      "(UID), %v (UIDVALIDITY) or %%, optionally with 0, a width and X, x or d, as in %08Xu"}},
};

INSTANTIATE_TEST_SUITE_P(Table, ConfigErrors, ::testing::ValuesIn(kErrorCases),
                         [](const auto& info) { return info.param.name; });

TEST_F(ConfigTest, ReportsEveryErrorAtOnceInFileOrder) {
  const LoadResult result = load(
      "[server]\n"                                               // 1
      "workers = -1\n"                                           // 2
      "idle_timeout = \"forever\"\n"                             // 3
      "colour = \"blue\"\n"                                      // 4
      "[[listener]]\n"                                           // 5
      "address = \"localhost:110\"\n"                            // 6
      "tls = \"implicit\"\n"                                     // 7
      "[mailbox]\n"                                              // 8
      "on_delete = \"shred\"\n"                                  // 9
      "[[account]]\n"                                            // 10
      "user = \"x\"\n"                                           // 11
      "password_hash = \"plain\"\n"                              // 12
      "upstream_user = \"y\"\n"                                  // 13
      "upstream_password_file = \"/nonexistent/popbridge\"\n");  // 14
  EXPECT_EQ(errorsOf(result),
            (std::vector<std::string>{
                "t.toml:2:11: server.workers: expected an integer between 0 and 1024, got -1",
                "t.toml:3:16: server.idle_timeout: " + kDurationText + "\"forever\"",
                "t.toml:4:1: server.colour: unknown key",
                "t.toml:5:1: listener[0].certificate: required when tls = \"implicit\"",
                "t.toml:5:1: listener[0].private_key: required when tls = \"implicit\"",
                "t.toml:6:11: listener[0].address: \"localhost\" is not an IPv4 address (a "
                "listener binds to a literal IP, e.g. \"0.0.0.0:110\")",
                "t.toml:9:13: mailbox.on_delete: expected one of flag, expunge, move, seen, keep, "
                "got \"shred\"",
                "t.toml:12:17: account[0].password_hash: " + kHashShape,
                "t.toml:14:26: account[0].upstream_password_file: cannot read "
                "\"/nonexistent/popbridge\": No such file or directory",
                "t.toml: upstream.host: required: add an [upstream] table with host = "
                "\"imap.example.com\" (or set POPBRIDGE_UPSTREAM_HOST)",
            }));
}

TEST_F(ConfigTest, ErrorsNeverContainTheHashValue) {
  const std::string secretLooking = "$argon2id$v=19$m=1,t=1,p=1$notreally$butsecret";
  const LoadResult result = load(replaceAll(account("a"), kHash, secretLooking) + kMinimal);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].toString().find("butsecret"), std::string::npos);
}

TEST_F(ConfigTest, ErrorFieldsAreSeparate) {
  const LoadResult result = load(listenerWith("address = \"127.0.0.1:1100\"\ntls = \"tsl\"\n"));
  ASSERT_EQ(result.errors.size(), 1u);
  const ConfigError& error = result.errors[0];
  EXPECT_EQ(error.file, "t.toml");
  EXPECT_EQ(error.line, 3u);
  EXPECT_EQ(error.column, 7u);
  EXPECT_EQ(error.keyPath, "listener[0].tls");
  EXPECT_EQ(error.message, "expected one of none, starttls, implicit, got \"tsl\"");
  EXPECT_EQ(error.toString(),
            "t.toml:3:7: listener[0].tls: expected one of none, starttls, implicit, got \"tsl\"");
}

// ---------------------------------------------------------------------------------------------
// Defaults and values.

TEST_F(ConfigTest, MinimalConfigHasEveryDefault) {
  const LoadResult result = load(kMinimal);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_TRUE(result.warnings.empty()) << testing::PrintToString(result.warnings);
  const Config& config = *result.config;

  const ServerConfig& server = config.server;
  EXPECT_EQ(server.workers, 1u);
  EXPECT_EQ(server.idleTimeout, 10min);
  EXPECT_EQ(server.maxConnections, 10000u);
  EXPECT_EQ(server.maxConnectionsPerIp, 50u);
  EXPECT_EQ(server.logLevel, LogSeverity::Info);
  EXPECT_EQ(server.logFormat, LogFormat::Text);
  EXPECT_EQ(server.maxBadCommands, 10u);
  EXPECT_EQ(server.authFailureDelay, 2s);
  EXPECT_EQ(server.shutdownTimeout, 10s);
  EXPECT_EQ(server.bufferSize, 64u * 1024u);
  EXPECT_EQ(server.writeHighWatermark, 256u * 1024u);

  ASSERT_EQ(config.listeners.size(), 1u);
  const ListenerConfig& listener = config.listeners[0];
  EXPECT_EQ(listener.address, "127.0.0.1:1100");
  EXPECT_EQ(listener.host, "127.0.0.1");
  EXPECT_EQ(listener.port, 1100);
  EXPECT_EQ(listener.tls, ListenerTls::None);
  EXPECT_EQ(listener.certificate, "");
  EXPECT_EQ(listener.privateKey, "");
  EXPECT_EQ(listener.minTlsVersion, TlsVersion::V1_2);
  EXPECT_TRUE(listener.allowPlaintextAuth);
  EXPECT_EQ(listener.handshakeTimeout, 30s);

  const UpstreamConfig& upstream = config.upstream;
  EXPECT_EQ(upstream.host, "127.0.0.1");
  EXPECT_EQ(upstream.port, 143);  // the default for tls = "none"
  EXPECT_EQ(upstream.tls, UpstreamTls::None);
  EXPECT_EQ(upstream.caFile, "");
  EXPECT_TRUE(upstream.verifyCertificate);
  EXPECT_EQ(upstream.serverName, "");
  EXPECT_EQ(upstream.effectiveServerName(), "127.0.0.1");
  EXPECT_EQ(upstream.connectTimeout, 10s);
  EXPECT_EQ(upstream.commandTimeout, 60s);
  EXPECT_EQ(upstream.auth, UpstreamLogin::Auto);
  EXPECT_EQ(upstream.minTlsVersion, TlsVersion::V1_2);

  const MailboxOptions& mailbox = config.mailbox;
  EXPECT_EQ(mailbox.folder, "INBOX");
  EXPECT_EQ(mailbox.onDelete, DeletePolicy::Flag);
  EXPECT_EQ(mailbox.moveTo, "Trash");
  EXPECT_FALSE(mailbox.markSeenOnRetr);
  EXPECT_EQ(mailbox.uidl.spec(), "%08Xu%08Xv");
  EXPECT_EQ(mailbox.maxMessages, 0u);

  EXPECT_TRUE(config.accounts.empty());
  EXPECT_EQ(config.findAccount("anyone"), nullptr);
}

TEST_F(ConfigTest, DefaultListenerIsStartTlsAndDefaultUpstreamIsImplicitOn993) {
  const LoadResult result = load(
      "[[listener]]\naddress = \"[::]:110\"\ncertificate = \"@DIR@/cert.pem\"\n"
      "private_key = \"@DIR@/key.pem\"\n[upstream]\nhost = \"imap.example.com\"\n");
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_TRUE(result.warnings.empty()) << testing::PrintToString(result.warnings);
  const Config& config = *result.config;
  EXPECT_EQ(config.listeners[0].tls, ListenerTls::StartTls);
  EXPECT_EQ(config.listeners[0].host, "::");
  EXPECT_EQ(config.listeners[0].port, 110);
  EXPECT_EQ(config.listeners[0].certificate, dir_.path() + "/cert.pem");
  EXPECT_EQ(config.upstream.tls, UpstreamTls::Implicit);
  EXPECT_EQ(config.upstream.port, 993);
  EXPECT_EQ(config.upstream.effectiveServerName(), "imap.example.com");
}

TEST_F(ConfigTest, ReadsEveryKey) {
  const LoadResult result = load(
      "[server]\n"
      "workers = 0\nidle_timeout = \"1h30m\"\nmax_connections = 20\nmax_connections_per_ip = 0\n"
      "log_level = \"debug\"\nlog_format = \"json\"\nmax_bad_commands = 3\n"
      "auth_failure_delay = \"500ms\"\nshutdown_timeout = \"0s\"\nbuffer_size = 4096\n"
      "write_high_watermark = 1048576\n"
      "[[listener]]\n"
      "address = \"127.0.0.2:995\"\ntls = \"implicit\"\ncertificate = \"@DIR@/cert.pem\"\n"
      "private_key = \"@DIR@/key.pem\"\nmin_tls_version = \"1.3\"\n"
      "allow_plaintext_auth = false\nhandshake_timeout = \"5s\"\n"
      "[upstream]\n"
      "host = \"[2001:db8::1]\"\nport = 1993\ntls = \"starttls\"\nca_file = \"@DIR@/ca.pem\"\n"
      "verify_certificate = true\nserver_name = \"mail.example.org\"\n"
      "connect_timeout = \"3s\"\ncommand_timeout = \"2m\"\nauth = \"login\"\n"
      "min_tls_version = \"1.3\"\n"
      "[mailbox]\n"
      "folder = \"Archive/2024\"\non_delete = \"expunge\"\nmove_to = \"Bin\"\n"
      "mark_seen_on_retr = true\nuidl_format = \"%xu.%xv\"\nmax_messages = 1000\n");
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_TRUE(result.warnings.empty()) << testing::PrintToString(result.warnings);
  const Config& c = *result.config;
  EXPECT_EQ(c.server.workers, 0u);
  EXPECT_EQ(c.server.idleTimeout, 90min);
  EXPECT_EQ(c.server.maxConnections, 20u);
  EXPECT_EQ(c.server.maxConnectionsPerIp, 0u);
  EXPECT_EQ(c.server.logLevel, LogSeverity::Debug);
  EXPECT_EQ(c.server.logFormat, LogFormat::Json);
  EXPECT_EQ(c.server.maxBadCommands, 3u);
  EXPECT_EQ(c.server.authFailureDelay, 500ms);
  EXPECT_EQ(c.server.shutdownTimeout, 0s);
  EXPECT_EQ(c.server.bufferSize, 4096u);
  EXPECT_EQ(c.server.writeHighWatermark, 1048576u);
  const ListenerConfig& l = c.listeners.at(0);
  EXPECT_EQ(l.host, "127.0.0.2");
  EXPECT_EQ(l.port, 995);
  EXPECT_EQ(l.tls, ListenerTls::Implicit);
  EXPECT_EQ(l.privateKey, dir_.path() + "/key.pem");
  EXPECT_EQ(l.minTlsVersion, TlsVersion::V1_3);
  EXPECT_FALSE(l.allowPlaintextAuth);
  EXPECT_EQ(l.handshakeTimeout, 5s);
  EXPECT_EQ(c.upstream.host, "2001:db8::1");  // brackets removed
  EXPECT_EQ(c.upstream.port, 1993);
  EXPECT_EQ(c.upstream.tls, UpstreamTls::StartTls);
  EXPECT_EQ(c.upstream.caFile, dir_.path() + "/ca.pem");
  EXPECT_EQ(c.upstream.serverName, "mail.example.org");
  EXPECT_EQ(c.upstream.effectiveServerName(), "mail.example.org");
  EXPECT_EQ(c.upstream.connectTimeout, 3s);
  EXPECT_EQ(c.upstream.commandTimeout, 2min);
  EXPECT_EQ(c.upstream.auth, UpstreamLogin::Login);
  EXPECT_EQ(c.upstream.minTlsVersion, TlsVersion::V1_3);
  EXPECT_EQ(c.mailbox.folder, "Archive/2024");
  EXPECT_EQ(c.mailbox.onDelete, DeletePolicy::Expunge);
  EXPECT_EQ(c.mailbox.moveTo, "Bin");
  EXPECT_TRUE(c.mailbox.markSeenOnRetr);
  EXPECT_EQ(c.mailbox.uidl.spec(), "%xu.%xv");
  EXPECT_EQ(c.mailbox.maxMessages, 1000u);
}

TEST_F(ConfigTest, UpstreamPortDefaultsTo143ForStartTls) {
  const LoadResult result = load(upstreamWith("host = \"imap.example.com\"\ntls = \"starttls\"\n"));
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_EQ(result.config->upstream.port, 143);
}

TEST_F(ConfigTest, AccountsInheritMailboxAndOverrideSomeKeys) {
  const LoadResult result = load(
      "[mailbox]\nfolder = \"Archive\"\non_delete = \"expunge\"\nmax_messages = 10\n"
      "move_to = \"Old\"\n" +
      account("scanner") + "folder = \"Scans\"\non_delete = \"move\"\n" + account("printer") +
      "mark_seen_on_retr = true\nuidl_format = \"%u\"\n" + kMinimal);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  const Config& config = *result.config;
  ASSERT_EQ(config.accounts.size(), 2u);

  const AccountConfig* scanner = config.findAccount("scanner");
  ASSERT_NE(scanner, nullptr);
  EXPECT_EQ(scanner->passwordHash, kHash);
  EXPECT_EQ(scanner->upstreamUser, "scanner@example.com");
  EXPECT_EQ(scanner->upstreamPasswordFile, dir_.path() + "/secret");
  EXPECT_EQ(scanner->upstreamPassword, "s3cret pass");  // trailing newline stripped
  EXPECT_EQ(scanner->mailbox.folder, "Scans");
  EXPECT_EQ(scanner->mailbox.onDelete, DeletePolicy::Move);
  EXPECT_EQ(scanner->mailbox.moveTo, "Old");
  EXPECT_EQ(scanner->mailbox.maxMessages, 10u);
  EXPECT_FALSE(scanner->mailbox.markSeenOnRetr);
  EXPECT_EQ(scanner->mailbox.uidl.spec(), "%08Xu%08Xv");

  const AccountConfig* printer = config.findAccount("printer");
  ASSERT_NE(printer, nullptr);
  EXPECT_EQ(printer->mailbox.folder, "Archive");
  EXPECT_EQ(printer->mailbox.onDelete, DeletePolicy::Expunge);
  EXPECT_TRUE(printer->mailbox.markSeenOnRetr);
  EXPECT_EQ(printer->mailbox.uidl.spec(), "%u");

  EXPECT_EQ(config.mailbox.folder, "Archive");        // the defaults stay as they were
  EXPECT_EQ(config.findAccount("Scanner"), nullptr);  // names are case-sensitive
  // The account's own uidl_format without %v is worth a warning.
  EXPECT_EQ(result.warnings,
            (std::vector<std::string>{
                "t.toml:19:15: account[1].uidl_format: without %v a UIDVALIDITY change can give "
                "new messages the UIDLs of old ones, and clients may then skip or delete the "
                "wrong mail"}));
}

TEST_F(ConfigTest, PasswordFileKeepsInnerSpacesAndStripsCrLf) {
  dir_.write("crlf", "  pa ss  \r\n");
  const LoadResult result = load(replaceAll(account("a"), "@DIR@/secret", "@DIR@/crlf") + kMinimal);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_EQ(result.config->accounts[0].upstreamPassword, "  pa ss  ");
}

TEST_F(ConfigTest, InlineTablesWork) {
  const LoadResult result = load(
      "listener = [{ address = \"127.0.0.1:1100\", tls = \"none\", allow_plaintext_auth = "
      "true }]\nupstream = { host = \"localhost\", tls = \"none\" }\n");
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_TRUE(result.warnings.empty()) << testing::PrintToString(result.warnings);
  EXPECT_EQ(result.config->upstream.host, "localhost");
}

// ---------------------------------------------------------------------------------------------
// Warnings.

struct WarningCase {
  std::string name;
  std::string toml;
  std::vector<std::string> warnings;
};

void PrintTo(const WarningCase& c, std::ostream* os) {
  *os << c.name;
}

class ConfigWarnings : public ConfigTest, public ::testing::WithParamInterface<WarningCase> {};

TEST_P(ConfigWarnings, LoadsButWarns) {
  const WarningCase& c = GetParam();
  const LoadResult result = load(c.toml);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_EQ(result.warnings, c.warnings);
}

const WarningCase kWarningCases[] = {
    {"NoCertificateCheck",
     upstreamWith("host = \"imap.example.com\"\nverify_certificate = false\n"),
     {"t.toml:7:22: upstream.verify_certificate: false accepts any certificate, so anyone on the "
      "network path can read the upstream passwords and mail"}},
    {"PlaintextAuthOnPublicAddress",
     listenerWith("address = \"0.0.0.0:110\"\ntls = \"none\"\nallow_plaintext_auth = true\n"),
     {"t.toml:4:24: listener[0].allow_plaintext_auth: passwords may cross the network in clear "
      "text on 0.0.0.0:110"}},
    {"PlaintextAuthOnStartTlsListener",
     listenerWith("address = \"[::]:110\"\ncertificate = \"@DIR@/cert.pem\"\nprivate_key = "
                  "\"@DIR@/key.pem\"\nallow_plaintext_auth = true\n"),
     {"t.toml:5:24: listener[0].allow_plaintext_auth: passwords may cross the network in clear "
      "text on [::]:110"}},
    {"OldListenerTls",
     listenerWith("address = \"127.0.0.1:995\"\ntls = \"implicit\"\ncertificate = "
                  "\"@DIR@/cert.pem\"\nprivate_key = \"@DIR@/key.pem\"\nmin_tls_version = "
                  "\"1.0\"\n"),
     {"t.toml:6:19: listener[0].min_tls_version: TLS 1.0 is deprecated (RFC 8996); allow it only "
      "for devices that need it"}},
    {"OldUpstreamTls",
     upstreamWith("host = \"imap.example.com\"\nmin_tls_version = \"1.1\"\n"),
     {"t.toml:7:19: upstream.min_tls_version: TLS 1.1 is deprecated (RFC 8996)"}},
    {"CleartextUpstream",
     upstreamWith("host = \"imap.example.com\"\ntls = \"none\"\n"),
     {"t.toml:7:7: upstream.tls: \"none\" sends passwords and mail to imap.example.com in clear "
      "text"}},
    {"ShortIdleTimeout",
     "[server]\nidle_timeout = \"2m\"\n" + kMinimal,
     {"t.toml:2:16: server.idle_timeout: 2m is below the 10 minutes that RFC 1939 asks for; slow "
      "clients may be logged out"}},
    {"UidlWithoutUidValidity",
     "[mailbox]\nuidl_format = \"%08Xu\"\n" + kMinimal,
     {"t.toml:2:15: mailbox.uidl_format: without %v a UIDVALIDITY change can give new messages "
      "the UIDLs of old ones, and clients may then skip or delete the wrong mail"}},
    {"CertificateOnCleartextListener",
     kListenerOnly + "certificate = \"@DIR@/cert.pem\"\n" + kUpstreamOnly,
     {"t.toml:5:15: listener[0].certificate: ignored because tls = \"none\""}},
    {"CleartextListenerWithoutPlaintextAuth",
     listenerWith("address = \"127.0.0.1:110\"\ntls = \"none\"\n"),
     {"t.toml:3:7: listener[0].tls: with tls = \"none\" and allow_plaintext_auth = false no "
      "client can log in on this listener"}},
    // Loopback addresses are not warned about.
    {"LoopbackIsQuiet",
     "[[listener]]\naddress = \"[::1]:110\"\ntls = \"none\"\nallow_plaintext_auth = true\n"
     "[upstream]\nhost = \"localhost\"\ntls = \"none\"\n",
     {}},
    // 127.0.0.0/8 seen through a dual-stack socket is still this machine.
    {"MappedLoopbackIsQuiet",
     "[[listener]]\naddress = \"[::ffff:127.0.0.1]:110\"\ntls = \"none\"\n"
     "allow_plaintext_auth = true\n[upstream]\nhost = \"::ffff:127.0.0.1\"\ntls = \"none\"\n",
     {}},
};

INSTANTIATE_TEST_SUITE_P(Table, ConfigWarnings, ::testing::ValuesIn(kWarningCases),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Environment overrides.

TEST_F(ConfigTest, EnvironmentOverridesWinOverTheFile) {
  const Environment env = {
      {"POPBRIDGE_UPSTREAM_HOST", "imap.internal"},
      {"POPBRIDGE_UPSTREAM_PORT", "10993"},
      {"POPBRIDGE_UPSTREAM_TLS", "implicit"},
      {"POPBRIDGE_UPSTREAM_CA_FILE", dir_.path() + "/ca.pem"},
      {"POPBRIDGE_UPSTREAM_SERVER_NAME", "imap.example.com"},
      {"POPBRIDGE_LOG_LEVEL", "debug"},
      {"POPBRIDGE_LOG_FORMAT", "json"},
      {"POPBRIDGE_MAILBOX_FOLDER", "Printer"},
      {"POPBRIDGE_MAILBOX_ON_DELETE", "keep"},
      {"HOME", "/root"},  // unrelated variables are ignored
  };
  const LoadResult result = load(
      "[server]\nlog_level = \"error\"\n" + kMinimal + account("a") + "folder = \"Own\"\n", env);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_TRUE(result.warnings.empty()) << testing::PrintToString(result.warnings);
  const Config& c = *result.config;
  EXPECT_EQ(c.upstream.host, "imap.internal");
  EXPECT_EQ(c.upstream.port, 10993);
  EXPECT_EQ(c.upstream.tls, UpstreamTls::Implicit);
  EXPECT_EQ(c.upstream.caFile, dir_.path() + "/ca.pem");
  EXPECT_EQ(c.upstream.effectiveServerName(), "imap.example.com");
  EXPECT_EQ(c.server.logLevel, LogSeverity::Debug);
  EXPECT_EQ(c.server.logFormat, LogFormat::Json);
  EXPECT_EQ(c.mailbox.folder, "Printer");
  EXPECT_EQ(c.mailbox.onDelete, DeletePolicy::Keep);
  // The account keeps its own folder and inherits the overridden on_delete.
  EXPECT_EQ(c.accounts.at(0).mailbox.folder, "Own");
  EXPECT_EQ(c.accounts.at(0).mailbox.onDelete, DeletePolicy::Keep);
}

TEST_F(ConfigTest, EnvironmentCanSupplyTheWholeUpstream) {
  const LoadResult result = load(kListenerOnly, {{"POPBRIDGE_UPSTREAM_HOST", "imap.example.com"},
                                                 {"POPBRIDGE_UPSTREAM_TLS", "starttls"}});
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_EQ(result.config->upstream.host, "imap.example.com");
  EXPECT_EQ(result.config->upstream.port, 143);
}

TEST_F(ConfigTest, EmptyCaFileFromEnvironmentSelectsTheSystemBundle) {
  const LoadResult result =
      load(upstreamWith("host = \"imap.example.com\"\nca_file = \"@DIR@/ca.pem\"\n"),
           {{"POPBRIDGE_UPSTREAM_CA_FILE", ""}});
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_EQ(result.config->upstream.caFile, "");
}

struct EnvErrorCase {
  std::string name;
  Environment env;
  std::string toml;
  std::vector<std::string> errors;
};

void PrintTo(const EnvErrorCase& c, std::ostream* os) {
  *os << c.name;
}

class EnvironmentErrors : public ConfigTest, public ::testing::WithParamInterface<EnvErrorCase> {};

TEST_P(EnvironmentErrors, NameTheVariable) {
  const EnvErrorCase& c = GetParam();
  Environment env;
  for (const auto& [name, value] : c.env) env[name] = withDir(value);
  const LoadResult result = load(c.toml, env);
  EXPECT_FALSE(result.ok());
  std::vector<std::string> expected;
  for (const std::string& error : c.errors) expected.push_back(withDir(error));
  EXPECT_EQ(errorsOf(result), expected);
}

const EnvErrorCase kEnvErrorCases[] = {
    {"Tls",
     {{"POPBRIDGE_UPSTREAM_TLS", "bogus"}},
     kMinimal,
     {"POPBRIDGE_UPSTREAM_TLS: upstream.tls: expected one of implicit, starttls, none, got "
      "\"bogus\""}},
    {"PortNotANumber",
     {{"POPBRIDGE_UPSTREAM_PORT", "imaps"}},
     kMinimal,
     {"POPBRIDGE_UPSTREAM_PORT: upstream.port: expected an integer between 1 and 65535, got "
      "\"imaps\""}},
    {"PortOutOfRange",
     {{"POPBRIDGE_UPSTREAM_PORT", "0"}},
     kMinimal,
     {"POPBRIDGE_UPSTREAM_PORT: upstream.port: expected an integer between 1 and 65535, got 0"}},
    {"EmptyHost",
     {{"POPBRIDGE_UPSTREAM_HOST", ""}},
     kMinimal,
     {"POPBRIDGE_UPSTREAM_HOST: upstream.host: expected a host name or IP address such as "
      "\"imap.example.com\", got \"\""}},
    {"CaFile",
     {{"POPBRIDGE_UPSTREAM_CA_FILE", "@DIR@/none.pem"}},
     kMinimal,
     {"POPBRIDGE_UPSTREAM_CA_FILE: upstream.ca_file: cannot read \"@DIR@/none.pem\": No such file "
      "or directory"}},
    {"ServerName",
     {{"POPBRIDGE_UPSTREAM_SERVER_NAME", "bad name"}},
     kMinimal,
     {"POPBRIDGE_UPSTREAM_SERVER_NAME: upstream.server_name: expected a host name or IP address "
      "such as \"imap.example.com\", got \"bad name\""}},
    {"LogLevel",
     {{"POPBRIDGE_LOG_LEVEL", "verbose"}},
     kMinimal,
     {"POPBRIDGE_LOG_LEVEL: server.log_level: expected one of error, warn, info, debug, got "
      "\"verbose\""}},
    {"LogFormat",
     {{"POPBRIDGE_LOG_FORMAT", "xml"}},
     kMinimal,
     {"POPBRIDGE_LOG_FORMAT: server.log_format: expected one of text, json, got \"xml\""}},
    {"Folder",
     {{"POPBRIDGE_MAILBOX_FOLDER", ""}},
     kMinimal,
     {"POPBRIDGE_MAILBOX_FOLDER: mailbox.folder: must not be empty"}},
    {"OnDelete",
     {{"POPBRIDGE_MAILBOX_ON_DELETE", "purge"}},
     kMinimal,
     {"POPBRIDGE_MAILBOX_ON_DELETE: mailbox.on_delete: expected one of flag, expunge, move, seen, "
      "keep, got \"purge\""}},
    {"OnDeleteMoveIntoItself",
     {{"POPBRIDGE_MAILBOX_ON_DELETE", "move"}},
     "[mailbox]\nfolder = \"Trash\"\n" + kMinimal,
     {"POPBRIDGE_MAILBOX_ON_DELETE: mailbox.on_delete: on_delete = \"move\" with move_to equal to "
      "folder (\"Trash\") would never remove a message"}},
    // File errors keep their positions next to environment errors.
    {"MixedWithFileErrors",
     {{"POPBRIDGE_LOG_FORMAT", "xml"}},
     "[server]\nworkers = \"x\"\n" + kMinimal,
     {"t.toml:2:11: server.workers: expected an integer between 0 and 1024, got \"x\"",
      "POPBRIDGE_LOG_FORMAT: server.log_format: expected one of text, json, got \"xml\""}},
};

INSTANTIATE_TEST_SUITE_P(Table, EnvironmentErrors, ::testing::ValuesIn(kEnvErrorCases),
                         [](const auto& info) { return info.param.name; });

TEST_F(ConfigTest, UnknownPopbridgeVariablesAreWarnedAbout) {
  const LoadResult result = load(kMinimal, {{"POPBRIDGE_UPSTREAM_HOTS", "x"}});
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_EQ(result.warnings,
            (std::vector<std::string>{
                "POPBRIDGE_UPSTREAM_HOTS: unknown environment variable, ignored (did you mean "
                "POPBRIDGE_UPSTREAM_HOST?)"}));
}

// ---------------------------------------------------------------------------------------------
// Files.

TEST_F(ConfigTest, LoadConfigFileResolvesRelativePathsAgainstItsDirectory) {
  dir_.write("conf/tls/cert.pem", "x");
  dir_.write("conf/tls/key.pem", "x");
  dir_.write("conf/secrets/a", "pw\n");
  const std::string path =
      dir_.write("conf/popbridge.toml",
                 "[[listener]]\naddress = \"127.0.0.1:995\"\ntls = \"implicit\"\n"
                 "certificate = \"tls/cert.pem\"\nprivate_key = \"./tls/key.pem\"\n" +
                     replaceAll(account("a"), "@DIR@/secret", "secrets/a") + kUpstreamOnly);
  const LoadResult result = loadConfigFile(path, {});
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_EQ(result.config->listeners[0].certificate, dir_.path() + "/conf/tls/cert.pem");
  EXPECT_EQ(result.config->listeners[0].privateKey, dir_.path() + "/conf/tls/key.pem");
  EXPECT_EQ(result.config->accounts[0].upstreamPassword, "pw");
}

TEST_F(ConfigTest, LoadConfigFileNamesTheFileInErrors) {
  const std::string path = dir_.write("bad.toml", "[server]\nworkers = true\n" + kMinimal);
  const LoadResult result = loadConfigFile(path, {});
  EXPECT_EQ(
      errorsOf(result),
      (std::vector<std::string>{path + ":2:11: server.workers: expected an integer between 0 and "
                                       "1024, got true"}));
}

TEST_F(ConfigTest, MissingConfigFileIsOneClearError) {
  const std::string path = dir_.path() + "/absent.toml";
  const LoadResult result = loadConfigFile(path, {});
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(errorsOf(result), (std::vector<std::string>{path + ": cannot read \"" + path +
                                                        "\": No such file or directory"}));
}

TEST_F(ConfigTest, OversizedConfigFileIsRefused) {
  const std::string path = dir_.write("huge.toml", std::string(1024 * 1024 + 1, '#'));
  const LoadResult result = loadConfigFile(path, {});
  EXPECT_EQ(errorsOf(result),
            (std::vector<std::string>{path + ": \"" + path + "\" is larger than 1048576 bytes"}));
}

// ---------------------------------------------------------------------------------------------
// Summary and names.

TEST_F(ConfigTest, SummaryShowsSettingsButNoSecrets) {
  const LoadResult result = load(account("scanner") + kMinimal);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  const std::string summary = summarize(*result.config);
  EXPECT_NE(summary.find("listener[0]: 127.0.0.1:1100 tls=none"), std::string::npos) << summary;
  EXPECT_NE(summary.find("upstream: 127.0.0.1:143 tls=none"), std::string::npos) << summary;
  EXPECT_NE(summary.find("idle_timeout=10m"), std::string::npos) << summary;
  EXPECT_NE(summary.find("account[0]: user=\"scanner\" upstream_user=\"scanner@example.com\""),
            std::string::npos)
      << summary;
  EXPECT_EQ(summary.find("argon2"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("s3cret"), std::string::npos) << summary;
}

TEST_F(ConfigTest, SummaryShowsTheParsedUidlTemplate) {
  const LoadResult result = load("[mailbox]\nuidl_format = \"%xu.%xv\"\n" + account("scanner") +
                                 "uidl_format = \"pb-%u-%v\"\n" + kMinimal);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  const std::string summary = summarize(*result.config);
  EXPECT_NE(summary.find("mailbox: folder=\"INBOX\" on_delete=flag mark_seen_on_retr=false "
                         "uidl_format=\"%xu.%xv\" max_messages=0 (all)"),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find(" uidl_format=\"pb-%u-%v\" "), std::string::npos) << summary;
}

TEST_F(ConfigTest, SummaryOfPassThroughConfigSaysSo) {
  const LoadResult result = load(kMinimal);
  ASSERT_TRUE(result.ok());
  EXPECT_NE(
      summarize(*result.config).find("accounts: none (logins are passed through to the upstream)"),
      std::string::npos);
}

TEST(ConfigNames, EnumsPrintAsTheyAreWritten) {
  EXPECT_EQ(toString(LogSeverity::Warn), "warn");
  EXPECT_EQ(toString(LogFormat::Json), "json");
  EXPECT_EQ(toString(ListenerTls::StartTls), "starttls");
  EXPECT_EQ(toString(UpstreamTls::Implicit), "implicit");
  EXPECT_EQ(toString(DeletePolicy::Expunge), "expunge");
  EXPECT_EQ(toString(TlsVersion::V1_0), "1.0");
  EXPECT_EQ(toString(TlsVersion::V1_3), "1.3");
  EXPECT_EQ(toString(UpstreamLogin::Plain), "plain");
}

TEST(ConfigNames, ErrorWithoutPositionOrKey) {
  EXPECT_EQ((ConfigError{"f.toml", 0, 0, "", "boom"}).toString(), "f.toml: boom");
  EXPECT_EQ((ConfigError{"f.toml", 1, 2, "", "boom"}).toString(), "f.toml:1:2: boom");
  EXPECT_EQ((ConfigError{"POPBRIDGE_LOG_LEVEL", 0, 0, "server.log_level", "boom"}).toString(),
            "POPBRIDGE_LOG_LEVEL: server.log_level: boom");
}

}  // namespace
}  // namespace popbridge::config
