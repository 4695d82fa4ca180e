#pragma once

// Shared by the Stream tests: a loopback listener, a Peer that records what a
// Stream reports, and a fixture that runs a libuv loop in the test thread.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <string>

#include "proxy/connector.h"
#include "proxy/stream.h"
#include "proxy/uv_handle.h"

namespace popbridge::proxy::testing_support {

using namespace std::chrono_literals;

class Listener {
 public:
  Listener(uv_loop_t* loop, std::function<void(UvHandle<uv_tcp_t>)> onAccept,
           const char* ip = "127.0.0.1")
      : loop_(loop), onAccept_(std::move(onAccept)), server_(UvHandle<uv_tcp_t>::allocate()) {
    uv_tcp_init(loop, server_.get());
    server_->data = this;
    sockaddr_storage addr{};
    if (std::string(ip).find(':') != std::string::npos) {
      uv_ip6_addr(ip, 0, reinterpret_cast<sockaddr_in6*>(&addr));
    } else {
      uv_ip4_addr(ip, 0, reinterpret_cast<sockaddr_in*>(&addr));
    }
    status_ = uv_tcp_bind(server_.get(), reinterpret_cast<sockaddr*>(&addr), 0);
    if (status_ == 0) status_ = uv_listen(server_.stream(), 128, &Listener::onConnection);
    int len = sizeof addr;
    uv_tcp_getsockname(server_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }
  int status() const { return status_; }
  std::uint16_t port() const { return port_; }

 private:
  static void onConnection(uv_stream_t* server, int status) {
    auto* self = static_cast<Listener*>(server->data);
    if (self == nullptr || status < 0) return;
    auto client = UvHandle<uv_tcp_t>::allocate();
    uv_tcp_init(self->loop_, client.get());
    if (uv_accept(server, client.stream()) == 0) self->onAccept_(std::move(client));
  }

  uv_loop_t* loop_;
  std::function<void(UvHandle<uv_tcp_t>)> onAccept_;
  UvHandle<uv_tcp_t> server_;
  int status_ = 0;
  std::uint16_t port_ = 0;
};

// Records what a Stream reports; hooks let a test react inside the callbacks.
struct Peer {
  std::unique_ptr<Stream> stream;
  std::string received;
  int closeCount = 0;
  std::string reason;
  int drains = 0;
  int dataCalls = 0;
  int tlsReadyCount = 0;
  std::function<void(Peer&, std::string_view)> onData;
  std::function<void(Peer&)> onTlsReady;
  std::function<void(Peer&)> onDrain;
  std::function<void(Peer&)> onClose;

  void attach(uv_loop_t* loop, UvHandle<uv_tcp_t> tcp, Stream::Options options = {}) {
    Stream::Callbacks callbacks;
    callbacks.onData = [this](std::string_view data) {
      ++dataCalls;
      received.append(data);
      if (onData) onData(*this, data);
    };
    callbacks.onDrain = [this] {
      ++drains;
      if (onDrain) onDrain(*this);
    };
    callbacks.onTlsReady = [this] {
      ++tlsReadyCount;
      if (onTlsReady) onTlsReady(*this);
    };
    callbacks.onClose = [this](std::string_view why) {
      ++closeCount;
      reason = why;
      if (onClose) onClose(*this);
    };
    stream = std::make_unique<Stream>(loop, std::move(tcp), options, std::move(callbacks));
  }
  bool closed() const { return closeCount > 0; }
};

class StreamHarness : public ::testing::Test {
 protected:
  void SetUp() override {
    // As the product does: a write to a reset socket must fail, not kill us.
    signal(SIGPIPE, SIG_IGN);
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    tick_ = UvHandle<uv_timer_t>::allocate();
    uv_timer_init(&loop_, tick_.get());
  }

  void TearDown() override {
    tick_.reset();
    // Let every close callback run; anything still alive afterwards leaked.
    for (int i = 0; i < 2000 && uv_loop_alive(&loop_) != 0; ++i) {
      uv_run(&loop_, UV_RUN_NOWAIT);
      if (uv_loop_alive(&loop_) != 0) usleep(1000);
    }
    const int rc = uv_loop_close(&loop_);
    EXPECT_EQ(rc, 0) << "handles or requests left on the loop";
    if (rc != 0) {
      uv_walk(
          &loop_,
          [](uv_handle_t* h, void*) {
            if (!uv_is_closing(h)) uv_close(h, nullptr);
          },
          nullptr);
      uv_run(&loop_, UV_RUN_DEFAULT);
      uv_loop_close(&loop_);
    }
  }

  // Runs the loop until `done` or the timeout; returns done().
  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
    uv_timer_start(
        tick_.get(), [](uv_timer_t*) {}, 5, 5);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    // At least one turn: a thread preempted past the deadline still lets the loop see what is
    // waiting for it.
    bool turned = false;
    while (!done() && (!turned || std::chrono::steady_clock::now() < deadline)) {
      uv_run(&loop_, UV_RUN_ONCE);
      turned = true;
    }
    uv_timer_stop(tick_.get());
    return done();
  }
  void runFor(std::chrono::milliseconds duration) {
    runUntil([] { return false; }, duration);
  }

  struct Pair {
    UvHandle<uv_tcp_t> client;
    UvHandle<uv_tcp_t> server;
  };
  Pair connectPair() {
    Pair pair;
    Listener listener(&loop_, [&](UvHandle<uv_tcp_t> tcp) { pair.server = std::move(tcp); });
    EXPECT_EQ(listener.status(), 0);
    Connector connector(&loop_);
    std::string error;
    connector.connect("127.0.0.1", listener.port(), 5s,
                      [&](UvHandle<uv_tcp_t> tcp, std::string err) {
                        pair.client = std::move(tcp);
                        error = std::move(err);
                      });
    EXPECT_TRUE(runUntil([&] { return (pair.client || !error.empty()) && pair.server; }));
    EXPECT_EQ(error, "");
    return pair;
  }
  void attachPair(Peer& client, Peer& server, Stream::Options clientOptions = {},
                  Stream::Options serverOptions = {}) {
    Pair pair = connectPair();
    client.attach(&loop_, std::move(pair.client), clientOptions);
    server.attach(&loop_, std::move(pair.server), serverOptions);
  }

  uv_loop_t loop_{};
  UvHandle<uv_timer_t> tick_;
};

inline std::string pattern(std::size_t size) {
  std::string out(size, '\0');
  std::uint32_t x = 2463534242u;
  for (auto& c : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return out;
}

}  // namespace popbridge::proxy::testing_support
