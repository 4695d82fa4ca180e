#include "config/keys.h"

#include <array>

namespace popbridge::config {
namespace {

constexpr std::array<std::string_view, 8> kRoot{"server",  "listener", "upstream", "mailbox",
                                                "account", "oauth2",   "metrics",  "state"};
constexpr std::array<std::string_view, 19> kServer{"workers",
                                                   "idle_timeout",
                                                   "max_connections",
                                                   "max_connections_per_ip",
                                                   "log_level",
                                                   "log_format",
                                                   "max_bad_commands",
                                                   "auth_failure_delay",
                                                   "login_timeout",
                                                   "max_password_checks",
                                                   "password_check_queue",
                                                   "login_throttle_after",
                                                   "login_throttle_max_delay",
                                                   "login_throttle_user_after",
                                                   "login_delay",
                                                   "max_sessions_per_account",
                                                   "shutdown_timeout",
                                                   "buffer_size",
                                                   "write_high_watermark"};
constexpr std::array<std::string_view, 11> kListener{"address",
                                                     "tls",
                                                     "certificate",
                                                     "private_key",
                                                     "min_tls_version",
                                                     "ciphers",
                                                     "allow_plaintext_auth",
                                                     "handshake_timeout",
                                                     "proxy_protocol",
                                                     "trusted_proxies",
                                                     "proxy_protocol_timeout"};
constexpr std::array<std::string_view, 17> kUpstream{"host",
                                                     "port",
                                                     "tls",
                                                     "ca_file",
                                                     "verify_certificate",
                                                     "server_name",
                                                     "connect_timeout",
                                                     "command_timeout",
                                                     "auth",
                                                     "min_tls_version",
                                                     "send_client_address",
                                                     "read_ahead",
                                                     "pool_idle",
                                                     "pool_max_per_account",
                                                     "pool_max_total",
                                                     "snapshot_cache",
                                                     "snapshot_cache_max_messages"};
constexpr std::array<std::string_view, 7> kMailbox{
    "folder",      "on_delete",    "move_to",  "mark_seen_on_retr",
    "uidl_format", "max_messages", "exclusive"};
constexpr std::array<std::string_view, 12> kAccount{
    "user",         "password_hash", "upstream_user", "upstream_password_file", "oauth2",
    "folder",       "on_delete",     "move_to",       "mark_seen_on_retr",      "uidl_format",
    "max_messages", "exclusive"};
constexpr std::array<std::string_view, 17> kOAuth2{"provider",
                                                   "grant",
                                                   "tenant",
                                                   "client_id",
                                                   "client_secret_file",
                                                   "refresh_token_file",
                                                   "token_command",
                                                   "token_command_timeout",
                                                   "token_endpoint",
                                                   "device_authorization_endpoint",
                                                   "scope",
                                                   "user",
                                                   "mechanism",
                                                   "https_proxy",
                                                   "ca_file",
                                                   "request_timeout",
                                                   "refresh_before"};

constexpr std::array<std::string_view, 4> kMetrics{"address", "readyz_cache", "healthz_stale",
                                                   "max_connections"};

constexpr std::array<std::string_view, 8> kState{
    "path",          "redis",     "redis_password_file", "redis_ca_file",
    "redis_timeout", "lease_ttl", "key_prefix",          "redis_user"};

constexpr std::array<EnvironmentOverride, 11> kOverrides{{
    {"POPBRIDGE_UPSTREAM_HOST", "upstream", "host", false},
    {"POPBRIDGE_UPSTREAM_PORT", "upstream", "port", true},
    {"POPBRIDGE_UPSTREAM_TLS", "upstream", "tls", false},
    {"POPBRIDGE_UPSTREAM_CA_FILE", "upstream", "ca_file", false},
    {"POPBRIDGE_UPSTREAM_SERVER_NAME", "upstream", "server_name", false},
    {"POPBRIDGE_UPSTREAM_POOL_IDLE", "upstream", "pool_idle", false},
    {"POPBRIDGE_LOG_LEVEL", "server", "log_level", false},
    {"POPBRIDGE_LOG_FORMAT", "server", "log_format", false},
    {"POPBRIDGE_MAILBOX_FOLDER", "mailbox", "folder", false},
    {"POPBRIDGE_MAILBOX_ON_DELETE", "mailbox", "on_delete", false},
    {"POPBRIDGE_UPSTREAM_SNAPSHOT_CACHE", "upstream", "snapshot_cache", false, true},
}};

}  // namespace

constinit const std::span<const std::string_view> kRootKeys = kRoot;
constinit const std::span<const std::string_view> kServerKeys = kServer;
constinit const std::span<const std::string_view> kListenerKeys = kListener;
constinit const std::span<const std::string_view> kUpstreamKeys = kUpstream;
constinit const std::span<const std::string_view> kMailboxKeys = kMailbox;
constinit const std::span<const std::string_view> kAccountKeys = kAccount;
constinit const std::span<const std::string_view> kOAuth2Keys = kOAuth2;
constinit const std::span<const std::string_view> kMetricsKeys = kMetrics;
constinit const std::span<const std::string_view> kStateKeys = kState;
constinit const std::span<const EnvironmentOverride> kEnvironmentOverrides = kOverrides;

}  // namespace popbridge::config
