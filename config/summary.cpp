// The --check-config summary: every setting as it will be used, and never a secret.
#include "config/config.h"
#include "config/message_text.h"
#include "protocol/net_address.h"

namespace popbridge::config {
namespace {

std::string yesNo(bool value) {
  return value ? "true" : "false";
}

std::string summarizeMailbox(const MailboxOptions& mailbox) {
  std::string out =
      "folder=" + quote(mailbox.folder) + " on_delete=" + std::string(toString(mailbox.onDelete));
  if (mailbox.onDelete == DeletePolicy::Move) out += " move_to=" + quote(mailbox.moveTo);
  out += " mark_seen_on_retr=" + yesNo(mailbox.markSeenOnRetr);
  out += " uidl_format=" + quote(mailbox.uidl.spec());
  out += " max_messages=" +
         (mailbox.maxMessages == 0 ? std::string("0 (all)") : std::to_string(mailbox.maxMessages));
  out += " exclusive=" + yesNo(mailbox.exclusive);
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
  out += " login_timeout=" + formatDuration(s.loginTimeout);
  out += " max_password_checks=" + std::to_string(s.maxPasswordChecks);
  out += " password_check_queue=" + std::to_string(s.passwordCheckQueue);
  out +=
      " login_throttle_after=" +
      (s.loginThrottleAfter == 0 ? std::string("0 (off)") : std::to_string(s.loginThrottleAfter));
  out += " login_throttle_max_delay=" + formatDuration(s.loginThrottleMaxDelay);
  out += " login_throttle_user_after=" + (s.loginThrottleUserAfter == 0
                                              ? std::string("0 (off)")
                                              : std::to_string(s.loginThrottleUserAfter));
  out += " login_delay=" + (s.loginDelay == Duration::zero() ? std::string("0s (off)")
                                                             : formatDuration(s.loginDelay));
  out += " max_sessions_per_account=" + (s.maxSessionsPerAccount == 0
                                             ? std::string("0 (unlimited)")
                                             : std::to_string(s.maxSessionsPerAccount));
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
             " ciphers=" + (l.ciphers.empty() ? std::string("(profile)") : quote(l.ciphers)) +
             " handshake_timeout=" + formatDuration(l.handshakeTimeout);
    }
    out += " allow_plaintext_auth=" + yesNo(l.allowPlaintextAuth);
    if (l.proxyProtocol) {
      out += " proxy_protocol=yes trusted_proxies=";
      for (std::size_t p = 0; p < l.trustedProxies.size(); ++p) {
        out += (p == 0 ? "" : ",") + l.trustedProxies[p].toString();
      }
      out += " proxy_protocol_timeout=" + formatDuration(l.proxyProtocolTimeout);
    }
    out += "\n";
  }

  const UpstreamConfig& u = config.upstream;
  out += "upstream: " + protocol::formatHostPort(u.host, u.port) +
         " tls=" + std::string(toString(u.tls));
  if (u.tls != UpstreamTls::None) {
    out += " server_name=" + quote(u.effectiveServerName()) +
           " verify_certificate=" + yesNo(u.verifyCertificate) +
           " ca_file=" + (u.caFile.empty() ? std::string("(system bundle)") : quote(u.caFile)) +
           " min_tls_version=" + std::string(toString(u.minTlsVersion));
  }
  out += " auth=" + std::string(toString(u.auth));
  out += " send_client_address=" + yesNo(u.sendClientAddress);
  out += " read_ahead=" + yesNo(u.readAhead);
  out += " snapshot_cache=" + (u.snapshotCache
                                   ? std::to_string(u.snapshotCacheMaxMessages) + " messages"
                                   : std::string("no"));
  out += " connect_timeout=" + formatDuration(u.connectTimeout);
  out += " command_timeout=" + formatDuration(u.commandTimeout) + "\n";

  out += "mailbox: " + summarizeMailbox(config.mailbox) + "\n";

  if (!config.metrics.address.empty()) {
    const MetricsConfig& m = config.metrics;
    out += "metrics: http://" + m.address +
           "/metrics /healthz /readyz readyz_cache=" + formatDuration(m.readyzCache) +
           " healthz_stale=" + formatDuration(m.healthzStale) +
           " max_connections=" + std::to_string(m.maxConnections) + "\n";
  }

  if (config.state.redisEnabled()) {
    const StateConfig& st = config.state;
    // The password is deliberately left out.
    out += "state: " + st.redisDisplay() + (st.redisPassword.empty() ? "" : " auth=yes") +
           " timeout=" + formatDuration(st.redisTimeout) +
           " lease_ttl=" + formatDuration(st.leaseTtl) + " key_prefix=\"" + st.keyPrefix + "\"\n";
  } else if (!config.state.path.empty()) {
    out += "state: " + config.state.path + " (embedded, SQLite)\n";
  }

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
