// config/popbridge.example.toml is what users copy, so it must load, without warnings, and must
// mention every key. It refers to /etc/popbridge/tls/ and /run/secrets/ like a real deployment;
// the test points those at files it creates.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/password.h"

namespace popbridge::config {
namespace {

using namespace std::chrono_literals;

const std::string kExamplePath =
    std::string(POPBRIDGE_SOURCE_DIR) + "/config/popbridge.example.toml";

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string replaceAll(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

class ExampleConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = std::filesystem::temp_directory_path() / "popbridge-example-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    std::filesystem::create_directories(dir_ + "/tls");
    std::filesystem::create_directories(dir_ + "/secrets");
    std::ofstream(dir_ + "/tls/cert.pem") << "-----BEGIN CERTIFICATE-----\n";
    std::ofstream(dir_ + "/tls/key.pem") << "-----BEGIN PRIVATE KEY-----\n";
    std::ofstream(dir_ + "/secrets/scans") << "imap-password\n";
    std::ofstream(dir_ + "/secrets/printers_client_secret") << "client-secret\n";
    std::filesystem::create_directories(dir_ + "/state");
    std::ofstream(dir_ + "/state/printers.token") << "refresh-token\n";
    std::filesystem::permissions(
        dir_ + "/state/printers.token",
        std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

    example_ = readFile(kExamplePath);
    ASSERT_FALSE(example_.empty()) << "cannot read " << kExamplePath;
    const std::string text =
        replaceAll(replaceAll(replaceAll(example_, "/etc/popbridge/tls/", dir_ + "/tls/"),
                              "/run/secrets/", dir_ + "/secrets/"),
                   "/var/lib/popbridge/", dir_ + "/state/");
    configPath_ = dir_ + "/popbridge.toml";
    std::ofstream(configPath_) << text;
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }

  std::string dir_;
  std::string example_;
  std::string configPath_;
};

TEST_F(ExampleConfig, LoadsWithoutErrorsOrWarnings) {
  const LoadResult result = loadConfigFile(configPath_, {});
  std::vector<std::string> errors;
  for (const ConfigError& error : result.errors) errors.push_back(error.toString());
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errors);
  EXPECT_TRUE(result.warnings.empty()) << testing::PrintToString(result.warnings);

  const Config& config = *result.config;
  ASSERT_EQ(config.listeners.size(), 2u);
  EXPECT_EQ(config.listeners[0].port, 110);
  EXPECT_EQ(config.listeners[0].tls, ListenerTls::StartTls);
  EXPECT_EQ(config.listeners[0].certificate, dir_ + "/tls/cert.pem");
  EXPECT_EQ(config.listeners[1].host, "::");
  EXPECT_EQ(config.listeners[1].port, 995);
  EXPECT_EQ(config.listeners[1].tls, ListenerTls::Implicit);
  EXPECT_EQ(config.upstream.host, "imap.example.com");
  EXPECT_EQ(config.upstream.port, 993);
  ASSERT_EQ(config.accounts.size(), 2u);
  const AccountConfig& scanner = config.accounts[0];
  EXPECT_EQ(scanner.user, "scanner1");
  EXPECT_EQ(scanner.upstreamUser, "scans@example.com");
  EXPECT_EQ(scanner.upstreamPassword, "imap-password");
  EXPECT_EQ(scanner.mailbox.folder, "Scans");
  EXPECT_EQ(scanner.mailbox.onDelete, DeletePolicy::Move);
  EXPECT_EQ(scanner.mailbox.moveTo, "Scans/Done");
  EXPECT_EQ(scanner.mailbox.maxMessages, 500u);
  EXPECT_TRUE(verifyPassword(scanner.passwordHash, "change-me"));
  const AccountConfig& printer = config.accounts[1];
  EXPECT_EQ(printer.oauth2, "printers");
  EXPECT_EQ(printer.upstreamUser, "shared-scans@example.com");
  ASSERT_EQ(config.oauth2.size(), 1u);
  EXPECT_EQ(config.oauth2[0].clientSecret, "client-secret");
  EXPECT_EQ(config.oauth2[0].refreshTokenFile, dir_ + "/state/printers.token");
}

// The example documents defaults; they must be the defaults the code uses. Only the values the
// example changes on purpose (the listeners, upstream host, and the account) may differ.
TEST_F(ExampleConfig, StatesTheRealDefaults) {
  const LoadResult result = loadConfigFile(configPath_, {});
  ASSERT_TRUE(result.ok());
  const Config& example = *result.config;
  const ServerConfig defaults;
  EXPECT_EQ(example.server.workers, defaults.workers);
  EXPECT_EQ(example.server.idleTimeout, defaults.idleTimeout);
  EXPECT_EQ(example.server.maxConnections, defaults.maxConnections);
  EXPECT_EQ(example.server.maxConnectionsPerIp, defaults.maxConnectionsPerIp);
  EXPECT_EQ(example.server.logLevel, defaults.logLevel);
  EXPECT_EQ(example.server.logFormat, defaults.logFormat);
  EXPECT_EQ(example.server.maxBadCommands, defaults.maxBadCommands);
  EXPECT_EQ(example.server.authFailureDelay, defaults.authFailureDelay);
  EXPECT_EQ(example.server.shutdownTimeout, defaults.shutdownTimeout);
  EXPECT_EQ(example.server.bufferSize, defaults.bufferSize);
  EXPECT_EQ(example.server.writeHighWatermark, defaults.writeHighWatermark);
  EXPECT_EQ(example.server.loginThrottleUserAfter, defaults.loginThrottleUserAfter);
  EXPECT_EQ(example.server.loginDelay, defaults.loginDelay);
  EXPECT_EQ(example.server.maxSessionsPerAccount, defaults.maxSessionsPerAccount);

  const ListenerConfig listenerDefaults;
  EXPECT_EQ(example.listeners[0].tls, listenerDefaults.tls);
  EXPECT_EQ(example.listeners[0].minTlsVersion, listenerDefaults.minTlsVersion);
  EXPECT_EQ(example.listeners[0].allowPlaintextAuth, listenerDefaults.allowPlaintextAuth);
  EXPECT_EQ(example.listeners[0].handshakeTimeout, listenerDefaults.handshakeTimeout);

  const UpstreamConfig upstreamDefaults;
  EXPECT_EQ(example.upstream.port, upstreamDefaults.port);
  EXPECT_EQ(example.upstream.tls, upstreamDefaults.tls);
  EXPECT_EQ(example.upstream.caFile, upstreamDefaults.caFile);
  EXPECT_EQ(example.upstream.verifyCertificate, upstreamDefaults.verifyCertificate);
  EXPECT_EQ(example.upstream.serverName, upstreamDefaults.serverName);
  EXPECT_EQ(example.upstream.connectTimeout, upstreamDefaults.connectTimeout);
  EXPECT_EQ(example.upstream.commandTimeout, upstreamDefaults.commandTimeout);
  EXPECT_EQ(example.upstream.auth, upstreamDefaults.auth);
  EXPECT_EQ(example.upstream.minTlsVersion, upstreamDefaults.minTlsVersion);

  const MailboxOptions mailboxDefaults;
  EXPECT_EQ(example.mailbox.folder, mailboxDefaults.folder);
  EXPECT_EQ(example.mailbox.onDelete, mailboxDefaults.onDelete);
  EXPECT_EQ(example.mailbox.moveTo, mailboxDefaults.moveTo);
  EXPECT_EQ(example.mailbox.markSeenOnRetr, mailboxDefaults.markSeenOnRetr);
  EXPECT_EQ(example.mailbox.uidl.spec(), mailboxDefaults.uidl.spec());
  EXPECT_EQ(example.mailbox.maxMessages, mailboxDefaults.maxMessages);
  EXPECT_EQ(example.mailbox.exclusive, mailboxDefaults.exclusive);

  const MetricsConfig metricsDefaults;
  EXPECT_EQ(example.metrics.address, metricsDefaults.address);
  EXPECT_EQ(example.metrics.readyzCache, metricsDefaults.readyzCache);
  EXPECT_EQ(example.metrics.healthzStale, metricsDefaults.healthzStale);
  EXPECT_EQ(example.metrics.maxConnections, metricsDefaults.maxConnections);

  const StateConfig stateDefaults;
  EXPECT_EQ(example.state.redisTimeout, stateDefaults.redisTimeout);
  EXPECT_EQ(example.state.leaseTtl, stateDefaults.leaseTtl);
  EXPECT_EQ(example.state.keyPrefix, stateDefaults.keyPrefix);
  EXPECT_FALSE(example.state.redisEnabled());
}

// Every key the loader accepts, by table. A key added to the loader but not to the example (or
// to this list) is caught here or by the unknown-key check when the example loads.
TEST_F(ExampleConfig, SetsEveryKeyInItsTable) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> tables = {
      {"[server]",
       {"workers", "idle_timeout", "max_connections", "max_connections_per_ip", "log_level",
        "log_format", "max_bad_commands", "auth_failure_delay", "login_timeout",
        "max_password_checks", "password_check_queue", "login_throttle_after",
        "login_throttle_max_delay", "shutdown_timeout", "buffer_size", "write_high_watermark",
        "login_throttle_user_after", "login_delay", "max_sessions_per_account"}},
      {"[[listener]]",
       {"address", "tls", "certificate", "private_key", "min_tls_version", "ciphers",
        "allow_plaintext_auth", "handshake_timeout", "proxy_protocol", "trusted_proxies",
        "proxy_protocol_timeout"}},
      {"[upstream]",
       {"host", "port", "tls", "ca_file", "verify_certificate", "server_name", "connect_timeout",
        "command_timeout", "auth", "min_tls_version", "send_client_address", "read_ahead",
        "pool_idle", "pool_max_per_account", "pool_max_total", "snapshot_cache",
        "snapshot_cache_max_messages"}},
      {"[mailbox]",
       {"folder", "on_delete", "move_to", "mark_seen_on_retr", "uidl_format", "max_messages",
        "exclusive"}},
      {"[metrics]", {"address", "readyz_cache", "healthz_stale", "max_connections"}},
      // The redis keys are shown commented out: set, the example would need a Redis.
      {"[state]", {"path", "redis_timeout", "lease_ttl", "key_prefix"}},
      {"[[account]]",
       {"user", "password_hash", "upstream_user", "upstream_password_file", "folder", "on_delete",
        "move_to", "mark_seen_on_retr", "uidl_format", "max_messages", "exclusive"}},
      // ca_file, https_proxy, token_command and token_command_timeout are shown commented out:
      // set, they would change what the example does.
      {"[oauth2.printers]",
       {"provider", "grant", "tenant", "client_id", "client_secret_file", "refresh_token_file",
        "token_endpoint", "device_authorization_endpoint", "scope", "user", "mechanism",
        "request_timeout", "refresh_before"}},
  };
  for (const auto& [header, keys] : tables) {
    const std::size_t start = example_.find("\n" + header + "\n");
    ASSERT_NE(start, std::string::npos) << header;
    // The table runs to the next header line.
    const std::size_t end = example_.find("\n[", start + header.size() + 1);
    const std::string body = example_.substr(start, end == std::string::npos ? end : end - start);
    for (const std::string& key : keys) {
      EXPECT_TRUE(std::regex_search(body, std::regex("\n" + key + " = ")))
          << header << " does not set " << key;
    }
  }
}

TEST_F(ExampleConfig, ListsEveryEnvironmentOverride) {
  for (const char* name :
       {"POPBRIDGE_UPSTREAM_HOST", "POPBRIDGE_UPSTREAM_PORT", "POPBRIDGE_UPSTREAM_TLS",
        "POPBRIDGE_UPSTREAM_CA_FILE", "POPBRIDGE_UPSTREAM_SERVER_NAME", "POPBRIDGE_LOG_LEVEL",
        "POPBRIDGE_LOG_FORMAT", "POPBRIDGE_MAILBOX_FOLDER", "POPBRIDGE_MAILBOX_ON_DELETE",
        "POPBRIDGE_UPSTREAM_POOL_IDLE", "POPBRIDGE_UPSTREAM_SNAPSHOT_CACHE"}) {
    EXPECT_NE(example_.find(name), std::string::npos) << name;
    // And each one is really honoured (none is warned about as unknown).
    const LoadResult result = loadConfigFile(configPath_, {{name, "x"}});
    for (const std::string& warning : result.warnings) {
      EXPECT_EQ(warning.find("unknown environment variable"), std::string::npos) << warning;
    }
  }
}

// The scale-out deployment files: every replica's config must load, with no warning but the
// one a metrics listener on 0.0.0.0 gives (haproxy and the kubelet reach /readyz there).
class DeploymentConfig : public ExampleConfig {
 protected:
  // Loads `text` with the deployment's paths pointed at the fixture's files; expects it valid.
  LoadResult load(const std::string& text) {
    std::ofstream(dir_ + "/tls/tls.crt") << "-----BEGIN CERTIFICATE-----\n";
    std::ofstream(dir_ + "/tls/tls.key") << "-----BEGIN PRIVATE KEY-----\n";
    const std::string path = dir_ + "/deployment.toml";
    std::ofstream(path) << replaceAll(text, "/etc/popbridge/tls/", dir_ + "/tls/");
    LoadResult result = loadConfigFile(path, {});
    std::vector<std::string> errors;
    for (const ConfigError& error : result.errors) errors.push_back(error.toString());
    EXPECT_TRUE(result.ok()) << testing::PrintToString(errors);
    for (const std::string& warning : result.warnings) {
      EXPECT_NE(warning.find("metrics.address"), std::string::npos) << warning;
    }
    return result;
  }
  static void expectSharedState(const Config& config) {
    EXPECT_TRUE(config.state.redisEnabled());
    EXPECT_EQ(config.metrics.port, 9110);
  }
};

TEST_F(DeploymentConfig, DockerScaleReplicaConfigLoads) {
  const std::string text =
      readFile(std::string(POPBRIDGE_SOURCE_DIR) + "/docker/popbridge.scale.toml");
  ASSERT_FALSE(text.empty());
  const LoadResult result = load(text);
  ASSERT_TRUE(result.ok());
  expectSharedState(*result.config);
  ASSERT_EQ(result.config->listeners.size(), 2u);
  for (const ListenerConfig& listener : result.config->listeners) {
    EXPECT_TRUE(listener.proxyProtocol);
    EXPECT_EQ(listener.trustedProxies.size(), 1u);
  }
}

// The ConfigMap's popbridge.toml, the block scalar under "popbridge.toml: |".
TEST_F(DeploymentConfig, KubernetesConfigMapLoads) {
  const std::string yaml =
      readFile(std::string(POPBRIDGE_SOURCE_DIR) + "/docker/k8s/popbridge.yaml");
  const std::string head = "  popbridge.toml: |\n";
  std::size_t at = yaml.find(head);
  ASSERT_NE(at, std::string::npos);
  at += head.size();
  std::string text;
  while (at < yaml.size()) {
    const std::size_t end = yaml.find('\n', at);
    const std::string line = yaml.substr(at, end - at);
    if (!line.empty() && line.rfind("    ", 0) != 0) break;
    text += (line.empty() ? line : line.substr(4)) + "\n";
    if (end == std::string::npos) break;
    at = end + 1;
  }
  const LoadResult result = load(text);
  ASSERT_TRUE(result.ok());
  expectSharedState(*result.config);
}

}  // namespace
}  // namespace popbridge::config
