#include "proxy/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace popbridge::proxy {
namespace {

template <typename E>
constexpr std::size_t count() {
  return static_cast<std::size_t>(E::kCount);
}

constexpr std::array<std::string_view, count<EndReason>()> kEndReasons = {
    "quit",      "client_closed", "idle_timeout", "login_timeout", "upstream_error",
    "tls_error", "shutdown",      "limit",        "internal"};
constexpr std::array<std::string_view, count<LoginResult>()> kLoginResults = {
    "ok", "auth", "sys_temp", "sys_perm", "in_use", "login_delay", "other"};
constexpr std::array<std::string_view, count<RefusedReason>()> kRefusedReasons = {
    "total", "per_ip", "in_use", "login_delay", "throttled", "proxy_header", "untrusted_proxy"};
constexpr std::array<std::string_view, count<TlsSide>()> kTlsSides = {"client", "upstream"};
constexpr std::array<std::string_view, count<TlsVersionLabel>()> kTlsVersions = {
    "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "other"};
constexpr std::array<std::string_view, count<ReloadResult>()> kReloadResults = {"ok", "error"};
constexpr std::array<protocol::DeletePolicy, kDeletePolicies> kPolicies = {
    protocol::DeletePolicy::Flag, protocol::DeletePolicy::Expunge, protocol::DeletePolicy::Move,
    protocol::DeletePolicy::Seen, protocol::DeletePolicy::Keep};

struct HistogramInfo {
  std::string_view name;
  std::string_view help;
};
constexpr std::array<HistogramInfo, count<HistogramId>()> kHistograms = {{
    {"popbridge_upstream_connect_duration_seconds",
     "Time from starting an upstream connection to its greeting (TCP, TLS)."},
    {"popbridge_login_duration_seconds",
     "Time from a client's PASS or AUTH to the end of the login (+OK with the snapshot, or -ERR)."},
    {"popbridge_snapshot_duration_seconds",
     "Time from the upstream login to the TRANSACTION state (SELECT and the message listing)."},
}};

// Appends "# HELP" and "# TYPE" lines.
void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view labels, double value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ").append(formatSampleValue(value)).append("\n");
}

std::string label(std::string_view name, std::string_view value) {
  return std::string(name) + "=\"" + escapeLabelValue(value) + "\"";
}

}  // namespace

std::string_view toString(EndReason reason) {
  return kEndReasons[static_cast<std::size_t>(reason)];
}
std::string_view toString(LoginResult result) {
  return kLoginResults[static_cast<std::size_t>(result)];
}
std::string_view toString(RefusedReason reason) {
  return kRefusedReasons[static_cast<std::size_t>(reason)];
}
std::string_view toString(TlsSide side) {
  return kTlsSides[static_cast<std::size_t>(side)];
}
std::string_view toString(TlsVersionLabel version) {
  return kTlsVersions[static_cast<std::size_t>(version)];
}

EndReason classifyEndReason(std::string_view reason) {
  // The texts come from Pop3Server::finish, ProxySession and Stream; protocol tests pin them.
  if (reason == "quit" || reason == "client quit before login") return EndReason::Quit;
  if (reason == "idle timeout") return EndReason::IdleTimeout;
  if (reason == "login timeout") return EndReason::LoginTimeout;
  // The drain's texts: "server shutting down (not logged in)", "shutdown timeout: ...".
  if (reason.starts_with("server shutting down") || reason.starts_with("shutdown")) {
    return EndReason::Shutdown;
  }
  if (reason == "internal error") return EndReason::Internal;
  if (reason == "too many bad commands" || reason == "too many failed logins" ||
      reason == "password checks busy") {
    return EndReason::Limit;
  }
  if (reason.starts_with("TLS ")) return EndReason::TlsError;
  // "quit; deletions failed upstream", "upstream lost: ...", "upstream failed during ..."
  if (reason.starts_with("quit;") || reason.starts_with("upstream")) {
    return EndReason::UpstreamError;
  }
  return EndReason::ClientClosed;
}

LoginResult loginResultOf(protocol::RespCode code) {
  switch (code) {
    case protocol::RespCode::Auth:
      return LoginResult::Auth;
    case protocol::RespCode::SysTemp:
      return LoginResult::SysTemp;
    case protocol::RespCode::SysPerm:
      return LoginResult::SysPerm;
    case protocol::RespCode::InUse:
      return LoginResult::InUse;
    case protocol::RespCode::LoginDelay:
      return LoginResult::LoginDelay;
    case protocol::RespCode::None:
      break;
  }
  return LoginResult::Other;
}

TlsVersionLabel tlsVersionLabel(std::string_view version) {
  if (version == "TLSv1.3") return TlsVersionLabel::Tls13;
  if (version == "TLSv1.2") return TlsVersionLabel::Tls12;
  if (version == "TLSv1.1") return TlsVersionLabel::Tls11;
  if (version == "TLSv1") return TlsVersionLabel::Tls10;
  return TlsVersionLabel::Other;
}

void HistogramCells::observe(std::chrono::microseconds duration) noexcept {
  const double seconds = static_cast<double>(duration.count()) / 1e6;
  std::size_t bucket = 0;
  while (bucket < kHistogramBounds.size() && seconds > kHistogramBounds[bucket]) ++bucket;
  buckets[bucket].add();
  count.add();
  sumMicros.add(duration.count() < 0 ? 0 : static_cast<std::uint64_t>(duration.count()));
}

void WorkerMetrics::sessionStarted(std::size_t listener) noexcept {
  if (listener >= sessionsActive_.size()) return;
  sessionsActive_[listener].add();
  sessionsTotal_[listener].add();
}

void WorkerMetrics::sessionEnded(std::size_t listener, EndReason reason) noexcept {
  if (listener < sessionsActive_.size()) sessionsActive_[listener].sub();
  ended_[index(reason)].add();
}

void WorkerMetrics::deleted(protocol::DeletePolicy policy, std::uint32_t n) noexcept {
  if (index(policy) < deleted_.size()) deleted_[index(policy)].add(n);
}

void WorkerMetrics::tlsHandshake(TlsSide side, std::string_view sslVersion) noexcept {
  tls_[index(side)][index(tlsVersionLabel(sslVersion))].add();
}

namespace {

std::size_t slotIn(std::vector<std::string>& slots, const std::string& address) {
  auto it = std::find(slots.begin(), slots.end(), address);
  if (it != slots.end()) return static_cast<std::size_t>(it - slots.begin());
  if (slots.size() >= kMaxListenerSlots) return kMaxListenerSlots;
  slots.push_back(address);
  return slots.size() - 1;
}

}  // namespace

std::size_t WorkerMetrics::listenerSlot(const std::string& address) {
  return registry_ != nullptr ? registry_->listenerSlot(address) : slotIn(ownSlots_, address);
}

Metrics::Metrics(const std::vector<std::string>& listeners, unsigned workers) {
  for (const auto& address : listeners) slotIn(listeners_, address);
  for (unsigned i = 0; i < workers; ++i) {
    workers_.push_back(std::make_unique<WorkerMetrics>());
    workers_.back()->registry_ = this;
  }
}

std::size_t Metrics::listenerSlot(const std::string& address) {
  std::lock_guard lock(slotMutex_);
  return slotIn(listeners_, address);
}

std::string escapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string formatSampleValue(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  char text[64];
  std::to_chars_result result{};
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    result = std::to_chars(text, text + sizeof text, static_cast<std::int64_t>(value));
  } else {
    result = std::to_chars(text, text + sizeof text, value);
  }
  return std::string(text, result.ptr);
}

std::string Metrics::render() const {
  // Sums per metric over the workers, in a fixed order: the page is stable between scrapes.
  auto sum = [&](auto field) {
    double total = 0;
    for (const auto& worker : workers_) total += static_cast<double>(field(*worker));
    return total;
  };
  std::string out;
  out.reserve(8192);

  header(out, "popbridge_build_info", "gauge",
         "Always 1; the version label says which build runs.");
  sample(out, "popbridge_build_info", label("version", version_), 1);
  header(out, "process_start_time_seconds", "gauge",
         "Start time of the process since the Unix epoch, in seconds.");
  sample(out, "process_start_time_seconds", "", startTime_);
  header(out, "popbridge_workers", "gauge", "Worker event loops.");
  sample(out, "popbridge_workers", "", static_cast<double>(workers_.size()));

  std::vector<std::string> listeners;
  {
    std::lock_guard lock(slotMutex_);
    listeners = listeners_;
  }
  header(out, "popbridge_sessions_active", "gauge", "Client sessions open now, by listener.");
  for (std::size_t l = 0; l < listeners.size(); ++l) {
    sample(out, "popbridge_sessions_active", label("listener", listeners[l]),
           sum([l](const WorkerMetrics& w) { return w.sessionsActive_[l].value(); }));
  }
  header(out, "popbridge_sessions_total", "counter", "Client sessions started, by listener.");
  for (std::size_t l = 0; l < listeners.size(); ++l) {
    sample(out, "popbridge_sessions_total", label("listener", listeners[l]),
           sum([l](const WorkerMetrics& w) { return w.sessionsTotal_[l].value(); }));
  }
  header(out, "popbridge_sessions_ended_total", "counter", "Client sessions ended, by reason.");
  for (std::size_t r = 0; r < kEndReasons.size(); ++r) {
    sample(out, "popbridge_sessions_ended_total", label("reason", kEndReasons[r]),
           sum([r](const WorkerMetrics& w) { return w.ended_[r].value(); }));
  }
  header(out, "popbridge_logins_total", "counter",
         "Completed logins (PASS or AUTH), by result: ok, or the -ERR's response code.");
  for (std::size_t r = 0; r < kLoginResults.size(); ++r) {
    sample(out, "popbridge_logins_total", label("result", kLoginResults[r]),
           sum([r](const WorkerMetrics& w) { return w.logins_[r].value(); }));
  }
  header(out, "popbridge_client_bytes_total", "counter",
         "Bytes received from and sent to POP3 clients (after TLS), by direction.");
  sample(out, "popbridge_client_bytes_total", label("direction", "in"),
         sum([](const WorkerMetrics& w) { return w.bytes_[0].value(); }));
  sample(out, "popbridge_client_bytes_total", label("direction", "out"),
         sum([](const WorkerMetrics& w) { return w.bytes_[1].value(); }));
  header(out, "popbridge_upstream_bytes_total", "counter",
         "Bytes received from and sent to the IMAP upstream (after TLS), by direction.");
  sample(out, "popbridge_upstream_bytes_total", label("direction", "in"),
         sum([](const WorkerMetrics& w) { return w.bytes_[2].value(); }));
  sample(out, "popbridge_upstream_bytes_total", label("direction", "out"),
         sum([](const WorkerMetrics& w) { return w.bytes_[3].value(); }));
  header(out, "popbridge_messages_retrieved_total", "counter",
         "Messages sent to clients in full, by command (retr, top).");
  sample(out, "popbridge_messages_retrieved_total", label("command", "retr"),
         sum([](const WorkerMetrics& w) { return w.retr_.value(); }));
  sample(out, "popbridge_messages_retrieved_total", label("command", "top"),
         sum([](const WorkerMetrics& w) { return w.top_.value(); }));
  header(out, "popbridge_messages_deleted_total", "counter",
         "Messages deleted at QUIT, by the delete policy applied upstream.");
  for (std::size_t p = 0; p < kPolicies.size(); ++p) {
    sample(out, "popbridge_messages_deleted_total",
           label("policy", protocol::toString(kPolicies[p])),
           sum([p](const WorkerMetrics& w) { return w.deleted_[p].value(); }));
  }
  header(out, "popbridge_deletions_refused_total", "counter",
         "Messages marked with DELE whose deletion was not applied at QUIT (upstream failure, "
         "UIDVALIDITY change).");
  sample(out, "popbridge_deletions_refused_total", "",
         sum([](const WorkerMetrics& w) { return w.deletionsRefused_.value(); }));
  header(out, "popbridge_uidvalidity_changes_total", "counter",
         "UIDVALIDITY changes seen during a session.");
  sample(out, "popbridge_uidvalidity_changes_total", "",
         sum([](const WorkerMetrics& w) { return w.uidValidityChanges_.value(); }));
  header(out, "popbridge_snapshot_cache_total", "counter",
         "Snapshots taken with the snapshot cache on, by result: hit (refreshed from the cache), "
         "miss (listed in full), invalidated (UIDVALIDITY changed; listed in full).");
  constexpr std::array<std::string_view, 3> kSnapshotResults = {"hit", "miss", "invalidated"};
  for (std::size_t r = 0; r < kSnapshotResults.size(); ++r) {
    sample(out, "popbridge_snapshot_cache_total", label("result", kSnapshotResults[r]),
           sum([r](const WorkerMetrics& w) { return w.snapshotCache_[r].value(); }));
  }
  header(
      out, "popbridge_state_unavailable_total", "counter",
      "Shared-state (Redis) failures: connections that failed or broke, answers that timed out.");
  sample(out, "popbridge_state_unavailable_total", "",
         sum([](const WorkerMetrics& w) { return w.stateUnavailable_.value(); }));
  header(out, "popbridge_maildrop_leases_lost_total", "counter",
         "Maildrop leases found expired or taken over by another session.");
  sample(out, "popbridge_maildrop_leases_lost_total", "",
         sum([](const WorkerMetrics& w) { return w.leasesLost_.value(); }));
  header(out, "popbridge_updates_refused_state_total", "counter",
         "QUITs whose deletions were refused because the maildrop lease was not confirmed.");
  sample(out, "popbridge_updates_refused_state_total", "",
         sum([](const WorkerMetrics& w) { return w.updatesRefusedState_.value(); }));
  header(out, "popbridge_tls_handshakes_total", "counter",
         "Completed TLS handshakes, by side (client, upstream) and protocol version.");
  for (std::size_t s = 0; s < kTlsSides.size(); ++s) {
    for (std::size_t v = 0; v < kTlsVersions.size(); ++v) {
      sample(out, "popbridge_tls_handshakes_total",
             label("side", kTlsSides[s]) + "," + label("version", kTlsVersions[v]),
             sum([s, v](const WorkerMetrics& w) { return w.tls_[s][v].value(); }));
    }
  }
  header(out, "popbridge_tls_handshake_failures_total", "counter",
         "Failed TLS handshakes, by side (client, upstream).");
  for (std::size_t s = 0; s < kTlsSides.size(); ++s) {
    sample(out, "popbridge_tls_handshake_failures_total", label("side", kTlsSides[s]),
           sum([s](const WorkerMetrics& w) { return w.tlsFailures_[s].value(); }));
  }
  header(out, "popbridge_connections_refused_total", "counter",
         "Client connections refused before a session started, by reason.");
  for (std::size_t r = 0; r < kRefusedReasons.size(); ++r) {
    sample(out, "popbridge_connections_refused_total", label("reason", kRefusedReasons[r]),
           sum([r](const WorkerMetrics& w) { return w.refused_[r].value(); }));
  }
  header(out, "popbridge_upstream_connections", "gauge", "IMAP upstream connections open now.");
  sample(out, "popbridge_upstream_connections", "",
         sum([](const WorkerMetrics& w) { return w.upstreamOpen_.value(); }));
  header(out, "popbridge_upstream_pool_lookups_total", "counter",
         "Logins that looked for a pooled upstream connection, by result (hit, miss).");
  sample(out, "popbridge_upstream_pool_lookups_total", label("result", "hit"),
         sum([](const WorkerMetrics& w) { return w.poolLookups_[0].value(); }));
  sample(out, "popbridge_upstream_pool_lookups_total", label("result", "miss"),
         sum([](const WorkerMetrics& w) { return w.poolLookups_[1].value(); }));
  header(out, "popbridge_upstream_pool_drops_total", "counter",
         "Pooled upstream connections closed without reuse, by reason.");
  static constexpr std::array<std::string_view, 4> kPoolDrops = {"expired", "evicted", "dead",
                                                                 "closed"};
  for (std::size_t r = 0; r < kPoolDrops.size(); ++r) {
    sample(out, "popbridge_upstream_pool_drops_total", label("reason", kPoolDrops[r]),
           sum([r](const WorkerMetrics& w) { return w.poolDrops_[r].value(); }));
  }
  header(out, "popbridge_upstream_pooled", "gauge",
         "Idle upstream connections kept in the pool now.");
  sample(out, "popbridge_upstream_pooled", "",
         sum([](const WorkerMetrics& w) { return w.pooled_.value(); }));
  header(out, "popbridge_config_reloads_total", "counter", "Configuration reloads, by result.");
  for (std::size_t r = 0; r < kReloadResults.size(); ++r) {
    sample(out, "popbridge_config_reloads_total", label("result", kReloadResults[r]),
           static_cast<double>(reloads_[r].load(std::memory_order_relaxed)));
  }
  for (std::size_t h = 0; h < kHistograms.size(); ++h) {
    const std::string_view name = kHistograms[h].name;
    header(out, name, "histogram", kHistograms[h].help);
    const std::string bucket = std::string(name) + "_bucket";
    double cumulative = 0;
    for (std::size_t b = 0; b <= kHistogramBounds.size(); ++b) {
      cumulative +=
          sum([h, b](const WorkerMetrics& w) { return w.histograms_[h].buckets[b].value(); });
      const std::string le =
          b < kHistogramBounds.size() ? formatSampleValue(kHistogramBounds[b]) : "+Inf";
      sample(out, bucket, label("le", le), cumulative);
    }
    sample(out, std::string(name) + "_sum", "",
           sum([h](const WorkerMetrics& w) { return w.histograms_[h].sumMicros.value(); }) / 1e6);
    // Equal to the +Inf bucket by construction, read once more for the format's _count.
    sample(out, std::string(name) + "_count", "", cumulative);
  }
  return out;
}

}  // namespace popbridge::proxy
