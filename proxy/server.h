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
#include "proxy/login_guard.h"
#include "proxy/metrics.h"
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
  unsigned total() const;

 private:
  mutable std::mutex mutex_;
  unsigned maxTotal_;
  unsigned maxPerIp_;
  unsigned total_ = 0;
  std::map<std::string, unsigned> perIp_;
};

// TLS contexts built once from the configuration and shared read-only.
struct TlsContexts {
  std::vector<std::unique_ptr<TlsServerContext>> listeners;  // parallel to config.listeners
  std::unique_ptr<TlsClientContext> upstream;
};

// Null and an error when a certificate, key or CA file cannot be used.
std::unique_ptr<TlsContexts> buildTlsContexts(const config::Config& config, std::string& error);

// One event loop with its own listening sockets (SO_REUSEPORT when there are
// several workers) and the sessions it accepted.
class Worker {
 public:
  Worker(const config::Config& config, const TlsContexts& tls, ConnectionLimits& limits,
         LoginGuard& loginGuard, std::atomic<std::uint64_t>& nextSessionId, unsigned index,
         TokenService* tokens = nullptr, WorkerMetrics* metrics = nullptr);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  bool bindListeners(bool reusePort, std::string& error);
  // Catch SIGINT/SIGTERM on this loop and shut `all` down; `onSignal` (if any) runs first, on
  // this loop's thread, and must not throw. Call it before any listener is bound: a signal that
  // arrives before the loop runs is handled when it starts.
  void handleSignals(std::vector<Worker*> all, std::function<void()> onSignal = {});
  void run();
  // Thread-safe: stop accepting, end sessions without applying DELE, then let run() return.
  void requestShutdown();
  std::size_t sessionCount() const { return sessions_.size(); }
  uv_loop_t* loop() { return &loop_; }

 private:
  struct Listener {
    Worker* worker = nullptr;
    ListenerRuntime runtime;
    UvHandle<uv_tcp_t> tcp;
  };
  static void onConnection(uv_stream_t* server, int status) noexcept;
  void accept(Listener& listener);
  void reject(UvHandle<uv_tcp_t> tcp, const Listener& listener, std::string_view why);
  void sessionDone(ProxySession& session);
  void reap();
  void beginShutdown();
  void finishShutdown();

  const config::Config& config_;
  const TlsContexts& tls_;
  ConnectionLimits& limits_;
  std::atomic<std::uint64_t>& nextSessionId_;
  unsigned index_;
  uv_loop_t loop_{};
  SessionEnvironment env_;
  std::unique_ptr<LoginGate> loginGate_;  // outlives the sessions, which cancel their checks
  std::shared_ptr<LoopMailbox> mailbox_;  // where the token service answers this loop
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::map<std::uint64_t, std::unique_ptr<ProxySession>> sessions_;
  std::map<std::uint64_t, std::string> sessionIps_;
  std::vector<std::uint64_t> finished_;
  UvHandle<uv_async_t> wake_;
  UvHandle<uv_signal_t> sigint_;
  UvHandle<uv_signal_t> sigterm_;
  std::vector<Worker*> signalTargets_;
  std::function<void()> onSignal_;
  std::unique_ptr<Timer> reapTimer_;
  std::unique_ptr<Timer> shutdownTimer_;
  std::atomic<bool> shutdownRequested_{false};
  bool shuttingDown_ = false;
  // Metrics: the process's block for this loop, or a private one; and the 1 s heartbeat that
  // /healthz reads (unreferenced: it never keeps the loop alive).
  std::unique_ptr<WorkerMetrics> ownMetrics_;
  WorkerMetrics* metrics_ = nullptr;
  UvHandle<uv_timer_t> heartbeat_;
};

// Blocks SIGINT and SIGTERM in the calling thread, so that a stop request during startup stays
// pending instead of killing the process; runServer() unblocks them once its handlers exist.
// Call it from main() before any other thread is started.
void blockShutdownSignals();

// Runs the proxy until SIGINT/SIGTERM; returns the process exit code. Startup order: signal
// handlers, then every listener, then the log line "ready" and READY=1 to $NOTIFY_SOCKET (when
// set). Shutdown sends STOPPING=1 there.
int runServer(const config::Config& config);

// The metrics registry for `workers` loops and the configured listeners, with the build's version
// and the start time.
std::unique_ptr<Metrics> makeMetrics(const config::Config& config, unsigned workers);
// What /readyz asks: see AdminServer's ReadinessProbe.
ReadinessProbe readinessProbe(const config::Config& config);
// The [metrics] listener started on its own thread; null and `error` when it cannot bind.
std::unique_ptr<AdminServer> startAdminServer(const config::Config& config, const Metrics& metrics,
                                              std::string& error);

}  // namespace popbridge::proxy
