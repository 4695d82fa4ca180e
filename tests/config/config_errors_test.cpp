// The loader's error table: one bad config per error class, with the exact
// located message.

#include <ostream>
#include <string>
#include <vector>

#include "tests/config/config_fixture.h"

namespace popbridge::config::config_test {
namespace {

using namespace std::chrono_literals;

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
    {"IntegerForReadAhead",
     upstreamWith("host = \"127.0.0.1\"\ntls = \"none\"\nread_ahead = 1\n"),
     {"t.toml:8:14: upstream.read_ahead: expected true or false, got 1"}},
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
    {"SnapshotCacheMaxMessagesZero",
     upstreamWith("host = \"127.0.0.1\"\ntls = \"none\"\nsnapshot_cache_max_messages = 0\n"),
     {"t.toml:8:31: upstream.snapshot_cache_max_messages: expected an integer between 1 and "
      "100000000, got 0"}},
    {"SnapshotCacheNotABool",
     upstreamWith("host = \"127.0.0.1\"\ntls = \"none\"\nsnapshot_cache = \"yes\"\n"),
     {"t.toml:8:18: upstream.snapshot_cache: expected true or false, got \"yes\""}},
    {"PortOutOfRange",
     upstreamWith("host = \"127.0.0.1\"\ntls = \"none\"\nport = 70000\n"),
     {"t.toml:8:8: upstream.port: expected an integer between 1 and 65535, got 70000"}},
    {"PoolIdleOutOfRange",
     upstreamWith("host = \"127.0.0.1\"\ntls = \"none\"\npool_idle = \"2h\"\n"),
     {"t.toml:8:13: upstream.pool_idle: expected a duration between 0s and 1h, got \"2h\""}},
    {"PoolMaxPerAccountZero",
     upstreamWith("host = \"127.0.0.1\"\ntls = \"none\"\npool_max_per_account = 0\n"),
     {"t.toml:8:24: upstream.pool_max_per_account: expected an integer between 1 and 1000, got "
      "0"}},
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
    // A backslash names an RFC 6154 attribute; only those seven are known.
    {"MoveToUnknownSpecialUse",
     "[mailbox]\non_delete = \"move\"\nmove_to = \"\\\\Bin\"\n" + kMinimal,
     {"t.toml:3:11: mailbox.move_to: \"\\\\Bin\" is not a special-use attribute; a move_to "
      "starting with a backslash must be one of \"\\\\All\", \"\\\\Archive\", \"\\\\Drafts\", "
      "\"\\\\Flagged\", \"\\\\Junk\", \"\\\\Sent\", \"\\\\Trash\" (RFC 6154, any case)"}},
    {"MoveToLoneBackslash",
     "[mailbox]\nmove_to = \"\\\\\"\n" + kMinimal,
     {"t.toml:2:11: mailbox.move_to: \"\\\\\" is not a special-use attribute; a move_to "
      "starting with a backslash must be one of \"\\\\All\", \"\\\\Archive\", \"\\\\Drafts\", "
      "\"\\\\Flagged\", \"\\\\Junk\", \"\\\\Sent\", \"\\\\Trash\" (RFC 6154, any case)"}},
    {"BadUidlFormat",
     "[mailbox]\nuidl_format = \"%08Xu%m\"\n" + kMinimal,
     {"t.toml:2:15: mailbox.uidl_format: unknown directive \"%m\" at offset 5: expected %u (UID), "
      "%v (UIDVALIDITY) or %%, optionally with 0, a width and X, x or d, as in %08Xu"}},
    {"UidlFormatWithoutUid",
     "[mailbox]\nuidl_format = \"%08Xv\"\n" + kMinimal,
     {"t.toml:2:15: mailbox.uidl_format: must contain %u (or %{stable}, %{emailid}, %{gmmsgid}): "
      "without a per-message id the UIDLs are not unique"}},
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
      "e.g. a Docker secret, or oauth2 = \"NAME\" for an [oauth2.NAME] identity"}},
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
    {"AccountMoveToUnknownSpecialUse",
     account("a") + "move_to = \"\\\\Important\"\n" + kMinimal,
     {"t.toml:6:11: account[0].move_to: \"\\\\Important\" is not a special-use attribute; a "
      "move_to starting with a backslash must be one of \"\\\\All\", \"\\\\Archive\", "
      "\"\\\\Drafts\", \"\\\\Flagged\", \"\\\\Junk\", \"\\\\Sent\", \"\\\\Trash\" (RFC 6154, "
      "any case)"}},
    {"AccountBadUidlFormat",
     account("a") + "uidl_format = \"%m\"\n" + kMinimal,
     {"t.toml:6:15: account[0].uidl_format: unknown directive \"%m\" at offset 0: expected %u "
      "(UID), %v (UIDVALIDITY) or %%, optionally with 0, a width and X, x or d, as in %08Xu"}},
};

INSTANTIATE_TEST_SUITE_P(Table, ConfigErrors, ::testing::ValuesIn(kErrorCases),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace popbridge::config::config_test
