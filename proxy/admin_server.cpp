#include "proxy/admin_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <utility>

#include "protocol/http/request_parser.h"
#include "proxy/connector.h"
#include "proxy/log.h"
#include "proxy/stream.h"

namespace popbridge::proxy {
namespace {

std::string_view statusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

std::string formatHttpResponse(int status, std::string_view contentType, std::string_view body,
                               bool headRequest, bool allowGetHead) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(statusText(status)) +
                    "\r\nContent-Type: " + std::string(contentType) +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nCache-Control: no-store\r\nConnection: close\r\n";
  if (allowGetHead) out += "Allow: GET, HEAD\r\n";
  out += "\r\n";
  if (!headRequest) out.append(body);
  return out;
}

ReadinessProbe tcpConnectProbe(std::string host, std::uint16_t port,
                               std::chrono::milliseconds timeout) {
  return [host = std::move(host), port, timeout](uv_loop_t* loop,
                                                 ReadinessDone done) -> std::shared_ptr<void> {
    auto connector = std::make_shared<Connector>(loop);
    const std::string target = host + ":" + std::to_string(port);
    // The connector is owned by the caller's token; the callback must not keep it alive.
    connector->connect(host, port, timeout,
                       [done = std::move(done), target](UvHandle<uv_tcp_t> tcp, std::string error) {
                         tcp.reset();  // reachability only: close at once
                         if (error.empty()) {
                           done(true, "upstream " + target + " accepts TCP connections");
                         } else {
                           done(false, error);
                         }
                       });
    return connector;
  };
}

struct AdminServer::Connection {
  explicit Connection(uv_loop_t* loop) : timer(loop) {}
  std::unique_ptr<Stream> stream;
  protocol::HttpRequestParser parser;
  Timer timer;
  bool head = false;
  bool answered = false;
};

AdminServer::AdminServer(AdminOptions options, const Metrics& metrics, ReadinessProbe probe,
                         std::function<std::int64_t()> now)
    : options_(std::move(options)),
      metrics_(metrics),
      probe_(std::move(probe)),
      now_(now ? std::move(now) : std::function<std::int64_t()>(&AdminServer::steadyMillis)) {
  uv_loop_init(&loop_);
  loopInitialised_ = true;
}

AdminServer::~AdminServer() {
  stop();
  // Whatever start() left behind (a failed bind) closes here.
  shutdownOnLoop();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

std::int64_t AdminServer::steadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool AdminServer::start(std::string& error) {
  sockaddr_storage address{};
  const bool v6 = options_.host.find(':') != std::string::npos;
  int rc = v6 ? uv_ip6_addr(options_.host.c_str(), options_.port,
                            reinterpret_cast<sockaddr_in6*>(&address))
              : uv_ip4_addr(options_.host.c_str(), options_.port,
                            reinterpret_cast<sockaddr_in*>(&address));
  const std::string name =
      "metrics listener " + options_.host + ":" + std::to_string(options_.port);
  if (rc != 0) {
    error = name + ": bad address";
    return false;
  }
  listener_ = UvHandle<uv_tcp_t>::allocate();
  uv_tcp_init(&loop_, listener_.get());
  listener_->data = this;
  if ((rc = uv_tcp_bind(listener_.get(), reinterpret_cast<sockaddr*>(&address),
                        v6 ? UV_TCP_IPV6ONLY : 0)) != 0 ||
      (rc = uv_listen(listener_.stream(), 64, &AdminServer::onConnection)) != 0) {
    error = name + ": cannot listen: " + uv_strerror(rc);
    return false;
  }
  sockaddr_storage bound{};
  int length = sizeof bound;
  uv_tcp_getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&bound), &length);
  boundPort_ =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  wake_ = UvHandle<uv_async_t>::allocate();
  uv_async_init(&loop_, wake_.get(), [](uv_async_t* handle) noexcept {
    if (auto* self = static_cast<AdminServer*>(handle->data)) self->shutdownOnLoop();
  });
  wake_->data = this;
  thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  return true;
}

void AdminServer::stop() {
  if (!thread_.joinable()) return;
  uv_async_send(wake_.get());
  thread_.join();
}

void AdminServer::shutdownOnLoop() {
  stopping_ = true;
  listener_.reset();
  connections_.clear();  // a Stream destroyed does not call back
  probeRun_.reset();     // cancels a probe in flight
  readyWaiters_.clear();
  wake_.reset();
}

void AdminServer::onConnection(uv_stream_t* server, int status) noexcept {
  auto* self = static_cast<AdminServer*>(server->data);
  if (self == nullptr || status < 0) return;
  try {
    self->accept();
  } catch (const std::exception& error) {
    // One connection that cannot start must not end the admin thread, nor the process.
    logLine(LogLevel::Error, std::string("metrics listener: ") + error.what());
  }
}

void AdminServer::accept() {
  auto tcp = UvHandle<uv_tcp_t>::allocate();
  uv_tcp_init(&loop_, tcp.get());
  if (uv_accept(listener_.stream(), tcp.stream()) != 0 || stopping_) return;
  if (connections_.size() >= options_.maxConnections) return;  // UvHandle closes it
  const std::uint64_t id = nextId_++;
  auto connection = std::make_unique<Connection>(&loop_);
  Stream::Options streamOptions;
  streamOptions.readBufferSize = 4096;
  streamOptions.highWatermark = 1 << 20;
  streamOptions.handshakeTimeout = std::chrono::milliseconds(0);
  streamOptions.closeTimeout = std::chrono::milliseconds(2000);
  Stream::Callbacks callbacks;
  callbacks.onData = [this, id](std::string_view data) {
    // From libuv: an exception (a std::bad_alloc rendering the page) must not end the admin
    // thread; that request alone gets a 500, or is closed when even that fails.
    try {
      onData(id, data);
    } catch (const std::exception& error) {
      logLine(LogLevel::Error, std::string("metrics listener: ") + error.what());
      try {
        respond(id, {500, "internal error\n"});
      } catch (...) {
        if (auto it = connections_.find(id); it != connections_.end())
          it->second->stream->close("error");
      }
    }
  };
  callbacks.onDrain = [] {};
  callbacks.onTlsReady = [] {};
  callbacks.onClose = [this, id](std::string_view) { close(id); };
  connection->stream =
      std::make_unique<Stream>(&loop_, std::move(tcp), streamOptions, std::move(callbacks));
  connection->timer.start(options_.readTimeout, [this, id] {
    auto it = connections_.find(id);
    if (it == connections_.end() || it->second->answered) return;
    respond(id, {408, "request not received in time\n"});
  });
  Stream& stream = *connection->stream;
  connections_.emplace(id, std::move(connection));
  stream.startReading();
}

void AdminServer::onData(std::uint64_t id, std::string_view data) {
  auto it = connections_.find(id);
  if (it == connections_.end() || it->second->answered) return;
  Connection& connection = *it->second;
  std::size_t consumed = 0;
  switch (connection.parser.feed(data, consumed)) {
    case protocol::HttpRequestParser::Result::NeedMore:
      return;
    case protocol::HttpRequestParser::Result::Error:
      respond(id, {connection.parser.errorStatus(),
                   connection.parser.error() + "\n",
                   {},
                   connection.parser.errorStatus() == 405});
      return;
    case protocol::HttpRequestParser::Result::Done:
      connection.head = connection.parser.method() == "HEAD";
      route(id);
      return;
  }
}

void AdminServer::route(std::uint64_t id) {
  Connection& connection = *connections_.at(id);
  connection.answered = true;  // no second request on this connection; what follows is ignored
  connection.timer.stop();
  const std::string_view path = connection.parser.path();
  if (path == "/metrics") {
    Response response;
    response.body = metrics_.render();
    response.contentType = std::string(kMetricsType);
    return respond(id, response);
  }
  if (path == "/healthz") return respond(id, healthz());
  if (path == "/readyz") return readyz(id);
  respond(id, {404, "not found; try /metrics, /healthz or /readyz\n"});
}

AdminServer::Response AdminServer::healthz() const {
  const std::int64_t now = now_();
  const std::int64_t stale = options_.healthzStale.count();
  std::string stuck;
  for (unsigned i = 0; i < metrics_.workerCount(); ++i) {
    const std::int64_t age = now - metrics_.worker(i).lastHeartbeat();
    if (age > stale) {
      stuck += "worker " + std::to_string(i) + " has not run for " + std::to_string(age) + " ms\n";
    }
  }
  if (stuck.empty()) return {200, "ok\n"};
  return {503, stuck};
}

void AdminServer::readyz(std::uint64_t id) {
  if (!probe_) return respond(id, {503, "no readiness probe configured\n"});
  if (haveResult_ && now_() - lastAt_ < options_.readyzCache.count()) {
    return respond(id, {lastOk_ ? 200 : 503, lastDetail_ + "\n"});
  }
  readyWaiters_.push_back(id);
  if (probing_) return;  // single flight: this request shares the probe in flight
  probing_ = true;
  const std::uint64_t generation = ++probeGeneration_;
  try {
    probeRun_ = probe_(&loop_, [this, generation](bool ok, std::string detail) {
      onProbeDone(generation, ok, std::move(detail));
    });
  } catch (const std::exception& error) {
    onProbeDone(generation, false, std::string("probe failed to start: ") + error.what());
  }
}

void AdminServer::onProbeDone(std::uint64_t generation, bool ok, std::string detail) {
  if (generation != probeGeneration_ || !probing_) return;
  probing_ = false;
  haveResult_ = true;
  lastOk_ = ok;
  lastDetail_ = std::move(detail);
  lastAt_ = now_();
  // probeRun_ keeps the finished probe until the next one replaces it: never destroyed from
  // inside its own callback.
  for (std::uint64_t waiter : std::exchange(readyWaiters_, {})) {
    if (connections_.count(waiter) != 0) respond(waiter, {lastOk_ ? 200 : 503, lastDetail_ + "\n"});
  }
}

void AdminServer::respond(std::uint64_t id, const Response& response) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  Connection& connection = *it->second;
  connection.answered = true;
  connection.timer.stop();
  connection.stream->write(formatHttpResponse(
      response.status,
      response.contentType.empty() ? std::string_view("text/plain; charset=utf-8")
                                   : std::string_view(response.contentType),
      response.body, connection.head, response.allowHeader));
  connection.stream->closeAfterFlush("answered");
}

void AdminServer::close(std::uint64_t id) {
  // Stream allows being destroyed from inside its own onClose.
  connections_.erase(id);
}

}  // namespace popbridge::proxy
