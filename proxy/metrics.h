#pragma once

// The process's Prometheus metrics.
//
// Each worker loop owns one WorkerMetrics block and is its only writer: a count is a relaxed
// load and store of its own cache line (no lock, no atomic read-modify-write, no sharing with
// another core), so counting on the RETR path costs a few instructions per read or write
// callback. A scrape (the admin thread) reads every block with relaxed loads and sums them; a
// scrape may see one block a few increments behind another, which Prometheus tolerates.
//
// Counters that are not a worker's (config reloads) live in the registry itself and use
// fetch_add: they are rare and may come from any thread.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/bridge/mailbox_options.h"
#include "protocol/bridge/snapshot_cache.h"
#include "protocol/pop3/reply.h"

namespace popbridge::proxy {

// Why a session ended: a small fixed set, so the label has bounded cardinality.
enum class EndReason : std::uint8_t {
  Quit,          // QUIT, before or after login
  ClientClosed,  // the client hung up or its connection failed
  IdleTimeout,
  LoginTimeout,
  UpstreamError,  // the upstream failed, timed out or refused QUIT's deletions
  TlsError,       // the client's TLS handshake failed
  Shutdown,       // SIGTERM
  Limit,          // too many bad commands or failed logins, password checks busy
  Internal,       // an exception ended the session
  kCount
};
std::string_view toString(EndReason reason);
// The session's end text (Pop3Server's finish reason, or a Stream's close reason) as a label.
EndReason classifyEndReason(std::string_view reason);

enum class LoginResult : std::uint8_t {
  Ok,
  Auth,
  SysTemp,
  SysPerm,
  InUse,
  LoginDelay,
  Other,
  kCount
};
std::string_view toString(LoginResult result);
LoginResult loginResultOf(protocol::RespCode code);

// Connections refused before a session starts. Every reason the process may refuse for is here,
// so a new refusal is a call, not a new metric.
enum class RefusedReason : std::uint8_t {
  Total,           // max_connections
  PerIp,           // max_connections_per_ip
  InUse,           // the account is in use (per-account caps)
  LoginDelay,      // the account or IP must wait before logging in again
  Throttled,       // too many failed logins from the IP
  ProxyHeader,     // a missing or malformed PROXY protocol header
  UntrustedProxy,  // a proxy_protocol listener's peer is not in trusted_proxies
  kCount
};
std::string_view toString(RefusedReason reason);

enum class ByteCounter : std::uint8_t { ClientIn, ClientOut, UpstreamIn, UpstreamOut, kCount };

enum class TlsSide : std::uint8_t { Client, Upstream, kCount };
std::string_view toString(TlsSide side);

// SSL_get_version()'s names; anything else is "other".
enum class TlsVersionLabel : std::uint8_t { Tls10, Tls11, Tls12, Tls13, Other, kCount };
std::string_view toString(TlsVersionLabel version);
TlsVersionLabel tlsVersionLabel(std::string_view sslGetVersion);

enum class ReloadResult : std::uint8_t { Ok, Error, kCount };

// Why a pooled upstream connection left the pool other than by being reused.
enum class PoolDrop : std::uint8_t {
  Expired,  // pool_idle ran out
  Evicted,  // a cap needed its place
  Dead,     // closed by the upstream, odd data while parked, or its NOOP check failed
  Closed,   // drain or shutdown
  kCount
};

enum class HistogramId : std::uint8_t { UpstreamConnect, Login, Snapshot, kCount };

inline constexpr std::size_t kDeletePolicies = 5;  // protocol::DeletePolicy's values

// Upper bounds of the duration histograms' buckets, in seconds; +Inf is implicit.
inline constexpr std::array<double, 14> kHistogramBounds = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

// Written by one thread only. Cache-line aligned so two workers' blocks never share a line.
template <typename T>
class SingleWriter {
 public:
  void add(T n = 1) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(T n = 1) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  T value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<T> value_{0};
};
using Counter = SingleWriter<std::uint64_t>;
using Gauge = SingleWriter<std::int64_t>;

struct HistogramCells {
  std::array<Counter, kHistogramBounds.size() + 1>
      buckets;  // per bucket, not cumulative; last: +Inf
  Counter count;
  Counter sumMicros;
  void observe(std::chrono::microseconds duration) noexcept;
};

class Metrics;

// Listeners come and go with reloads (SIGHUP), so the `listener` label is a slot: one per
// address ever served, never reused, so that a counter never jumps between addresses. Slots are
// bounded; an address beyond them is not counted by listener (everything else still is).
inline constexpr std::size_t kMaxListenerSlots = 64;

class alignas(64) WorkerMetrics {
 public:
  WorkerMetrics() : sessionsActive_(kMaxListenerSlots), sessionsTotal_(kMaxListenerSlots) {}
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  // The slot of a listener's address (any thread); kMaxListenerSlots when none is free.
  std::size_t listenerSlot(const std::string& address);
  void sessionStarted(std::size_t listener) noexcept;
  void sessionEnded(std::size_t listener, EndReason reason) noexcept;
  void login(LoginResult result) noexcept { logins_[index(result)].add(); }
  void bytes(ByteCounter which, std::uint64_t n) noexcept { bytes_[index(which)].add(n); }
  void retrieved(bool top) noexcept { (top ? top_ : retr_).add(); }
  void deleted(protocol::DeletePolicy policy, std::uint32_t n) noexcept;
  void deletionsRefused(std::uint32_t n) noexcept { deletionsRefused_.add(n); }
  void uidValidityChanged() noexcept { uidValidityChanges_.add(); }
  void snapshotCache(protocol::SnapshotCacheOutcome outcome) noexcept {
    if (index(outcome) < snapshotCache_.size()) snapshotCache_[index(outcome)].add();
  }
  // The shared state ([state] redis): a connection that failed or broke, or timed out,
  // a maildrop lease found lost, a QUIT whose deletions were refused for want of the lease.
  void stateUnavailable() noexcept { stateUnavailable_.add(); }
  void leaseLost() noexcept { leasesLost_.add(); }
  void updateRefusedState() noexcept { updatesRefusedState_.add(); }
  void tlsHandshake(TlsSide side, std::string_view sslVersion) noexcept;
  void tlsHandshakeFailed(TlsSide side) noexcept { tlsFailures_[index(side)].add(); }
  void refused(RefusedReason reason) noexcept { refused_[index(reason)].add(); }
  // The upstream connection pool (proxy/upstream_pool.h).
  void poolHit() noexcept { poolLookups_[0].add(); }
  void poolMiss() noexcept { poolLookups_[1].add(); }
  void poolDropped(PoolDrop how) noexcept { poolDrops_[index(how)].add(); }
  void poolParked() noexcept { pooled_.add(); }
  void poolUnparked() noexcept { pooled_.sub(); }
  void upstreamOpened() noexcept { upstreamOpen_.add(); }
  void upstreamClosed() noexcept { upstreamOpen_.sub(); }
  void observe(HistogramId which, std::chrono::microseconds duration) noexcept {
    histograms_[index(which)].observe(duration);
  }
  // The worker loop's liveness: a steady-clock time in milliseconds, written by its 1 s timer.
  void heartbeat(std::int64_t steadyMillis) noexcept {
    heartbeat_.store(steadyMillis, std::memory_order_relaxed);
  }
  std::int64_t lastHeartbeat() const noexcept { return heartbeat_.load(std::memory_order_relaxed); }

 private:
  friend class Metrics;
  template <typename E>
  static constexpr std::size_t index(E e) noexcept {
    return static_cast<std::size_t>(e);
  }

  Metrics* registry_ = nullptr;        // whose slots this block uses; null: its own
  std::vector<std::string> ownSlots_;  // without a registry (a worker of a test)
  std::vector<Gauge> sessionsActive_;  // per listener slot
  std::vector<Counter> sessionsTotal_;
  std::array<Counter, static_cast<std::size_t>(EndReason::kCount)> ended_;
  std::array<Counter, static_cast<std::size_t>(LoginResult::kCount)> logins_;
  std::array<Counter, static_cast<std::size_t>(ByteCounter::kCount)> bytes_;
  Counter retr_;
  Counter top_;
  std::array<Counter, kDeletePolicies> deleted_;
  Counter deletionsRefused_;
  Counter uidValidityChanges_;
  std::array<Counter, 3> snapshotCache_;  // by protocol::SnapshotCacheOutcome
  Counter stateUnavailable_;
  Counter leasesLost_;
  Counter updatesRefusedState_;
  std::array<std::array<Counter, static_cast<std::size_t>(TlsVersionLabel::kCount)>,
             static_cast<std::size_t>(TlsSide::kCount)>
      tls_;
  std::array<Counter, static_cast<std::size_t>(TlsSide::kCount)> tlsFailures_;
  std::array<Counter, static_cast<std::size_t>(RefusedReason::kCount)> refused_;
  Gauge upstreamOpen_;
  std::array<Counter, 2> poolLookups_;  // hit, miss
  std::array<Counter, static_cast<std::size_t>(PoolDrop::kCount)> poolDrops_;
  Gauge pooled_;
  std::array<HistogramCells, static_cast<std::size_t>(HistogramId::kCount)> histograms_;
  std::atomic<std::int64_t> heartbeat_{0};
};

// The registry: one block per worker, created before the workers start and never resized, so a
// scrape may read them from another thread without a lock.
class Metrics {
 public:
  // `listeners`: the addresses that get the first slots (the `listener` label).
  Metrics(const std::vector<std::string>& listeners, unsigned workers);
  // Any thread; see kMaxListenerSlots.
  std::size_t listenerSlot(const std::string& address);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  WorkerMetrics& worker(unsigned index) { return *workers_[index]; }
  const WorkerMetrics& worker(unsigned index) const { return *workers_[index]; }
  unsigned workerCount() const { return static_cast<unsigned>(workers_.size()); }

  // Any thread.
  void configReload(ReloadResult result) noexcept {
    reloads_[static_cast<std::size_t>(result)].fetch_add(1, std::memory_order_relaxed);
  }

  // Shown as popbridge_build_info{version=...} and process_start_time_seconds.
  void setBuild(std::string version, double startTimeSeconds) {
    version_ = std::move(version);
    startTime_ = startTimeSeconds;
  }

  // The whole page in the Prometheus text format, version 0.0.4.
  std::string render() const;

 private:
  mutable std::mutex slotMutex_;
  std::vector<std::string> listeners_;  // by slot; under slotMutex_
  std::vector<std::unique_ptr<WorkerMetrics>> workers_;
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(ReloadResult::kCount)> reloads_{};
  std::string version_;
  double startTime_ = 0;
};

// Text-format helpers, public for the tests.
// A label value with \, " and newline escaped as the format requires.
std::string escapeLabelValue(std::string_view value);
// A sample value: integers without a fraction, others in the shortest round-trip form.
std::string formatSampleValue(double value);

}  // namespace popbridge::proxy
