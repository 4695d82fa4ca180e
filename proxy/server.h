#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/admin_server.h"
#include "proxy/config_snapshot.h"
#include "proxy/login_guard.h"
#include "proxy/loop_state.h"
#include "proxy/metrics.h"
#include "proxy/proxy_header_reader.h"
#include "proxy/proxy_session.h"
#include "proxy/tls_context.h"
#include "proxy/uv_handle.h"

namespace popbridge::proxy {

// Connection counts shared by all workers.
class ConnectionLimits {
 public:
  ConnectionLimits(unsigned maxTotal, unsigned maxPerIp)
      : maxTotal_(maxTotal), maxPerIp_(maxPerIp) {}
  enum class Verdict { Accepted, TooManyTotal, TooManyFromIp };
  Verdict acquire(const std::string& ip);
  void release(const std::string& ip);
  // In two steps, for a proxy_protocol listener, where the client's address is known only after
  // the PROXY header: the total at accept, the address's share after the header. release(ip)
  // then gives both back; releaseTotal() only the first, when no address was taken.
  bool acquireTotal();
  bool acquireIp(const std::string& ip);
  void releaseTotal();
  unsigned total() const;
  // A reload: new limits for new connections; the counts (and the connections above a lowered
  // limit) stay.
  void setLimits(unsigned maxTotal, unsigned maxPerIp);

 private:
  mutable std::mutex mutex_;
  unsigned maxTotal_;
  unsigned maxPerIp_;
  unsigned total_ = 0;
  std::map<std::string, unsigned> perIp_;
};

// One event loop with its own listening sockets (SO_REUSEPORT when there are
// several workers) and the sessions it accepted.
//
// Everything of a worker runs on its own thread; other threads only post requests (reload,
// drain, shutdown), which it takes up through a uv_async.
class Worker {
 public:
  Worker(std::shared_ptr<const ConfigSnapshot> snapshot, ConnectionLimits& limits,
         LoginGuard& loginGuard, std::atomic<std::uint64_t>& nextSessionId, unsigned index,
         TokenService* tokens = nullptr, SessionRegistry* sessions = nullptr,
         WorkerMetrics* metrics = nullptr);
  ~Worker();
  // Before the worker runs; the cache outlives it.
  void setSnapshotCache(SharedSnapshotCache* cache) { env_.snapshotCache = cache; }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  bool bindListeners(bool reusePort, std::string& error);
  void run();
  // [state]: this loop's Redis connection (leases, UIDL map) or the embedded store. Before run().
  void useState(const StateServices& services);

  // A configuration to switch to (SIGHUP), prepared by planReload().
  struct Reload {
    std::shared_ptr<const ConfigSnapshot> snapshot;
    std::map<std::string, UniqueFd> sockets;  // this worker's sockets of the new listeners
    // Runs on this worker's thread once new sessions get the new snapshot (also when a shutdown
    // came first and the reload was dropped). Must not throw.
    std::function<void()> applied;
  };
  // Thread-safe: listeners the new configuration drops are closed (their sessions go on), new
  // ones open, kept ones keep their socket and serve new sessions with their new settings;
  // running sessions keep the snapshot they started under.
  void requestReload(Reload reload);
  // Thread-safe (SIGTERM): stop accepting; sessions that have not logged in end now, the others
  // get server.shutdown_timeout to QUIT; then run() returns.
  void requestDrain();
  // Thread-safe (a second SIGTERM): end every session now, applying nothing; then run() returns.
  void requestShutdown();
  // Loop thread only.
  std::size_t sessionCount() const { return sessions_.size(); }
  uv_loop_t* loop() { return &loop_; }

 private:
  struct Listener {
    Worker* worker = nullptr;
    std::string key;  // listenerKey()
    ListenerRuntime runtime;
    UvHandle<uv_tcp_t> tcp;
  };
  static void onConnection(uv_stream_t* server, int status) noexcept;
  std::unique_ptr<Listener> adoptListener(std::size_t index, UniqueFd fd, std::string& error);
  void accept(Listener& listener);
  void reject(UvHandle<uv_tcp_t> tcp, const Listener& listener, std::string_view why);
  // A session for an accepted socket whose address `ip` holds a connection slot.
  void startSession(Listener& listener, UvHandle<uv_tcp_t> tcp, const std::string& ip,
                    ClientOrigin origin);
  // proxy_protocol listeners: the peer must be a trusted proxy, then the header comes first.
  void acceptProxied(Listener& listener, UvHandle<uv_tcp_t> tcp, const std::string& peer);
  void onProxyHeader(const std::string& listenerKey, std::uint64_t readerId,
                     const std::string& peer, ProxyHeaderReader::Outcome outcome);
  void dropPendingHeaders();
  void sessionDone(ProxySession& session);
  void reap();
  void onWake();
  void applyReload(Reload reload);
  void useSnapshot(std::shared_ptr<const ConfigSnapshot> snapshot);
  void beginDrain();
  void onDrainDeadline();
  void beginShutdown();
  void closeAllSessions(std::string_view why);
  void finishShutdown();

  std::shared_ptr<const ConfigSnapshot> snapshot_;  // what new sessions get
  ConnectionLimits& limits_;
  std::atomic<std::uint64_t>& nextSessionId_;
  unsigned index_;
  uv_loop_t loop_{};
  SessionEnvironment env_;
  std::unique_ptr<LoginGate> loginGate_;  // outlives the sessions, which cancel their checks
  std::shared_ptr<LoopMailbox> mailbox_;  // where the token service answers this loop
  std::unique_ptr<LoopState> state_;      // outlives the sessions, whose leases it serves
  std::vector<std::unique_ptr<Listener>> listeners_;
  // Idle upstream connections for this loop's sessions; before sessions_, which point at it.
  std::unique_ptr<UpstreamPool> upstreamPool_;
  std::map<std::uint64_t, std::unique_ptr<ProxySession>> sessions_;
  std::map<std::uint64_t, std::string> sessionIps_;
  // Connections on proxy_protocol listeners whose header has not arrived yet; each holds a
  // total-connections slot (ConnectionLimits::acquireTotal), no per-IP one.
  std::map<std::uint64_t, std::unique_ptr<ProxyHeaderReader>> pendingHeaders_;
  std::uint64_t nextReaderId_ = 1;
  std::vector<std::uint64_t> finished_;
  UvHandle<uv_async_t> wake_;
  std::unique_ptr<Timer> reapTimer_;
  std::unique_ptr<Timer> shutdownTimer_;

  std::mutex requestMutex_;  // guards the three requests below
  std::vector<Reload> reloadRequests_;
  bool drainRequested_ = false;
  bool shutdownRequested_ = false;

  bool loopEnded_ = false;  // under requestMutex_: wake_ is closed, requests are dropped
  bool shuttingDown_ = false;
  // Metrics: the process's block for this loop, or a private one; and the 1 s heartbeat that
  // /healthz reads (unreferenced: it never keeps the loop alive).
  std::unique_ptr<WorkerMetrics> ownMetrics_;
  WorkerMetrics* metrics_ = nullptr;
  UvHandle<uv_timer_t> heartbeat_;
};

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread, so that a stop or reload request
// during startup stays pending instead of killing the process; runServer() unblocks them once
// its handlers exist. Call it from main() before any other thread is started.
void blockShutdownSignals();

// What runServer() needs from its caller besides the configuration.
struct ServerHooks {
  std::string configPath;  // for the log
  // Loads the configuration again (SIGHUP), the way main loaded it: file and environment
  // overrides. Runs on a thread of its own, never on a worker loop. Empty: SIGHUP is logged and
  // ignored.
  std::function<config::LoadResult()> reloadConfig;
  // After each reload, on the thread that handles signals: true when it took effect, false when
  // it failed and the running configuration was kept (for popbridge_config_reloads_total).
  std::function<void(bool ok)> onReload;
};

// Runs the proxy until SIGINT/SIGTERM; returns the process exit code. Startup order: signal
// handlers, then every listener, then the log line "ready" and READY=1 to $NOTIFY_SOCKET (when
// set). SIGHUP reloads the configuration (RELOADING=1, then READY=1). SIGTERM/SIGINT drains
// (STOPPING=1): no new connections, sessions not logged in end at once, the others get
// server.shutdown_timeout to QUIT; a second SIGTERM/SIGINT ends them at once.
int runServer(const config::Config& config, ServerHooks hooks = {});

// The metrics registry for `workers` loops and the configured listeners, with the build's version
// and the start time.
std::unique_ptr<Metrics> makeMetrics(const config::Config& config, unsigned workers);
// What /readyz asks (see AdminServer's ReadinessProbe): resolve, connect, TLS, greeting and
// CAPABILITY of the upstream that `current` (any thread) names now, with no login.
ReadinessProbe readinessProbe(std::function<std::shared_ptr<const ConfigSnapshot>()> current);
// The [metrics] listener started on its own thread; null and `error` when it cannot bind.
std::unique_ptr<AdminServer> startAdminServer(const config::Config& config, const Metrics& metrics,
                                              ReadinessProbe probe, std::string& error);

}  // namespace popbridge::proxy
