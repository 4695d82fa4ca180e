#pragma once

// The [metrics] listener: GET /metrics, /healthz and /readyz over plain HTTP/1.x, one request
// per connection, on a thread and event loop of its own so that a scrape or a slow probe never
// delays a worker loop. Bounded: max_connections at once, an 8 KiB request head, 10 s to send it.

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "proxy/metrics.h"
#include "proxy/uv_handle.h"

namespace popbridge::proxy {

// Answers whether the upstream can be reached: starts one probe on `loop` (the admin loop) and
// calls `done` once, from that loop, with the outcome and a line saying what was seen or what
// failed. The returned object owns the probe: dropping it cancels the probe, and `done` is then
// not called. (A std::unique_ptr<UpstreamProbe> from probeReachability converts to it.)
using ReadinessDone = std::function<void(bool ok, std::string detail)>;
using ReadinessProbe = std::function<std::shared_ptr<void>(uv_loop_t* loop, ReadinessDone done)>;

// A probe that only resolves and connects over TCP, within `timeout`.
ReadinessProbe tcpConnectProbe(std::string host, std::uint16_t port,
                               std::chrono::milliseconds timeout);

struct AdminOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port (tests); see AdminServer::port()
  unsigned maxConnections = 16;
  std::chrono::milliseconds readyzCache{5000};
  std::chrono::milliseconds healthzStale{5000};
  std::chrono::milliseconds readTimeout{10000};
};

class AdminServer {
 public:
  // `metrics` must outlive the server. `probe` may be empty: /readyz then answers 503.
  // `now` is the steady clock heartbeats are written with, in milliseconds (tests replace it).
  AdminServer(AdminOptions options, const Metrics& metrics, ReadinessProbe probe,
              std::function<std::int64_t()> now = {});
  ~AdminServer();  // stop()
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds, then serves on a thread of its own. False and `error` when the address cannot be
  // bound.
  bool start(std::string& error);
  // Thread-safe and idempotent: closes every connection and cancels a probe in flight, then
  // joins the thread.
  void stop();
  // The bound port, once started.
  std::uint16_t port() const { return boundPort_; }

  // The steady clock in milliseconds, as WorkerMetrics::heartbeat wants it.
  static std::int64_t steadyMillis();

 private:
  struct Connection;
  struct Response {
    int status = 200;
    std::string body;
    std::string contentType = "text/plain; charset=utf-8";
    bool allowHeader = false;
  };

  static void onConnection(uv_stream_t* server, int status) noexcept;
  void accept();
  void onData(std::uint64_t id, std::string_view data);
  void respond(std::uint64_t id, const Response& response);
  void route(std::uint64_t id);
  Response healthz() const;
  void readyz(std::uint64_t id);
  void onProbeDone(std::uint64_t generation, bool ok, std::string detail);
  void close(std::uint64_t id);
  void shutdownOnLoop();

  AdminOptions options_;
  const Metrics& metrics_;
  ReadinessProbe probe_;
  std::function<std::int64_t()> now_;
  uv_loop_t loop_{};
  bool loopInitialised_ = false;
  UvHandle<uv_tcp_t> listener_;
  UvHandle<uv_async_t> wake_;
  std::thread thread_;
  std::uint16_t boundPort_ = 0;
  bool stopping_ = false;  // the admin thread's view

  std::map<std::uint64_t, std::unique_ptr<Connection>> connections_;
  std::uint64_t nextId_ = 1;

  // /readyz: one probe at a time, its result shared and kept for readyzCache.
  std::shared_ptr<void> probeRun_;
  std::uint64_t probeGeneration_ = 0;
  bool probing_ = false;
  bool haveResult_ = false;
  bool lastOk_ = false;
  std::string lastDetail_;
  std::int64_t lastAt_ = 0;
  std::vector<std::uint64_t> readyWaiters_;
};

// The HTTP/1.1 response bytes for `status`, with Content-Length and Connection: close; the body
// is left out for HEAD.
std::string formatHttpResponse(int status, std::string_view contentType, std::string_view body,
                               bool headRequest, bool allowGetHead);

}  // namespace popbridge::proxy
