// The registry: per-worker blocks summed on scrape, histogram buckets, and the exact text format.

#include "proxy/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace popbridge::proxy {
namespace {

using namespace std::chrono_literals;

// The lines of `page` that start with `prefix`.
std::string linesStarting(const std::string& page, const std::string& prefix) {
  std::string out;
  std::size_t at = 0;
  while (at < page.size()) {
    std::size_t end = page.find('\n', at);
    if (end == std::string::npos) end = page.size();
    const std::string line = page.substr(at, end - at);
    if (line.starts_with(prefix)) out += line + "\n";
    at = end + 1;
  }
  return out;
}

TEST(Metrics, SumsEveryWorkersBlock) {
  Metrics metrics({"0.0.0.0:110", "[::]:995"}, 3);
  metrics.worker(0).sessionStarted(0);
  metrics.worker(1).sessionStarted(0);
  metrics.worker(2).sessionStarted(1);
  metrics.worker(1).sessionEnded(0, EndReason::Quit);
  metrics.worker(0).bytes(ByteCounter::ClientOut, 1000);
  metrics.worker(2).bytes(ByteCounter::ClientOut, 24);
  metrics.worker(0).login(LoginResult::Ok);
  metrics.worker(2).login(LoginResult::Auth);
  metrics.worker(1).deleted(protocol::DeletePolicy::Expunge, 2);
  metrics.worker(2).deleted(protocol::DeletePolicy::Expunge, 3);
  metrics.worker(0).upstreamOpened();
  metrics.worker(1).upstreamOpened();
  metrics.worker(1).upstreamClosed();
  const std::string page = metrics.render();
  EXPECT_EQ(linesStarting(page, "popbridge_sessions_active{"),
            "popbridge_sessions_active{listener=\"0.0.0.0:110\"} 1\n"
            "popbridge_sessions_active{listener=\"[::]:995\"} 1\n");
  EXPECT_EQ(linesStarting(page, "popbridge_sessions_total{"),
            "popbridge_sessions_total{listener=\"0.0.0.0:110\"} 2\n"
            "popbridge_sessions_total{listener=\"[::]:995\"} 1\n");
  EXPECT_NE(page.find("popbridge_sessions_ended_total{reason=\"quit\"} 1\n"), std::string::npos);
  EXPECT_NE(page.find("popbridge_client_bytes_total{direction=\"out\"} 1024\n"), std::string::npos);
  EXPECT_NE(page.find("popbridge_logins_total{result=\"ok\"} 1\n"), std::string::npos);
  EXPECT_NE(page.find("popbridge_logins_total{result=\"auth\"} 1\n"), std::string::npos);
  EXPECT_NE(page.find("popbridge_messages_deleted_total{policy=\"expunge\"} 5\n"),
            std::string::npos);
  EXPECT_NE(page.find("popbridge_messages_deleted_total{policy=\"flag\"} 0\n"), std::string::npos);
  EXPECT_NE(page.find("popbridge_upstream_connections 1\n"), std::string::npos);
}

TEST(Metrics, SnapshotCacheResultsHaveEveryLabel) {
  Metrics metrics({"0.0.0.0:110"}, 2);
  metrics.worker(0).snapshotCache(protocol::SnapshotCacheOutcome::Hit);
  metrics.worker(1).snapshotCache(protocol::SnapshotCacheOutcome::Hit);
  metrics.worker(1).snapshotCache(protocol::SnapshotCacheOutcome::Invalidated);
  EXPECT_EQ(linesStarting(metrics.render(), "popbridge_snapshot_cache_total{"),
            "popbridge_snapshot_cache_total{result=\"hit\"} 2\n"
            "popbridge_snapshot_cache_total{result=\"miss\"} 0\n"
            "popbridge_snapshot_cache_total{result=\"invalidated\"} 1\n");
}

TEST(Metrics, HistogramBucketsAreCumulativeWithSumAndCount) {
  Metrics metrics({}, 2);
  metrics.worker(0).observe(HistogramId::Login, 3ms);    // <= 0.005
  metrics.worker(1).observe(HistogramId::Login, 5ms);    // <= 0.005: bounds are inclusive
  metrics.worker(1).observe(HistogramId::Login, 700ms);  // <= 1
  metrics.worker(0).observe(HistogramId::Login, 1000s);  // +Inf only
  const std::string page = metrics.render();
  EXPECT_EQ(linesStarting(page, "popbridge_login_duration_seconds"),
            "popbridge_login_duration_seconds_bucket{le=\"0.005\"} 2\n"
            "popbridge_login_duration_seconds_bucket{le=\"0.01\"} 2\n"
            "popbridge_login_duration_seconds_bucket{le=\"0.025\"} 2\n"
            "popbridge_login_duration_seconds_bucket{le=\"0.05\"} 2\n"
            "popbridge_login_duration_seconds_bucket{le=\"0.1\"} 2\n"
            "popbridge_login_duration_seconds_bucket{le=\"0.25\"} 2\n"
            "popbridge_login_duration_seconds_bucket{le=\"0.5\"} 2\n"
            "popbridge_login_duration_seconds_bucket{le=\"1\"} 3\n"
            "popbridge_login_duration_seconds_bucket{le=\"2.5\"} 3\n"
            "popbridge_login_duration_seconds_bucket{le=\"5\"} 3\n"
            "popbridge_login_duration_seconds_bucket{le=\"10\"} 3\n"
            "popbridge_login_duration_seconds_bucket{le=\"30\"} 3\n"
            "popbridge_login_duration_seconds_bucket{le=\"60\"} 3\n"
            "popbridge_login_duration_seconds_bucket{le=\"120\"} 3\n"
            "popbridge_login_duration_seconds_bucket{le=\"+Inf\"} 4\n"
            "popbridge_login_duration_seconds_sum 1000.708\n"
            "popbridge_login_duration_seconds_count 4\n");
  EXPECT_NE(page.find("# TYPE popbridge_login_duration_seconds histogram\n"), std::string::npos);
}

// The exact page of a registry with nothing counted, up to the first counters: HELP and TYPE
// before the samples, label values escaped.
TEST(Metrics, ExpositionTextIsExact) {
  Metrics metrics({"1.2.3.4:110"}, 1);
  metrics.setBuild("1.0 \"beta\"\\x\n", 1700000000.5);
  const std::string page = metrics.render();
  const std::string head =
      "# HELP popbridge_build_info Always 1; the version label says which build runs.\n"
      "# TYPE popbridge_build_info gauge\n"
      "popbridge_build_info{version=\"1.0 \\\"beta\\\"\\\\x\\n\"} 1\n"
      "# HELP process_start_time_seconds Start time of the process since the Unix epoch, in "
      "seconds.\n"
      "# TYPE process_start_time_seconds gauge\n"
      "process_start_time_seconds 1700000000.5\n"
      "# HELP popbridge_workers Worker event loops.\n"
      "# TYPE popbridge_workers gauge\n"
      "popbridge_workers 1\n"
      "# HELP popbridge_sessions_active Client sessions open now, by listener.\n"
      "# TYPE popbridge_sessions_active gauge\n"
      "popbridge_sessions_active{listener=\"1.2.3.4:110\"} 0\n";
  EXPECT_EQ(page.substr(0, head.size()), head);
  EXPECT_TRUE(page.ends_with("popbridge_snapshot_duration_seconds_count 0\n"));
  // Every metric has exactly one TYPE line.
  EXPECT_EQ(linesStarting(page, "# TYPE popbridge_tls_handshakes_total "),
            "# TYPE popbridge_tls_handshakes_total counter\n");
}

TEST(Metrics, ConfigReloadsAndRefusalsHaveEveryLabel) {
  Metrics metrics({}, 1);
  metrics.configReload(ReloadResult::Ok);
  metrics.configReload(ReloadResult::Error);
  metrics.configReload(ReloadResult::Ok);
  metrics.worker(0).refused(RefusedReason::ProxyHeader);
  metrics.worker(0).tlsHandshake(TlsSide::Upstream, "TLSv1.3");
  metrics.worker(0).tlsHandshake(TlsSide::Client, "SSLv3");
  const std::string page = metrics.render();
  EXPECT_EQ(linesStarting(page, "popbridge_config_reloads_total{"),
            "popbridge_config_reloads_total{result=\"ok\"} 2\n"
            "popbridge_config_reloads_total{result=\"error\"} 1\n");
  EXPECT_EQ(linesStarting(page, "popbridge_connections_refused_total{"),
            "popbridge_connections_refused_total{reason=\"total\"} 0\n"
            "popbridge_connections_refused_total{reason=\"per_ip\"} 0\n"
            "popbridge_connections_refused_total{reason=\"in_use\"} 0\n"
            "popbridge_connections_refused_total{reason=\"login_delay\"} 0\n"
            "popbridge_connections_refused_total{reason=\"throttled\"} 0\n"
            "popbridge_connections_refused_total{reason=\"proxy_header\"} 1\n"
            "popbridge_connections_refused_total{reason=\"untrusted_proxy\"} 0\n");
  EXPECT_NE(page.find("popbridge_tls_handshakes_total{side=\"upstream\",version=\"TLSv1.3\"} 1\n"),
            std::string::npos);
  EXPECT_NE(page.find("popbridge_tls_handshakes_total{side=\"client\",version=\"other\"} 1\n"),
            std::string::npos);
}

// A reload adds and removes listeners: each address keeps its slot (its counters never move to
// another address), a new one gets the next, and beyond the bound nothing is counted by listener.
TEST(Metrics, ListenerSlotsFollowAddressesAcrossReloads) {
  Metrics metrics({"0.0.0.0:110"}, 1);
  WorkerMetrics& worker = metrics.worker(0);
  EXPECT_EQ(worker.listenerSlot("0.0.0.0:110"), 0u);
  EXPECT_EQ(worker.listenerSlot("[::]:995"), 1u);
  EXPECT_EQ(metrics.listenerSlot("[::]:995"), 1u);
  worker.sessionStarted(worker.listenerSlot("[::]:995"));
  const std::string page = metrics.render();
  EXPECT_EQ(linesStarting(page, "popbridge_sessions_total{"),
            "popbridge_sessions_total{listener=\"0.0.0.0:110\"} 0\n"
            "popbridge_sessions_total{listener=\"[::]:995\"} 1\n");
  for (std::size_t i = 2; i < kMaxListenerSlots; ++i) {
    EXPECT_EQ(metrics.listenerSlot("127.0.0.1:" + std::to_string(1000 + i)), i);
  }
  const std::size_t none = metrics.listenerSlot("127.0.0.2:110");
  EXPECT_EQ(none, kMaxListenerSlots);
  worker.sessionStarted(none);  // ignored, not out of bounds
  worker.sessionEnded(none, EndReason::Quit);
  WorkerMetrics own;  // a worker without a registry numbers its own
  EXPECT_EQ(own.listenerSlot("a"), 0u);
  EXPECT_EQ(own.listenerSlot("b"), 1u);
  EXPECT_EQ(own.listenerSlot("a"), 0u);
}

TEST(Metrics, EndReasonsAreClassified) {
  const std::pair<const char*, EndReason> cases[] = {
      {"quit", EndReason::Quit},
      {"client quit before login", EndReason::Quit},
      {"connection closed by peer", EndReason::ClientClosed},
      {"read: connection reset by peer", EndReason::ClientClosed},
      {"idle timeout", EndReason::IdleTimeout},
      {"login timeout", EndReason::LoginTimeout},
      {"upstream lost: connection closed by peer", EndReason::UpstreamError},
      {"quit; deletions failed upstream", EndReason::UpstreamError},
      {"TLS handshake failed: connection closed by peer", EndReason::TlsError},
      {"server shutting down", EndReason::Shutdown},
      {"server shutting down (not logged in)", EndReason::Shutdown},
      {"shutdown timeout: the client did not QUIT in time; nothing was deleted",
       EndReason::Shutdown},
      {"shutdown timeout", EndReason::Shutdown},
      {"too many bad commands", EndReason::Limit},
      {"too many failed logins", EndReason::Limit},
      {"password checks busy", EndReason::Limit},
      {"internal error", EndReason::Internal},
  };
  for (const auto& [text, reason] : cases) {
    EXPECT_EQ(classifyEndReason(text), reason) << text;
  }
}

TEST(Metrics, SampleValues) {
  EXPECT_EQ(formatSampleValue(0), "0");
  EXPECT_EQ(formatSampleValue(18446744073.0), "18446744073");
  EXPECT_EQ(formatSampleValue(0.25), "0.25");
  EXPECT_EQ(formatSampleValue(1.0 / 0.0), "+Inf");
}

TEST(Metrics, BlocksDoNotShareCacheLines) {
  EXPECT_EQ(alignof(WorkerMetrics), 64u);
  Metrics metrics({}, 2);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&metrics.worker(1)) % 64, 0u);
}

}  // namespace
}  // namespace popbridge::proxy
