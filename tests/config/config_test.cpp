// The config loader: combined errors, warnings, environment overrides and
// the values a good config produces.

#include <ostream>
#include <string>
#include <vector>

#include "tests/config/config_fixture.h"

namespace popbridge::config::config_test {
namespace {

using namespace std::chrono_literals;

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
  EXPECT_EQ(upstream.poolIdle, 60s);
  EXPECT_EQ(upstream.poolMaxPerAccount, 2u);
  EXPECT_EQ(upstream.poolMaxTotal, 256u);
  EXPECT_EQ(upstream.serverName, "");
  EXPECT_EQ(upstream.effectiveServerName(), "127.0.0.1");
  EXPECT_EQ(upstream.connectTimeout, 10s);
  EXPECT_EQ(upstream.commandTimeout, 60s);
  EXPECT_EQ(upstream.auth, UpstreamLogin::Auto);
  EXPECT_EQ(upstream.minTlsVersion, TlsVersion::V1_2);
  EXPECT_TRUE(upstream.readAhead);

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
      "write_high_watermark = 1048576\nlogin_timeout = \"15s\"\nmax_password_checks = 2\n"
      "password_check_queue = 0\nlogin_throttle_after = 0\nlogin_throttle_max_delay = \"5s\"\n"
      "[[listener]]\n"
      "address = \"127.0.0.2:995\"\ntls = \"implicit\"\ncertificate = \"@DIR@/cert.pem\"\n"
      "private_key = \"@DIR@/key.pem\"\nmin_tls_version = \"1.3\"\n"
      "allow_plaintext_auth = false\nhandshake_timeout = \"5s\"\n"
      "ciphers = \"ECDHE+AESGCM\"\n"
      "[upstream]\n"
      "host = \"[2001:db8::1]\"\nport = 1993\ntls = \"starttls\"\nca_file = \"@DIR@/ca.pem\"\n"
      "verify_certificate = true\nserver_name = \"mail.example.org\"\n"
      "connect_timeout = \"3s\"\ncommand_timeout = \"2m\"\nauth = \"login\"\n"
      "min_tls_version = \"1.3\"\nsend_client_address = false\nread_ahead = false\n"
      "pool_idle = \"0s\"\n"
      "pool_max_per_account = 1\npool_max_total = 10\n"
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
  EXPECT_EQ(c.server.loginTimeout, 15s);
  EXPECT_EQ(c.server.maxPasswordChecks, 2u);
  EXPECT_EQ(c.server.passwordCheckQueue, 0u);
  EXPECT_EQ(c.server.loginThrottleAfter, 0u);
  EXPECT_EQ(c.server.loginThrottleMaxDelay, 5s);
  const ListenerConfig& l = c.listeners.at(0);
  EXPECT_EQ(l.host, "127.0.0.2");
  EXPECT_EQ(l.port, 995);
  EXPECT_EQ(l.tls, ListenerTls::Implicit);
  EXPECT_EQ(l.privateKey, dir_.path() + "/key.pem");
  EXPECT_EQ(l.minTlsVersion, TlsVersion::V1_3);
  EXPECT_FALSE(l.allowPlaintextAuth);
  EXPECT_EQ(l.handshakeTimeout, 5s);
  EXPECT_EQ(l.ciphers, "ECDHE+AESGCM");
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
  EXPECT_FALSE(c.upstream.sendClientAddress);
  EXPECT_FALSE(c.upstream.readAhead);
  EXPECT_EQ(c.upstream.poolIdle, 0s);  // pooling off
  EXPECT_EQ(c.upstream.poolMaxPerAccount, 1u);
  EXPECT_EQ(c.upstream.poolMaxTotal, 10u);
  EXPECT_EQ(c.mailbox.folder, "Archive/2024");
  EXPECT_EQ(c.mailbox.onDelete, DeletePolicy::Expunge);
  EXPECT_EQ(c.mailbox.moveTo, "Bin");
  EXPECT_TRUE(c.mailbox.markSeenOnRetr);
  EXPECT_EQ(c.mailbox.uidl.spec(), "%xu.%xv");
  EXPECT_EQ(c.mailbox.maxMessages, 1000u);
}

TEST_F(ConfigTest, MoveToMayNameASpecialUseAttributeInAnyCase) {
  // Stored in the canonical spelling; a folder with the attribute's spelling is no conflict,
  // since the attribute names whatever folder the server marks with it.
  const LoadResult result =
      load("[mailbox]\nfolder = \"\\\\Trash\"\non_delete = \"move\"\nmove_to = \"\\\\tRaSh\"\n" +
           account("scanner") + "move_to = \"\\\\ARCHIVE\"\n" + account("printer") +
           "move_to = \"Deleted Items\"\n" + kMinimal);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  const Config& config = *result.config;
  EXPECT_EQ(config.mailbox.moveTo, "\\Trash");
  EXPECT_EQ(config.findAccount("scanner")->mailbox.moveTo, "\\Archive");
  EXPECT_EQ(config.findAccount("printer")->mailbox.moveTo, "Deleted Items");
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
    {"NoFailureDelayNoThrottle",
     "[server]\nauth_failure_delay = \"0s\"\n" + kMinimal,
     {"t.toml:2:22: server.auth_failure_delay: 0s also turns off the login throttles "
      "(login_throttle_after, login_throttle_user_after), which double this delay"}},
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
    {"StableUidlWithoutState",
     "[mailbox]\nuidl_format = \"%{stable}\"\n" + kMinimal,
     {"t.toml: mailbox.uidl_format: %{stable} keeps its UIDL map only with [state] path or redis; "
      "without one, a message without EMAILID or X-GM-MSGID gets %08Xu%08Xv, which changes with "
      "UIDVALIDITY"}},
    {"StableUidlWithStateIsQuiet",
     "[mailbox]\nuidl_format = \"%{stable}\"\n" + kMinimal + "[state]\npath = \"/tmp/s.db\"\n",
     {}},
    {"EmailIdNeedsNoUidValidity", "[mailbox]\nuidl_format = \"E%{emailid}\"\n" + kMinimal, {}},
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
      {"POPBRIDGE_UPSTREAM_POOL_IDLE", "0s"},
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
  EXPECT_EQ(c.upstream.poolIdle, 0s);
  // The account keeps its own folder and inherits the overridden on_delete.
  EXPECT_EQ(c.accounts.at(0).mailbox.folder, "Own");
  EXPECT_EQ(c.accounts.at(0).mailbox.onDelete, DeletePolicy::Keep);
}

TEST_F(ConfigTest, SnapshotCacheKeys) {
  const LoadResult defaults = load(kMinimal);
  ASSERT_TRUE(defaults.ok()) << testing::PrintToString(errorsOf(defaults));
  EXPECT_TRUE(defaults.config->upstream.snapshotCache);
  EXPECT_EQ(defaults.config->upstream.snapshotCacheMaxMessages, 2'000'000u);
  const LoadResult set =
      load(upstreamWith("host = \"127.0.0.1\"\ntls = \"none\"\nsnapshot_cache = false\n"
                        "snapshot_cache_max_messages = 5000\n"));
  ASSERT_TRUE(set.ok()) << testing::PrintToString(errorsOf(set));
  EXPECT_FALSE(set.config->upstream.snapshotCache);
  EXPECT_EQ(set.config->upstream.snapshotCacheMaxMessages, 5000u);
  // The environment wins over the file, both ways.
  const LoadResult off = load(kMinimal, {{"POPBRIDGE_UPSTREAM_SNAPSHOT_CACHE", "false"}});
  ASSERT_TRUE(off.ok()) << testing::PrintToString(errorsOf(off));
  EXPECT_FALSE(off.config->upstream.snapshotCache);
  const LoadResult on =
      load(upstreamWith("host = \"127.0.0.1\"\ntls = \"none\"\nsnapshot_cache = false\n"),
           {{"POPBRIDGE_UPSTREAM_SNAPSHOT_CACHE", "true"}});
  ASSERT_TRUE(on.ok()) << testing::PrintToString(errorsOf(on));
  EXPECT_TRUE(on.config->upstream.snapshotCache);
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
    {"SnapshotCacheNotABool",
     {{"POPBRIDGE_UPSTREAM_SNAPSHOT_CACHE", "yes"}},
     kMinimal,
     {"POPBRIDGE_UPSTREAM_SNAPSHOT_CACHE: upstream.snapshot_cache: expected true or false, got "
      "\"yes\""}},
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
    {"PoolIdle",
     {{"POPBRIDGE_UPSTREAM_POOL_IDLE", "forever"}},
     kMinimal,
     {"POPBRIDGE_UPSTREAM_POOL_IDLE: upstream.pool_idle: expected a duration like \"500ms\", "
      "\"30s\", \"10m\", \"1h\" or \"1h30m\", got \"forever\""}},
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
}  // namespace popbridge::config::config_test
