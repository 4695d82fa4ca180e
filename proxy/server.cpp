#include "proxy/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>

#include "protocol/net_address.h"
#include "proxy/admin_server.h"
#include "proxy/log.h"
#include "proxy/readiness.h"
#include "proxy/upstream_probe.h"

namespace popbridge::proxy {

ConnectionLimits::Verdict ConnectionLimits::acquire(const std::string& ip) {
  std::lock_guard lock(mutex_);
  if (maxTotal_ != 0 && total_ >= maxTotal_) return Verdict::TooManyTotal;
  unsigned& count = perIp_[ip];
  if (maxPerIp_ != 0 && count >= maxPerIp_) {
    if (count == 0) perIp_.erase(ip);
    return Verdict::TooManyFromIp;
  }
  ++count;
  ++total_;
  return Verdict::Accepted;
}

bool ConnectionLimits::acquireTotal() {
  std::lock_guard lock(mutex_);
  if (maxTotal_ != 0 && total_ >= maxTotal_) return false;
  ++total_;
  return true;
}

bool ConnectionLimits::acquireIp(const std::string& ip) {
  std::lock_guard lock(mutex_);
  unsigned& count = perIp_[ip];
  if (maxPerIp_ != 0 && count >= maxPerIp_) {
    if (count == 0) perIp_.erase(ip);
    return false;
  }
  ++count;
  return true;
}

void ConnectionLimits::releaseTotal() {
  std::lock_guard lock(mutex_);
  if (total_ > 0) --total_;
}

void ConnectionLimits::release(const std::string& ip) {
  std::lock_guard lock(mutex_);
  if (total_ > 0) --total_;
  auto it = perIp_.find(ip);
  if (it == perIp_.end()) return;
  if (--it->second == 0) perIp_.erase(it);
}

unsigned ConnectionLimits::total() const {
  std::lock_guard lock(mutex_);
  return total_;
}

void ConnectionLimits::setLimits(unsigned maxTotal, unsigned maxPerIp) {
  std::lock_guard lock(mutex_);
  maxTotal_ = maxTotal;
  maxPerIp_ = maxPerIp;
}

namespace {

std::string peerIp(uv_tcp_t* tcp) {
  sockaddr_storage storage{};
  int length = sizeof storage;
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return "?";
  char text[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET6) {
    uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&storage), text, sizeof text);
  } else {
    uv_ip4_name(reinterpret_cast<sockaddr_in*>(&storage), text, sizeof text);
  }
  return text;
}

std::chrono::milliseconds millis(config::Duration duration) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(duration);
}

std::string seconds(config::Duration duration) {
  return config::formatDuration(duration);
}

}  // namespace

Worker::Worker(std::shared_ptr<const ConfigSnapshot> snapshot, ConnectionLimits& limits,
               LoginGuard& loginGuard, std::atomic<std::uint64_t>& nextSessionId, unsigned index,
               TokenService* tokens, SessionRegistry* sessions, WorkerMetrics* metrics)
    : limits_(limits), nextSessionId_(nextSessionId), index_(index) {
  uv_loop_init(&loop_);
  if (metrics == nullptr) {
    ownMetrics_ = std::make_unique<WorkerMetrics>();
    metrics = ownMetrics_.get();
  }
  metrics_ = metrics;
  env_.metrics = metrics_;
  metrics_->heartbeat(AdminServer::steadyMillis());
  heartbeat_ = UvHandle<uv_timer_t>::allocate();
  uv_timer_init(&loop_, heartbeat_.get());
  heartbeat_->data = this;
  uv_timer_start(
      heartbeat_.get(),
      [](uv_timer_t* handle) noexcept {
        if (auto* self = static_cast<Worker*>(handle->data)) {
          self->metrics_->heartbeat(AdminServer::steadyMillis());
        }
      },
      1000, 1000);
  uv_unref(heartbeat_.handle());
  loginGate_ = std::make_unique<LoginGate>(&loop_, loginGuard, index_);
  upstreamPool_ =
      std::make_unique<UpstreamPool>(&loop_, metrics_, sessions, [](std::string_view m) {
        if (logEnabled(LogLevel::Debug)) logLine(LogLevel::Debug, m);
      });
  env_.upstreamPool = upstreamPool_.get();
  if (tokens != nullptr) {
    mailbox_ = LoopMailbox::create(&loop_);
    env_.tokens = tokens;
    env_.mailbox = mailbox_;
  }
  env_.loop = &loop_;
  useSnapshot(std::move(snapshot));
  env_.loginGate = loginGate_.get();
  env_.sessions = sessions;
  wake_ = UvHandle<uv_async_t>::allocate();
  uv_async_init(&loop_, wake_.get(), [](uv_async_t* handle) noexcept {
    auto* self = static_cast<Worker*>(handle->data);
    if (self) self->onWake();
  });
  wake_->data = this;
  reapTimer_ = std::make_unique<Timer>(&loop_);
}

Worker::~Worker() {
  dropPendingHeaders();
  sessions_.clear();
  upstreamPool_.reset();  // its streams and timers close in the run below
  state_.reset();
  // Its async handle must be closed while the loop runs once more below; the object stays for
  // password checks still finishing in that run.
  loginGate_->close();
  if (mailbox_) mailbox_->close();
  listeners_.clear();
  {
    std::lock_guard lock(requestMutex_);
    loopEnded_ = true;
    wake_.reset();
  }
  reapTimer_.reset();
  shutdownTimer_.reset();
  heartbeat_.reset();
  // Let every close callback run so the loop can be closed without leaks.
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

void Worker::useState(const StateServices& services) {
  state_ = std::make_unique<LoopState>(&loop_, services, *metrics_);
  env_.leases = state_->leases();
  env_.loginCounters = state_->loginCounters();
  env_.state = state_->store();
}

void Worker::useSnapshot(std::shared_ptr<const ConfigSnapshot> snapshot) {
  snapshot_ = std::move(snapshot);
  env_.snapshot = snapshot_;
  env_.config = &snapshot_->config;
  env_.upstreamTls = snapshot_->tls->upstream.get();
}

std::unique_ptr<Worker::Listener> Worker::adoptListener(std::size_t index, UniqueFd fd,
                                                        std::string& error) {
  const auto& lc = snapshot_->config.listeners[index];
  auto listener = std::make_unique<Listener>();
  listener->worker = this;
  listener->key = listenerKey(lc);
  listener->runtime.config = &lc;
  listener->runtime.tls = snapshot_->tls->listeners[index].get();
  listener->runtime.index = metrics_->listenerSlot(lc.address);
  listener->tcp = UvHandle<uv_tcp_t>::allocate();
  uv_tcp_init(&loop_, listener->tcp.get());
  int rc = uv_tcp_open(listener->tcp.get(), fd.get());
  if (rc != 0) {
    error = "listener " + lc.address + ": " + uv_strerror(rc);
    return nullptr;  // `fd` closes the socket
  }
  fd.release();  // the handle owns it now
  listener->tcp->data = listener.get();
  if ((rc = uv_listen(listener->tcp.stream(), 511, &Worker::onConnection)) != 0) {
    error = "listener " + lc.address + ": cannot listen: " + uv_strerror(rc);
    return nullptr;
  }
  if (index_ == 0) {
    logLine(LogLevel::Info,
            "listening on " + lc.address + " (tls=" + std::string(config::toString(lc.tls)) + ")");
  }
  return listener;
}

bool Worker::bindListeners(bool reusePort, std::string& error) {
  for (std::size_t i = 0; i < snapshot_->config.listeners.size(); ++i) {
    UniqueFd fd = bindListenerSocket(snapshot_->config.listeners[i], reusePort, error);
    if (!fd) return false;
    auto listener = adoptListener(i, std::move(fd), error);
    if (!listener) return false;
    listeners_.push_back(std::move(listener));
  }
  return true;
}

void Worker::onConnection(uv_stream_t* server, int status) noexcept {
  auto* listener = static_cast<Listener*>(server->data);
  if (listener == nullptr) return;
  if (status < 0) {
    logLine(LogLevel::Warn, std::string("accept failed: ") + uv_strerror(status));
    return;
  }
  listener->worker->accept(*listener);
}

void Worker::accept(Listener& listener) {
  auto tcp = UvHandle<uv_tcp_t>::allocate();
  uv_tcp_init(&loop_, tcp.get());
  if (uv_accept(listener.tcp.stream(), tcp.stream()) != 0) return;
  if (shuttingDown_) return;
  std::string ip = peerIp(tcp.get());
  if (listener.runtime.config->proxyProtocol) return acceptProxied(listener, std::move(tcp), ip);
  switch (limits_.acquire(ip)) {
    case ConnectionLimits::Verdict::TooManyTotal:
      metrics_->refused(RefusedReason::Total);
      return reject(std::move(tcp), listener, "too many connections");
    case ConnectionLimits::Verdict::TooManyFromIp:
      metrics_->refused(RefusedReason::PerIp);
      return reject(std::move(tcp), listener, "too many connections from " + ip);
    case ConnectionLimits::Verdict::Accepted:
      break;
  }
  startSession(listener, std::move(tcp), ip, {});
}

void Worker::startSession(Listener& listener, UvHandle<uv_tcp_t> tcp, const std::string& ip,
                          ClientOrigin origin) {
  std::uint64_t id = nextSessionId_.fetch_add(1);
  ProxySession* raw = nullptr;
  try {
    // env_ holds the snapshot that listener.runtime points into: the session keeps both.
    auto session = std::make_unique<ProxySession>(
        env_, listener.runtime, id, std::move(tcp),
        [this](ProxySession& done) { sessionDone(done); }, std::move(origin));
    raw = session.get();
    sessionIps_.emplace(id, ip);
    sessions_.emplace(id, std::move(session));
  } catch (const std::exception& error) {
    // This runs in a libuv callback: one connection that cannot start must not end the process.
    logLine(LogLevel::Error, std::string("cannot start a session: ") + error.what());
    sessionIps_.erase(id);
    limits_.release(ip);
    return;  // UvHandle closes the socket
  }
  raw->start();  // guarded: an exception ends that session alone
}

void Worker::acceptProxied(Listener& listener, UvHandle<uv_tcp_t> tcp, const std::string& peer) {
  const config::ListenerConfig& lc = *listener.runtime.config;
  const bool trusted =
      std::any_of(lc.trustedProxies.begin(), lc.trustedProxies.end(),
                  [&](const protocol::IpNetwork& network) { return network.contains(peer); });
  if (!trusted) {
    metrics_->refused(RefusedReason::UntrustedProxy);
    logLine(LogLevel::Warn, "refusing connection from " + peer + " on " + lc.address +
                                ": not in trusted_proxies (proxy_protocol = true)");
    return;  // UvHandle closes the socket: no greeting, nothing to a sender we cannot believe
  }
  if (!limits_.acquireTotal()) {
    metrics_->refused(RefusedReason::Total);
    return reject(std::move(tcp), listener, "too many connections");
  }
  const std::uint64_t readerId = nextReaderId_++;
  std::unique_ptr<ProxyHeaderReader> reader;
  try {
    reader = std::make_unique<ProxyHeaderReader>(
        &loop_, std::move(tcp),
        std::chrono::duration_cast<std::chrono::milliseconds>(lc.proxyProtocolTimeout),
        [this, key = listener.key, readerId, peer](ProxyHeaderReader&,
                                                   ProxyHeaderReader::Outcome outcome) {
          onProxyHeader(key, readerId, peer, std::move(outcome));
        });
  } catch (const std::exception& error) {
    logLine(LogLevel::Error, std::string("cannot start a connection: ") + error.what());
    limits_.releaseTotal();
    return;
  }
  ProxyHeaderReader* raw = reader.get();
  pendingHeaders_.emplace(readerId, std::move(reader));
  raw->start();  // reports from the loop, never from here
}

// From the reader's own timer, which lets the reader be destroyed here.
void Worker::onProxyHeader(const std::string& listenerKey, std::uint64_t readerId,
                           const std::string& peer, ProxyHeaderReader::Outcome outcome) {
  auto node = pendingHeaders_.extract(readerId);
  if (node.empty()) return;
  UvHandle<uv_tcp_t> tcp = node.mapped()->takeSocket();
  // By its key: a reload may have replaced or closed the listener while the header was on its way.
  auto found = std::find_if(listeners_.begin(), listeners_.end(),
                            [&](const auto& l) { return l && l->key == listenerKey; });
  if (found == listeners_.end()) {
    logLine(LogLevel::Info, "closing connection from " + peer +
                                ": its listener was removed by a reload before the PROXY header");
    limits_.releaseTotal();
    return;
  }
  Listener& listener = **found;
  const std::string& address = listener.runtime.config->address;
  if (!outcome.ok) {
    // A load balancer's TCP health check connects and closes without a byte: not a refusal.
    if (!outcome.closedSilently) metrics_->refused(RefusedReason::ProxyHeader);
    logLine(outcome.closedSilently ? LogLevel::Info : LogLevel::Warn,
            "closing connection from " + peer + " on " + address +
                ": bad PROXY protocol header: " + outcome.error);
    limits_.releaseTotal();
    return;  // the socket closes with `tcp`, without a greeting
  }
  ClientOrigin origin;
  const protocol::ProxyHeader& header = outcome.header;
  std::string ip = peer;
  if (header.addresses) {
    ip = protocol::unmappedIp(header.addresses->sourceIp);
    origin.endpoints = protocol::ClientEndpoints{
        ip, header.addresses->sourcePort, protocol::unmappedIp(header.addresses->destinationIp),
        header.addresses->destinationPort};
  }
  origin.via =
      "PROXY v" + std::to_string(header.version) + " " + std::string(header.kind) + " from " + peer;
  origin.receivedEarlier = std::move(outcome.after);
  if (!limits_.acquireIp(ip)) {
    metrics_->refused(RefusedReason::PerIp);
    limits_.releaseTotal();
    return reject(std::move(tcp), listener, "too many connections from " + ip);
  }
  startSession(listener, std::move(tcp), ip, std::move(origin));
}

void Worker::dropPendingHeaders() {
  for (std::size_t i = 0; i < pendingHeaders_.size(); ++i) limits_.releaseTotal();
  pendingHeaders_.clear();
}

void Worker::reject(UvHandle<uv_tcp_t> tcp, const Listener& listener, std::string_view why) {
  logLine(LogLevel::Warn,
          "refusing connection on " + listener.runtime.config->address + ": " + std::string(why));
  if (listener.runtime.config->tls != config::ListenerTls::Implicit) {
    // A fresh socket's send buffer is empty, so a try-write is enough here.
    static constexpr char kBusy[] = "-ERR [SYS/TEMP] Too many connections, try again later.\r\n";
    uv_buf_t buf = uv_buf_init(const_cast<char*>(kBusy), sizeof kBusy - 1);
    uv_try_write(tcp.stream(), &buf, 1);
  }
  // UvHandle closes the socket.
}

void Worker::sessionDone(ProxySession& session) {
  finished_.push_back(session.id());
  // Never destroy a session from inside its own callback.
  if (reapTimer_ && !reapTimer_->active()) {
    reapTimer_->start(std::chrono::milliseconds(0), [this] { reap(); });
  }
}

void Worker::reap() {
  auto finished = std::move(finished_);
  finished_.clear();
  for (std::uint64_t id : finished) {
    sessions_.erase(id);
    auto it = sessionIps_.find(id);
    if (it != sessionIps_.end()) {
      limits_.release(it->second);
      sessionIps_.erase(it);
    }
  }
  if (shuttingDown_ && sessions_.empty()) finishShutdown();
}

// --- requests from other threads ------------------------------------------------------------

void Worker::requestReload(Reload reload) {
  {
    std::lock_guard lock(requestMutex_);
    if (!loopEnded_) {
      reloadRequests_.push_back(std::move(reload));
      uv_async_send(wake_.get());
      return;
    }
  }
  if (reload.applied) reload.applied();  // nothing left to switch
}

void Worker::requestDrain() {
  std::lock_guard lock(requestMutex_);
  if (loopEnded_) return;
  drainRequested_ = true;
  uv_async_send(wake_.get());
}

void Worker::requestShutdown() {
  std::lock_guard lock(requestMutex_);
  if (loopEnded_) return;
  shutdownRequested_ = true;
  uv_async_send(wake_.get());
}

void Worker::onWake() {
  std::vector<Reload> reloads;
  bool drain = false;
  bool shutdown = false;
  {
    std::lock_guard lock(requestMutex_);
    reloads = std::exchange(reloadRequests_, {});
    drain = std::exchange(drainRequested_, false);
    shutdown = std::exchange(shutdownRequested_, false);
  }
  for (Reload& reload : reloads) applyReload(std::move(reload));
  if (drain) beginDrain();
  if (shutdown) beginShutdown();
}

// --- reload ------------------------------------------------------------------------------------

void Worker::applyReload(Reload reload) {
  // The dropped listeners point into the old snapshot until they are gone, below; nothing else
  // may hold it any more.
  const std::shared_ptr<const ConfigSnapshot> previous = snapshot_;
  if (!shuttingDown_) {
    useSnapshot(reload.snapshot);
    const auto& listeners = snapshot_->config.listeners;
    std::vector<std::unique_ptr<Listener>> next;
    for (std::size_t i = 0; i < listeners.size(); ++i) {
      const std::string key = listenerKey(listeners[i]);
      auto kept = std::find_if(listeners_.begin(), listeners_.end(),
                               [&](const auto& l) { return l && l->key == key; });
      if (kept != listeners_.end()) {
        // Same socket, no gap in accepting; new sessions get the new settings.
        (*kept)->runtime.config = &listeners[i];
        (*kept)->runtime.tls = snapshot_->tls->listeners[i].get();
        next.push_back(std::move(*kept));
        continue;
      }
      auto socket = reload.sockets.find(key);
      std::string error = "listener " + listeners[i].address + ": no socket was prepared";
      std::unique_ptr<Listener> added;
      if (socket != reload.sockets.end()) {
        added = adoptListener(i, std::move(socket->second), error);
      }
      if (!added) {
        logLine(LogLevel::Error, "reload: " + error);
        continue;
      }
      next.push_back(std::move(added));
    }
    for (const auto& dropped : listeners_) {
      if (dropped && index_ == 0) {
        logLine(LogLevel::Info, "no longer listening on " + dropped->runtime.config->address +
                                    "; the sessions it accepted go on");
      }
    }
    listeners_ = std::move(next);  // the dropped ones close here
  }
  if (reload.applied) reload.applied();
}

// --- shutdown ----------------------------------------------------------------------------------

void Worker::beginDrain() {
  if (shuttingDown_) return;
  shuttingDown_ = true;
  dropPendingHeaders();       // before the listeners their callbacks refer to
  listeners_.clear();         // new connections are refused from now on
  upstreamPool_->closeAll();  // logged out; sessions that QUIT now log out too
  std::vector<ProxySession*> live;
  for (auto& [id, session] : sessions_) live.push_back(session.get());
  for (ProxySession* session : live) session->drain();
  std::size_t staying = 0;
  for (auto& [id, session] : sessions_) {
    // Those not logged in were just told to go, but may still be flushing that reply.
    if (session->loggedIn() && !session->done()) ++staying;
  }
  const auto timeout = snapshot_->config.server.shutdownTimeout;
  logLine(LogLevel::Info, "worker " + std::to_string(index_) +
                              " draining: " + std::to_string(staying) +
                              " logged-in session(s) may QUIT within " + seconds(timeout) + ", " +
                              std::to_string(live.size() - staying) + " not logged in closed");
  if (sessions_.empty()) return finishShutdown();
  shutdownTimer_ = std::make_unique<Timer>(&loop_);
  shutdownTimer_->start(millis(timeout), [this] { onDrainDeadline(); });
}

void Worker::onDrainDeadline() {
  std::vector<ProxySession*> live;
  for (auto& [id, session] : sessions_) {
    if (!session->done()) live.push_back(session.get());
  }
  if (!live.empty()) {
    logLine(LogLevel::Warn, "shutdown timeout: closing " + std::to_string(live.size()) +
                                " session(s) that did not QUIT; nothing they marked is deleted "
                                "(an UPDATE already running may finish)");
  }
  for (ProxySession* session : live) session->drainDeadline();
  // What is left is flushing its last reply (bounded by the stream's close timeout) or running
  // an UPDATE (bounded by the upstream command timeout); this is only the backstop.
  const auto backstop =
      millis(snapshot_->config.upstream.commandTimeout) + std::chrono::seconds(10);
  shutdownTimer_->start(backstop, [this] {
    closeAllSessions("shutdown backstop");
    finishShutdown();
  });
}

void Worker::beginShutdown() {
  shuttingDown_ = true;
  dropPendingHeaders();  // before the listeners their callbacks refer to
  listeners_.clear();
  upstreamPool_->closeAll();
  std::vector<ProxySession*> live;
  for (auto& [id, session] : sessions_) live.push_back(session.get());
  for (ProxySession* session : live) session->shutdown();
  if (sessions_.empty()) return finishShutdown();
  // A moment to flush the -ERR lines, then the connections are cut.
  if (!shutdownTimer_) shutdownTimer_ = std::make_unique<Timer>(&loop_);
  shutdownTimer_->start(std::chrono::seconds(1), [this] {
    closeAllSessions("second stop signal");
    finishShutdown();
  });
}

void Worker::closeAllSessions(std::string_view why) {
  if (!sessions_.empty()) {
    logLine(LogLevel::Warn, std::string(why) + ": closing " + std::to_string(sessions_.size()) +
                                " remaining session(s)");
  }
  for (auto& [id, ip] : sessionIps_) limits_.release(ip);
  sessionIps_.clear();
  sessions_.clear();
}

void Worker::finishShutdown() {
  // Closing the last handles lets uv_run return.
  if (state_) state_->shutdown();
  loginGate_->close();
  if (mailbox_) mailbox_->close();
  std::vector<Reload> leftovers;
  {
    std::lock_guard lock(requestMutex_);
    if (loopEnded_) return;
    loopEnded_ = true;
    wake_.reset();
    leftovers = std::exchange(reloadRequests_, {});
  }
  for (Reload& reload : leftovers) {
    if (reload.applied) reload.applied();
  }
  reapTimer_.reset();
  shutdownTimer_.reset();
}

void Worker::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
}

// --- the supervisor: signals and reloads -------------------------------------------------------

namespace {

void setSignalsBlocked(bool blocked) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

void notifyOrWarn(const ReadinessNotifier& notifier, std::string_view state) {
  if (int error = notifier.notify(state); error != 0) {
    logLine(LogLevel::Warn, "NOTIFY_SOCKET " + notifier.socketName() + ": cannot send " +
                                std::string(state) + ": " + std::strerror(error));
  }
}

std::string signalName(int signum) {
  switch (signum) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
  }
  return "signal " + std::to_string(signum);
}

// The main thread's loop. It runs no session: it takes the signals, prepares reloads on a thread
// of their own (loading files and building TLS contexts never stalls a worker), hands each
// worker the new snapshot through the worker's uv_async, and ends when every worker has.
class Supervisor {
 public:
  Supervisor(std::shared_ptr<const ConfigSnapshot> running, ServerHooks hooks,
             std::vector<Worker*> workers, ConnectionLimits& limits, LoginGuard& loginGuard,
             LocalSessionRegistry& sessions, const ReadinessNotifier& notifier)
      : running_(std::move(running)),
        hooks_(std::move(hooks)),
        workers_(std::move(workers)),
        limits_(limits),
        loginGuard_(loginGuard),
        sessions_(sessions),
        notifier_(notifier) {
    uv_loop_init(&loop_);
    prepared_ =
        makeAsync([](uv_async_t* h) noexcept { self(h)->guarded(&Supervisor::onReloadPrepared); });
    applied_ =
        makeAsync([](uv_async_t* h) noexcept { self(h)->guarded(&Supervisor::onReloadApplied); });
    ended_ = makeAsync([](uv_async_t* h) noexcept { self(h)->guarded(&Supervisor::maybeEnd); });
  }

  // The configuration new sessions get; any thread (/readyz probes the upstream it names).
  std::shared_ptr<const ConfigSnapshot> running() {
    std::lock_guard lock(mutex_);
    return running_;
  }

  ~Supervisor() {
    closeHandles();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    if (reloadThread_.joinable()) reloadThread_.join();
  }
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Before any listener: a signal that was blocked until now is handled once run() starts.
  void installSignals() {
    for (auto [handle, signum] : {std::pair{&sighup_, SIGHUP}, std::pair{&sigint_, SIGINT},
                                  std::pair{&sigterm_, SIGTERM}}) {
      *handle = UvHandle<uv_signal_t>::allocate();
      uv_signal_init(&loop_, handle->get());
      (*handle)->data = this;
      uv_signal_start(
          handle->get(),
          [](uv_signal_t* h, int number) noexcept {
            try {
              static_cast<Supervisor*>(h->data)->onSignal(number);
            } catch (const std::exception& error) {
              logLine(LogLevel::Error, std::string("signal handling failed: ") + error.what());
            }
          },
          signum);
    }
  }

  // Any thread, once per worker, after its run() returned.
  void workerEnded() {
    // Under the lock closeHandles() takes: the last worker's increment may let the supervisor
    // close `ended_` before another worker's send.
    std::lock_guard lock(endMutex_);
    ++workersEnded_;
    if (!endedClosed_) uv_async_send(ended_.get());
  }

  void run() { uv_run(&loop_, UV_RUN_DEFAULT); }

 private:
  static Supervisor* self(uv_async_t* handle) { return static_cast<Supervisor*>(handle->data); }
  UvHandle<uv_async_t> makeAsync(uv_async_cb callback) {
    auto handle = UvHandle<uv_async_t>::allocate();
    uv_async_init(&loop_, handle.get(), callback);
    handle->data = this;
    return handle;
  }
  // No exception may reach libuv; a reload that throws fails like one with errors.
  void guarded(void (Supervisor::*method)()) noexcept {
    try {
      (this->*method)();
    } catch (const std::exception& error) {
      logLine(LogLevel::Error, std::string("supervisor: ") + error.what());
    } catch (...) {
      logLine(LogLevel::Error, "supervisor: unknown exception");
    }
  }

  void onSignal(int signum) {
    if (signum == SIGHUP) {
      if (stopSignals_ > 0) {
        logLine(LogLevel::Info, "received SIGHUP while shutting down; not reloading");
      } else if (reloading_) {
        logLine(LogLevel::Info, "received SIGHUP during a reload; another follows it");
        reloadAgain_ = true;
      } else {
        startReload();
      }
      return;
    }
    if (++stopSignals_ == 1) {
      const auto timeout = running_->config.server.shutdownTimeout;
      logLine(LogLevel::Info,
              "received " + signalName(signum) + "; shutting down: no new connections, " +
                  std::to_string(limits_.total()) + " open session(s); those logged in get up to " +
                  seconds(timeout) +
                  " to QUIT, nothing else applies their deletions (a second SIGTERM or SIGINT "
                  "ends them at once)");
      notifyOrWarn(notifier_, "STOPPING=1");
      started_ = std::chrono::steady_clock::now();
      for (Worker* worker : workers_) worker->requestDrain();
    } else if (stopSignals_ == 2) {
      logLine(LogLevel::Warn, "received " + signalName(signum) +
                                  " again; ending every session now, applying no deletions");
      for (Worker* worker : workers_) worker->requestShutdown();
    }
  }

  void startReload() {
    reloading_ = true;
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    notifyOrWarn(notifier_, "RELOADING=1\nMONOTONIC_USEC=" +
                                std::to_string(static_cast<std::uint64_t>(now.tv_sec) * 1000000u +
                                               static_cast<std::uint64_t>(now.tv_nsec) / 1000u));
    logLine(LogLevel::Info, "reloading configuration from " + hooks_.configPath);
    if (!hooks_.reloadConfig) {
      ReloadPlan plan;
      plan.errors.push_back("this process cannot reload its configuration");
      std::lock_guard lock(mutex_);
      plan_ = std::move(plan);
      uv_async_send(prepared_.get());
      return;
    }
    reloadThread_ = std::thread([this, running = running_, load = hooks_.reloadConfig,
                                 workers = static_cast<unsigned>(workers_.size())] {
      // Nothing here touches a worker: files, TLS contexts and sockets only.
      ReloadPlan plan;
      try {
        plan = planReload(*running, load(), workers);
      } catch (const std::exception& error) {
        plan = ReloadPlan{};
        plan.errors.push_back(std::string("reload: ") + error.what());
      }
      std::lock_guard lock(mutex_);
      plan_ = std::move(plan);
      uv_async_send(prepared_.get());
    });
  }

  void onReloadPrepared() {
    if (reloadThread_.joinable()) reloadThread_.join();
    std::optional<ReloadPlan> plan;
    {
      std::lock_guard lock(mutex_);
      plan = std::exchange(plan_, std::nullopt);
    }
    if (!plan) return;
    if (stopSignals_ > 0) {
      logLine(LogLevel::Info, "reload abandoned: shutting down");
      reloading_ = false;
      return maybeEnd();  // the plan's new sockets close here
    }
    for (const auto& warning : plan->warnings) logLine(LogLevel::Warn, "reload: " + warning);
    if (!plan->errors.empty()) {
      for (const auto& error : plan->errors) logLine(LogLevel::Error, error);
      logLine(LogLevel::Error, "reload failed: " + std::to_string(plan->errors.size()) +
                                   " error(s); keeping the running configuration");
      if (hooks_.onReload) hooks_.onReload(false);
      return endReload();
    }
    const auto& server = plan->snapshot->config.server;
    limits_.setLimits(server.maxConnections, server.maxConnectionsPerIp);
    loginGuard_.setLimits(LoginGuard::limitsFrom(server));
    sessions_.setMaxPerAccount(server.maxSessionsPerAccount);
    setLogLevel(server.logLevel);
    {
      std::lock_guard lock(mutex_);  // running() reads it from the admin thread
      running_ = plan->snapshot;
    }
    changes_ = std::move(plan->changes);
    pendingApplies_ = static_cast<unsigned>(workers_.size());
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      Worker::Reload reload;
      reload.snapshot = plan->snapshot;
      if (i < plan->sockets.size()) reload.sockets = std::move(plan->sockets[i]);
      reload.applied = [this] {
        if (--pendingApplies_ == 0) uv_async_send(applied_.get());
      };
      workers_[i]->requestReload(std::move(reload));
    }
  }

  // Every worker switched: new sessions get the new configuration from now on.
  void onReloadApplied() {
    if (!reloading_ || pendingApplies_ != 0) return;
    if (stopSignals_ == 0) {
      logLine(LogLevel::Info, "configuration reloaded: " + changes_);
      if (hooks_.onReload) hooks_.onReload(true);
    }
    endReload();
  }

  void endReload() {
    reloading_ = false;
    if (stopSignals_ > 0) return maybeEnd();
    notifyOrWarn(notifier_, "READY=1");
    if (std::exchange(reloadAgain_, false)) startReload();
  }

  void maybeEnd() {
    // Workers end only after a stop signal; a reload thread still running is waited for.
    if (workersEnded_ < workers_.size() || reloadThread_.joinable()) return;
    if (stopSignals_ > 0 && !closed_) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - started_)
                    .count();
      logLine(LogLevel::Info,
              "every session ended " + std::to_string(ms) + " ms after the stop signal");
    }
    closeHandles();
  }

  void closeHandles() {
    if (closed_) return;
    closed_ = true;
    sighup_.reset();
    sigint_.reset();
    sigterm_.reset();
    prepared_.reset();
    applied_.reset();
    std::lock_guard lock(endMutex_);
    endedClosed_ = true;
    ended_.reset();
  }

  uv_loop_t loop_{};
  std::shared_ptr<const ConfigSnapshot> running_;
  ServerHooks hooks_;
  std::vector<Worker*> workers_;
  ConnectionLimits& limits_;
  LoginGuard& loginGuard_;
  LocalSessionRegistry& sessions_;
  const ReadinessNotifier& notifier_;
  UvHandle<uv_signal_t> sighup_;
  UvHandle<uv_signal_t> sigint_;
  UvHandle<uv_signal_t> sigterm_;
  UvHandle<uv_async_t> prepared_;
  UvHandle<uv_async_t> applied_;
  UvHandle<uv_async_t> ended_;
  std::thread reloadThread_;
  std::mutex mutex_;
  std::optional<ReloadPlan> plan_;  // under mutex_
  std::atomic<unsigned> pendingApplies_{0};
  std::atomic<unsigned> workersEnded_{0};
  std::mutex endMutex_;       // workerEnded() against closing ended_
  bool endedClosed_ = false;  // under endMutex_
  std::string changes_;
  bool reloading_ = false;
  bool reloadAgain_ = false;
  bool closed_ = false;
  int stopSignals_ = 0;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace

std::unique_ptr<Metrics> makeMetrics(const config::Config& config, unsigned workers) {
  std::vector<std::string> listeners;
  for (const auto& listener : config.listeners) listeners.push_back(listener.address);
  auto metrics = std::make_unique<Metrics>(std::move(listeners), workers);
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  metrics->setBuild(POPBRIDGE_VERSION, std::floor(now * 1000) / 1000);
  return metrics;
}

ReadinessProbe readinessProbe(std::function<std::shared_ptr<const ConfigSnapshot>()> current) {
  return
      [current = std::move(current)](uv_loop_t* loop, ReadinessDone done) -> std::shared_ptr<void> {
        // The probe reads the configuration it was started with: the snapshot lives as long as it.
        struct Held {
          std::shared_ptr<const ConfigSnapshot> snapshot;
          std::unique_ptr<UpstreamProbe> probe;  // destroyed first
        };
        auto held = std::make_shared<Held>();
        held->snapshot = current();
        held->probe = probeReachability(
            loop, held->snapshot->config, held->snapshot->tls->upstream.get(),
            [done = std::move(done)](ProbeReport report) { done(report.ok(), report.summary()); });
        return held;
      };
}

std::unique_ptr<AdminServer> startAdminServer(const config::Config& config, const Metrics& metrics,
                                              ReadinessProbe probe, std::string& error) {
  AdminOptions options;
  options.host = config.metrics.host;
  options.port = config.metrics.port;
  options.maxConnections = config.metrics.maxConnections;
  options.readyzCache =
      std::chrono::duration_cast<std::chrono::milliseconds>(config.metrics.readyzCache);
  options.healthzStale =
      std::chrono::duration_cast<std::chrono::milliseconds>(config.metrics.healthzStale);
  auto admin = std::make_unique<AdminServer>(options, metrics, std::move(probe));
  if (!admin->start(error)) return nullptr;
  logLine(LogLevel::Info,
          "metrics on http://" + config.metrics.address + "/metrics (also /healthz, /readyz)");
  return admin;
}

void blockShutdownSignals() {
  setSignalsBlocked(true);
}

int runServer(const config::Config& config, ServerHooks hooks) {
  std::string error;
  auto tls = buildTlsContexts(config, error);
  if (!tls) {
    logLine(LogLevel::Error, error);
    return 1;
  }
  auto snapshot = std::make_shared<ConfigSnapshot>();
  snapshot->config = config;
  snapshot->tls = std::move(tls);
  // The first snapshot lives as long as the process: the token service refers to its [oauth2]
  // tables (which a reload cannot change).
  const std::shared_ptr<const ConfigSnapshot> initial = snapshot;
  const config::Config& startup = initial->config;
  if (!startup.upstream.verifyCertificate && startup.upstream.tls != config::UpstreamTls::None) {
    logLine(LogLevel::Warn,
            "upstream certificate verification is OFF (verify_certificate = false)");
  }
  // Declared before the workers, which use it until they are gone.
  const ReadinessNotifier notifier = ReadinessNotifier::fromEnvironment();
  if (!notifier.error().empty()) logLine(LogLevel::Warn, notifier.error());
  unsigned workers = startup.server.workers;
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  ConnectionLimits limits(startup.server.maxConnections, startup.server.maxConnectionsPerIp);
  LoginGuard loginGuard(LoginGuard::limitsFrom(startup.server));
  LocalSessionRegistry sessions(startup.server.maxSessionsPerAccount);
  // Before the workers, which ask it for tokens until they are gone.
  std::unique_ptr<TokenService> tokens;
  if (!startup.oauth2.empty()) {
    tokens = std::make_unique<TokenService>(startup);
    if (!tokens->start(error)) {
      logLine(LogLevel::Error, error);
      return 1;
    }
    logLine(LogLevel::Info, "OAuth2 identities: " + std::to_string(startup.oauth2.size()));
  }
  // Before the workers, which keep their state in it ([state]).
  ProcessState state;
  if (!openProcessState(startup.state, state, error)) {
    logLine(LogLevel::Error, error);
    return 1;
  }
  state.services.instance = randomInstanceId();
  std::atomic<std::uint64_t> nextId{1};
  // Before the workers, which count into it, and the admin server, which reads it.
  std::unique_ptr<Metrics> metrics = makeMetrics(config, workers);
  // Before the workers, which share it. Always there, so that a reload may turn it on; its bound
  // is the one at startup.
  SharedSnapshotCache snapshotCache(startup.upstream.snapshotCacheMaxMessages);
  std::vector<std::unique_ptr<Worker>> pool;
  std::vector<Worker*> all;
  for (unsigned i = 0; i < workers; ++i) {
    pool.push_back(std::make_unique<Worker>(initial, limits, loginGuard, nextId, i, tokens.get(),
                                            &sessions, &metrics->worker(i)));
    pool.back()->setSnapshotCache(&snapshotCache);
    pool.back()->useState(state.services);
    all.push_back(pool.back().get());
  }
  hooks.onReload = [&metrics, then = std::move(hooks.onReload)](bool ok) {
    metrics->configReload(ok ? ReloadResult::Ok : ReloadResult::Error);
    if (then) then(ok);
  };
  Supervisor supervisor(initial, std::move(hooks), all, limits, loginGuard, sessions, notifier);
  // The handlers exist before any port accepts a connection: whoever saw a port open may stop
  // the process at once and gets a clean shutdown. A signal that was blocked until here (see
  // blockShutdownSignals) is delivered now and handled once the supervisor's loop runs.
  supervisor.installSignals();
  setSignalsBlocked(false);
  for (auto& worker : pool) {
    if (!worker->bindListeners(workers > 1, error)) {
      logLine(LogLevel::Error, error);
      return 1;
    }
  }
  // After the workers exist (their heartbeats are fresh) and before "ready".
  std::unique_ptr<AdminServer> admin;
  if (!config.metrics.address.empty()) {
    admin = startAdminServer(config, *metrics,
                             readinessProbe([&supervisor] { return supervisor.running(); }), error);
    if (!admin) {
      logLine(LogLevel::Error, error);
      return 1;
    }
  }
  logLine(LogLevel::Info, "popbridge " POPBRIDGE_VERSION " started with " +
                              std::to_string(workers) + " worker(s); upstream " +
                              startup.upstream.host + ":" + std::to_string(startup.upstream.port) +
                              " (tls=" + std::string(config::toString(startup.upstream.tls)) + ")");
  // The last startup line, then the service manager: every listener accepts connections now.
  logLine(LogLevel::Info, "ready");
  notifyOrWarn(notifier, "READY=1");
  std::vector<std::thread> threads;
  for (auto& worker : pool) {
    threads.emplace_back([worker = worker.get(), &supervisor] {
      worker->run();
      supervisor.workerEnded();
    });
  }
  supervisor.run();
  for (auto& thread : threads) thread.join();
  if (admin) admin->stop();
  if (tokens) tokens->stop();
  logLine(LogLevel::Info, "popbridge stopped");
  return 0;
}

}  // namespace popbridge::proxy
