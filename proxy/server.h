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
#include "proxy/login_guard.h"
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
         TokenService* tokens = nullptr);
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
  // A session for an accepted socket whose address `ip` holds a connection slot.
  void startSession(Listener& listener, UvHandle<uv_tcp_t> tcp, const std::string& ip,
                    ClientOrigin origin);
  // proxy_protocol listeners: the peer must be a trusted proxy, then the header comes first.
  void acceptProxied(Listener& listener, UvHandle<uv_tcp_t> tcp, const std::string& peer);
  void onProxyHeader(Listener& listener, std::uint64_t readerId, const std::string& peer,
                     ProxyHeaderReader::Outcome outcome);
  void dropPendingHeaders();
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
  // Connections on proxy_protocol listeners whose header has not arrived yet; each holds a
  // total-connections slot (ConnectionLimits::acquireTotal), no per-IP one.
  std::map<std::uint64_t, std::unique_ptr<ProxyHeaderReader>> pendingHeaders_;
  std::uint64_t nextReaderId_ = 1;
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
};

// Blocks SIGINT and SIGTERM in the calling thread, so that a stop request during startup stays
// pending instead of killing the process; runServer() unblocks them once its handlers exist.
// Call it from main() before any other thread is started.
void blockShutdownSignals();

// Runs the proxy until SIGINT/SIGTERM; returns the process exit code. Startup order: signal
// handlers, then every listener, then the log line "ready" and READY=1 to $NOTIFY_SOCKET (when
// set). Shutdown sends STOPPING=1 there.
int runServer(const config::Config& config);

}  // namespace popbridge::proxy
