#include "proxy/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "protocol/net_address.h"
#include "proxy/log.h"
#include "proxy/readiness.h"

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

std::unique_ptr<TlsContexts> buildTlsContexts(const config::Config& config, std::string& error) {
  auto contexts = std::make_unique<TlsContexts>();
  for (const auto& listener : config.listeners) {
    if (listener.tls == config::ListenerTls::None) {
      contexts->listeners.push_back(nullptr);
      continue;
    }
    auto context = TlsServerContext::create(listener.certificate, listener.privateKey,
                                            listener.minTlsVersion, error, listener.ciphers);
    if (!context) {
      error = "listener " + listener.address + ": " + error;
      return nullptr;
    }
    // What a client can negotiate is otherwise invisible until one fails to.
    logLine(LogLevel::Info, "listener " + listener.address + " accepts " + context->policy());
    contexts->listeners.push_back(std::move(context));
  }
  if (config.upstream.tls != config::UpstreamTls::None) {
    contexts->upstream =
        TlsClientContext::create(config.upstream.caFile, config.upstream.verifyCertificate,
                                 config.upstream.minTlsVersion, error);
    if (!contexts->upstream) {
      error = "upstream: " + error;
      return nullptr;
    }
  }
  return contexts;
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

}  // namespace

Worker::Worker(const config::Config& config, const TlsContexts& tls, ConnectionLimits& limits,
               LoginGuard& loginGuard, std::atomic<std::uint64_t>& nextSessionId, unsigned index,
               TokenService* tokens)
    : config_(config), tls_(tls), limits_(limits), nextSessionId_(nextSessionId), index_(index) {
  uv_loop_init(&loop_);
  loginGate_ = std::make_unique<LoginGate>(&loop_, loginGuard, index_);
  if (tokens != nullptr) {
    mailbox_ = LoopMailbox::create(&loop_);
    env_.tokens = tokens;
    env_.mailbox = mailbox_;
  }
  env_.loop = &loop_;
  env_.config = &config_;
  env_.upstreamTls = tls_.upstream.get();
  env_.loginGate = loginGate_.get();
  wake_ = UvHandle<uv_async_t>::allocate();
  uv_async_init(&loop_, wake_.get(), [](uv_async_t* handle) noexcept {
    auto* self = static_cast<Worker*>(handle->data);
    if (self && self->shutdownRequested_) self->beginShutdown();
  });
  wake_->data = this;
  reapTimer_ = std::make_unique<Timer>(&loop_);
}

Worker::~Worker() {
  dropPendingHeaders();
  sessions_.clear();
  // Its async handle must be closed while the loop runs once more below; the object stays for
  // password checks still finishing in that run.
  loginGate_->close();
  if (mailbox_) mailbox_->close();
  listeners_.clear();
  wake_.reset();
  sigint_.reset();
  sigterm_.reset();
  reapTimer_.reset();
  shutdownTimer_.reset();
  // Let every close callback run so the loop can be closed without leaks.
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

bool Worker::bindListeners(bool reusePort, std::string& error) {
  for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
    const auto& lc = config_.listeners[i];
    sockaddr_storage address{};
    bool v6 = lc.host.find(':') != std::string::npos;
    int rc = v6 ? uv_ip6_addr(lc.host.c_str(), lc.port, reinterpret_cast<sockaddr_in6*>(&address))
                : uv_ip4_addr(lc.host.c_str(), lc.port, reinterpret_cast<sockaddr_in*>(&address));
    if (rc != 0) {
      error = "listener " + lc.address + ": bad address";
      return false;
    }
    // Our own socket, so SO_REUSEPORT can be set before bind (libuv 1.44 has no flag for it).
    int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = "listener " + lc.address + ": socket: " + std::strerror(errno);
      return false;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reusePort) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    // "[::]" and "0.0.0.0" may both be configured; keep the v6 socket v6-only.
    if (v6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    socklen_t length = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) {
      error = "listener " + lc.address + ": cannot bind: " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    auto listener = std::make_unique<Listener>();
    listener->worker = this;
    listener->runtime.config = &lc;
    listener->runtime.tls = tls_.listeners[i].get();
    listener->tcp = UvHandle<uv_tcp_t>::allocate();
    uv_tcp_init(&loop_, listener->tcp.get());
    if ((rc = uv_tcp_open(listener->tcp.get(), fd)) != 0) {
      ::close(fd);
      error = "listener " + lc.address + ": " + uv_strerror(rc);
      return false;
    }
    listener->tcp->data = listener.get();
    if ((rc = uv_listen(listener->tcp.stream(), 511, &Worker::onConnection)) != 0) {
      error = "listener " + lc.address + ": cannot listen: " + uv_strerror(rc);
      return false;
    }
    if (index_ == 0) {
      logLine(LogLevel::Info, "listening on " + lc.address +
                                  " (tls=" + std::string(config::toString(lc.tls)) + ")");
    }
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
      return reject(std::move(tcp), listener, "too many connections");
    case ConnectionLimits::Verdict::TooManyFromIp:
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
    // METRICS HOOK: count "connections refused: untrusted_proxy" here.
    logLine(LogLevel::Warn, "refusing connection from " + peer + " on " + lc.address +
                                ": not in trusted_proxies (proxy_protocol = true)");
    return;  // UvHandle closes the socket: no greeting, nothing to a sender we cannot believe
  }
  if (!limits_.acquireTotal()) return reject(std::move(tcp), listener, "too many connections");
  const std::uint64_t readerId = nextReaderId_++;
  std::unique_ptr<ProxyHeaderReader> reader;
  try {
    reader = std::make_unique<ProxyHeaderReader>(
        &loop_, std::move(tcp),
        std::chrono::duration_cast<std::chrono::milliseconds>(lc.proxyProtocolTimeout),
        [this, &listener, readerId, peer](ProxyHeaderReader&, ProxyHeaderReader::Outcome outcome) {
          onProxyHeader(listener, readerId, peer, std::move(outcome));
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
void Worker::onProxyHeader(Listener& listener, std::uint64_t readerId, const std::string& peer,
                           ProxyHeaderReader::Outcome outcome) {
  auto node = pendingHeaders_.extract(readerId);
  if (node.empty()) return;
  UvHandle<uv_tcp_t> tcp = node.mapped()->takeSocket();
  const std::string& address = listener.runtime.config->address;
  if (!outcome.ok) {
    // METRICS HOOK: count "connections refused: proxy_header" here (malformed, timeout, EOF).
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
  if (!reapTimer_->active()) reapTimer_->start(std::chrono::milliseconds(0), [this] { reap(); });
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

void Worker::handleSignals(std::vector<Worker*> all, std::function<void()> onSignal) {
  signalTargets_ = std::move(all);
  onSignal_ = std::move(onSignal);
  auto handler = [](uv_signal_t* handle, int signum) noexcept {
    auto* self = static_cast<Worker*>(handle->data);
    if (self == nullptr) return;
    logLine(LogLevel::Info, std::string("received ") + (signum == SIGINT ? "SIGINT" : "SIGTERM") +
                                "; shutting down without applying pending deletions");
    if (self->onSignal_) std::exchange(self->onSignal_, nullptr)();
    for (Worker* worker : self->signalTargets_) worker->requestShutdown();
  };
  sigint_ = UvHandle<uv_signal_t>::allocate();
  uv_signal_init(&loop_, sigint_.get());
  sigint_->data = this;
  uv_signal_start(sigint_.get(), handler, SIGINT);
  sigterm_ = UvHandle<uv_signal_t>::allocate();
  uv_signal_init(&loop_, sigterm_.get());
  sigterm_->data = this;
  uv_signal_start(sigterm_.get(), handler, SIGTERM);
}

void Worker::requestShutdown() {
  shutdownRequested_ = true;
  uv_async_send(wake_.get());
}

void Worker::beginShutdown() {
  if (shuttingDown_) return;
  shuttingDown_ = true;
  dropPendingHeaders();  // before the listeners their callbacks refer to
  listeners_.clear();
  sigint_.reset();
  sigterm_.reset();
  std::vector<ProxySession*> live;
  for (auto& [id, session] : sessions_) live.push_back(session.get());
  for (ProxySession* session : live) session->shutdown();
  if (sessions_.empty()) return finishShutdown();
  shutdownTimer_ = std::make_unique<Timer>(&loop_);
  shutdownTimer_->start(
      std::chrono::duration_cast<std::chrono::milliseconds>(config_.server.shutdownTimeout),
      [this] {
        logLine(LogLevel::Warn, "shutdown timeout: closing " + std::to_string(sessions_.size()) +
                                    " remaining sessions");
        for (auto& [id, ip] : sessionIps_) limits_.release(ip);
        sessionIps_.clear();
        sessions_.clear();
        finishShutdown();
      });
}

void Worker::finishShutdown() {
  // Closing the last handles lets uv_run return.
  loginGate_->close();
  if (mailbox_) mailbox_->close();
  wake_.reset();
  reapTimer_.reset();
  shutdownTimer_.reset();
}

void Worker::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
}

namespace {

void setShutdownSignalsBlocked(bool blocked) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

void notifyOrWarn(const ReadinessNotifier& notifier, std::string_view state) {
  if (int error = notifier.notify(state); error != 0) {
    logLine(LogLevel::Warn, "NOTIFY_SOCKET " + notifier.socketName() + ": cannot send " +
                                std::string(state) + ": " + std::strerror(error));
  }
}

}  // namespace

void blockShutdownSignals() {
  setShutdownSignalsBlocked(true);
}

int runServer(const config::Config& config) {
  std::string error;
  auto tls = buildTlsContexts(config, error);
  if (!tls) {
    logLine(LogLevel::Error, error);
    return 1;
  }
  if (!config.upstream.verifyCertificate && config.upstream.tls != config::UpstreamTls::None) {
    logLine(LogLevel::Warn,
            "upstream certificate verification is OFF (verify_certificate = false)");
  }
  // Declared before the workers, which use it until they are gone.
  const ReadinessNotifier notifier = ReadinessNotifier::fromEnvironment();
  if (!notifier.error().empty()) logLine(LogLevel::Warn, notifier.error());
  unsigned workers = config.server.workers;
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  ConnectionLimits limits(config.server.maxConnections, config.server.maxConnectionsPerIp);
  LoginGuard loginGuard(LoginGuard::limitsFrom(config.server));
  // Before the workers, which ask it for tokens until they are gone.
  std::unique_ptr<TokenService> tokens;
  if (!config.oauth2.empty()) {
    tokens = std::make_unique<TokenService>(config);
    if (!tokens->start(error)) {
      logLine(LogLevel::Error, error);
      return 1;
    }
    logLine(LogLevel::Info, "OAuth2 identities: " + std::to_string(config.oauth2.size()));
  }
  std::atomic<std::uint64_t> nextId{1};
  std::vector<std::unique_ptr<Worker>> pool;
  std::vector<Worker*> all;
  for (unsigned i = 0; i < workers; ++i) {
    pool.push_back(
        std::make_unique<Worker>(config, *tls, limits, loginGuard, nextId, i, tokens.get()));
    all.push_back(pool.back().get());
  }
  // The handlers exist before any port accepts a connection: whoever saw a port open may stop
  // the process at once and gets a clean shutdown. A signal that was blocked until here (see
  // blockShutdownSignals) is delivered now and handled once the loop runs.
  pool.front()->handleSignals(all, [&notifier] { notifyOrWarn(notifier, "STOPPING=1"); });
  setShutdownSignalsBlocked(false);
  for (auto& worker : pool) {
    if (!worker->bindListeners(workers > 1, error)) {
      logLine(LogLevel::Error, error);
      return 1;
    }
  }
  logLine(LogLevel::Info, "popbridge " POPBRIDGE_VERSION " started with " +
                              std::to_string(workers) + " worker(s); upstream " +
                              config.upstream.host + ":" + std::to_string(config.upstream.port) +
                              " (tls=" + std::string(config::toString(config.upstream.tls)) + ")");
  // The last startup line, then the service manager: every listener accepts connections now.
  logLine(LogLevel::Info, "ready");
  notifyOrWarn(notifier, "READY=1");
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < pool.size(); ++i) {
    threads.emplace_back([worker = pool[i].get()] { worker->run(); });
  }
  pool.front()->run();
  for (auto& thread : threads) thread.join();
  if (tokens) tokens->stop();
  logLine(LogLevel::Info, "popbridge stopped");
  return 0;
}

}  // namespace popbridge::proxy
