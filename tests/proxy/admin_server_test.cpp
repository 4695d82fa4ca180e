// The metrics listener over real sockets: routing, refusals, /healthz from heartbeats and the
// cached single-flight /readyz, with a fake probe and a fake clock.

#include "proxy/admin_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace popbridge::proxy {
namespace {

using namespace std::chrono_literals;

int connectTo(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

void sendAll(int fd, const std::string& bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

// Until the server closes (every response closes its connection).
std::string readAll(int fd) {
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) out.append(buffer, n);
  ::close(fd);
  return out;
}

std::string roundTrip(std::uint16_t port, const std::string& request) {
  int fd = connectTo(port);
  EXPECT_GE(fd, 0);
  if (fd < 0) return {};
  sendAll(fd, request);
  return readAll(fd);
}

std::string get(std::uint16_t port, const std::string& path) {
  return roundTrip(port, "GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n");
}

std::string statusLine(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

std::string body(const std::string& response) {
  const std::size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? std::string() : response.substr(at + 4);
}

class AdminServerTest : public ::testing::Test {
 protected:
  AdminServerTest() : metrics_({"127.0.0.1:1100"}, 2) {}

  // A probe that answers `probeOk_` after 200 ms, counting its runs.
  ReadinessProbe fakeProbe() {
    return [this](uv_loop_t* loop, ReadinessDone done) -> std::shared_ptr<void> {
      ++probes_;
      auto timer = std::make_shared<Timer>(loop);
      timer->start(200ms, [this, done = std::move(done)] {
        done(probeOk_.load(), probeOk_ ? "upstream answers" : "connect refused");
      });
      return timer;
    };
  }

  void start(ReadinessProbe probe, AdminOptions options = {}) {
    for (unsigned i = 0; i < 2; ++i) metrics_.worker(i).heartbeat(now_);
    options.port = 0;
    server_ = std::make_unique<AdminServer>(options, metrics_, std::move(probe),
                                            [this] { return now_.load(); });
    std::string error;
    ASSERT_TRUE(server_->start(error)) << error;
  }

  Metrics metrics_;
  std::atomic<std::int64_t> now_{1'000'000};
  std::atomic<int> probes_{0};
  std::atomic<bool> probeOk_{true};
  std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTest, ServesMetricsInTheTextFormat) {
  start(fakeProbe());
  metrics_.worker(1).sessionStarted(0);
  const std::string response = get(server_->port(), "/metrics");
  EXPECT_EQ(statusLine(response), "HTTP/1.1 200 OK");
  EXPECT_NE(response.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos);
  EXPECT_NE(response.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_NE(body(response).find("popbridge_sessions_total{listener=\"127.0.0.1:1100\"} 1\n"),
            std::string::npos);
  EXPECT_NE(response.find("Content-Length: " + std::to_string(body(response).size()) + "\r\n"),
            std::string::npos);
}

TEST_F(AdminServerTest, HeadHasHeadersOnly) {
  start(fakeProbe());
  const std::string response = roundTrip(server_->port(), "HEAD /healthz HTTP/1.0\r\n\r\n");
  EXPECT_EQ(statusLine(response), "HTTP/1.1 200 OK");
  EXPECT_NE(response.find("Content-Length: 3\r\n"), std::string::npos);
  EXPECT_EQ(body(response), "");
}

TEST_F(AdminServerTest, RefusesWhatItDoesNotServe) {
  start(fakeProbe());
  EXPECT_EQ(statusLine(get(server_->port(), "/nope")), "HTTP/1.1 404 Not Found");
  const std::string post =
      roundTrip(server_->port(), "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(statusLine(post), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_NE(post.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_EQ(statusLine(roundTrip(server_->port(), "GET /metrics HTTP/1.1\r\n\r\n")),
            "HTTP/1.1 400 Bad Request");  // no Host
  EXPECT_EQ(statusLine(roundTrip(server_->port(), "GET /metrics HTTP/2.0\r\n\r\n")),
            "HTTP/1.1 505 HTTP Version Not Supported");
  const std::string huge = "GET /metrics HTTP/1.1\r\nHost: x\r\nX: " + std::string(9000, 'a');
  EXPECT_EQ(statusLine(roundTrip(server_->port(), huge)),
            "HTTP/1.1 431 Request Header Fields Too Large");
}

TEST_F(AdminServerTest, SlowRequestTimesOut) {
  AdminOptions options;
  options.readTimeout = 300ms;
  start(fakeProbe(), options);
  int fd = connectTo(server_->port());
  ASSERT_GE(fd, 0);
  sendAll(fd, "GET /metr");
  EXPECT_EQ(statusLine(readAll(fd)), "HTTP/1.1 408 Request Timeout");
}

TEST_F(AdminServerTest, ConnectionsBeyondTheLimitAreClosed) {
  AdminOptions options;
  options.maxConnections = 1;
  start(fakeProbe(), options);
  int first = connectTo(server_->port());
  ASSERT_GE(first, 0);
  sendAll(first, "GET /metrics");  // held open, incomplete
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(get(server_->port(), "/healthz"), "");  // accepted and closed at once
  ::close(first);
  // The admin thread frees the slot a loop turn or two after it sees the close.
  std::string status;
  for (const auto deadline = std::chrono::steady_clock::now() + 5s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
    status = statusLine(get(server_->port(), "/healthz"));
    if (!status.empty()) break;
  }
  EXPECT_EQ(status, "HTTP/1.1 200 OK");
}

TEST_F(AdminServerTest, HealthzNamesAStuckWorker) {
  start(fakeProbe());
  EXPECT_EQ(body(get(server_->port(), "/healthz")), "ok\n");
  now_ += 10'000;
  metrics_.worker(0).heartbeat(now_);  // worker 0 ran; worker 1 has been silent for 10 s
  const std::string response = get(server_->port(), "/healthz");
  EXPECT_EQ(statusLine(response), "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(body(response), "worker 1 has not run for 10000 ms\n");
}

TEST_F(AdminServerTest, ReadyzSharesOneProbeAndCachesItsResult) {
  start(fakeProbe());
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(connectTo(server_->port()));
    ASSERT_GE(clients.back(), 0);
    sendAll(clients.back(), "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  for (int fd : clients) {
    const std::string response = readAll(fd);
    EXPECT_EQ(statusLine(response), "HTTP/1.1 200 OK");
    EXPECT_EQ(body(response), "upstream answers\n");
  }
  EXPECT_EQ(probes_, 1);
  probeOk_ = false;
  now_ += 4'000;  // within readyz_cache (5 s): the cached answer
  EXPECT_EQ(statusLine(get(server_->port(), "/readyz")), "HTTP/1.1 200 OK");
  EXPECT_EQ(probes_, 1);
  now_ += 2'000;  // expired: probed again
  const std::string response = get(server_->port(), "/readyz");
  EXPECT_EQ(statusLine(response), "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(body(response), "connect refused\n");
  EXPECT_EQ(probes_, 2);
}

TEST_F(AdminServerTest, ReadyzWithoutAProbeIsNotReady) {
  start({});
  EXPECT_EQ(statusLine(get(server_->port(), "/readyz")), "HTTP/1.1 503 Service Unavailable");
}

TEST_F(AdminServerTest, StopCancelsAProbeInFlight) {
  start([this](uv_loop_t* loop, ReadinessDone done) -> std::shared_ptr<void> {
    ++probes_;
    auto timer = std::make_shared<Timer>(loop);
    timer->start(60s, [done = std::move(done)] { done(true, "late"); });
    return timer;
  });
  int fd = connectTo(server_->port());
  ASSERT_GE(fd, 0);
  sendAll(fd, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  for (const auto deadline = std::chrono::steady_clock::now() + 5s;
       probes_ == 0 && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(10ms);
  }
  server_->stop();  // returns although the probe would take a minute
  EXPECT_EQ(readAll(fd), "");
  EXPECT_EQ(probes_, 1);
}

TEST(TcpConnectProbe, ReportsARefusedConnection) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  bool called = false;
  bool ok = true;
  std::string detail;
  {
    // A port nothing listens on: bind one, read its number, close it.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);
    auto probe = tcpConnectProbe("127.0.0.1", ntohs(address.sin_port), 2000ms);
    auto run = probe(&loop, [&](bool result, std::string text) {
      called = true;
      ok = result;
      detail = std::move(text);
    });
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
  EXPECT_TRUE(called);
  EXPECT_FALSE(ok);
  EXPECT_NE(detail.find("refused"), std::string::npos) << detail;
}

}  // namespace
}  // namespace popbridge::proxy
