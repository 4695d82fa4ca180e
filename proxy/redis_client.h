#pragma once

// clang-format off
#include "proxy/boringssl_check.h"  // first: stops the build on OpenSSL 3 headers
// clang-format on

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/connector.h"
#include "proxy/stream.h"
#include "proxy/tls_context.h"
#include "proxy/uv_handle.h"

struct redisReader;

namespace popbridge::proxy {

// One RESP value as Redis answered it.
struct RedisValue {
  enum class Type : std::uint8_t { Nil, Status, Error, Integer, String, Array };
  Type type = Type::Nil;
  std::string text;  // Status, Error, String
  long long integer = 0;
  std::vector<RedisValue> elements;  // Array

  bool isError() const { return type == Type::Error; }
};

// A command's outcome: `value` when Redis answered (which may be a RESP error), else `problem`
// says why there is no answer (unreachable, timed out, connection lost, AUTH refused).
struct RedisReply {
  bool answered = false;
  RedisValue value;
  std::string problem;
};

struct RedisEndpoint {
  std::string host;
  std::uint16_t port = 6379;
  bool tls = false;      // rediss://
  std::string user;      // ACL user for AUTH; empty: the default user
  std::string password;  // empty: no AUTH
  unsigned database = 0;
};

// A Redis connection on one libuv loop, speaking RESP through hiredis' reader and formatter
// over popbridge's own Stream (so TLS is BoringSSL's, and nothing blocks the loop).
//
// hiredis' own libuv adapter is not used: Debian 12's hiredis 0.14 has no TLS at all, its
// adapter owns the socket and speaks plaintext only, and a TLS-capable hiredis would bring
// OpenSSL, which popbridge never links.
//
// Commands are pipelined; replies come back in order. The connection is made on the first
// command and after a failure again on the first command once `retryAfter` has passed: until
// then commands fail at once ("unavailable"), so a Redis that is down costs a session nothing
// but the failure, never a wait. Every command has `timeout`: an answer that takes longer drops
// the connection and fails everything it carried.
//
// Callbacks are never invoked from inside command(); they run on the loop and may call
// command() again or destroy the client.
class RedisClient {
 public:
  struct Options {
    RedisEndpoint endpoint;
    const TlsClientContext* tls = nullptr;  // required for endpoint.tls
    std::chrono::milliseconds timeout{2000};
    std::chrono::milliseconds retryAfter{1000};
    std::size_t maxPending = 10000;        // commands queued or awaiting a reply
    std::size_t maxReplyBytes = 64 << 20;  // one reply larger than this breaks the connection
  };
  using Callback = std::function<void(RedisReply)>;
  // Told of every loss of the connection (and of each failed attempt): for a log line and a
  // metric. `problem` never contains the password.
  using ProblemHandler = std::function<void(std::string_view problem)>;

  RedisClient(uv_loop_t* loop, Options options, ProblemHandler onProblem = {});
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  void command(std::vector<std::string> args, Callback callback);
  // For the end of the loop: what was written is flushed, Redis is told QUIT, and the
  // connection closes; commands after this fail.
  void shutdown();
  bool connected() const { return state_ == State::Ready; }

  // The RESP encoding of a command (hiredis' formatter).
  static std::string format(const std::vector<std::string>& args);

 private:
  enum class State : std::uint8_t { Down, Connecting, Ready, Closed };
  struct Pending {
    Callback callback;
    std::chrono::steady_clock::time_point deadline;
    bool internal = false;  // AUTH or SELECT: a refusal fails the connection
  };
  struct ReaderDeleter {
    void operator()(redisReader* reader) const noexcept;
  };

  void connect();
  void onConnected(UvHandle<uv_tcp_t> tcp, std::string error);
  void onData(std::string_view data);
  void fail(std::string problem);
  void failLater(Callback callback, std::string problem);
  void armTimer();
  void onTimer();
  std::string target() const;

  uv_loop_t* loop_;
  Options options_;
  ProblemHandler onProblem_;
  State state_ = State::Down;
  std::chrono::steady_clock::time_point retryAt_{};
  std::string lastProblem_;
  std::unique_ptr<Connector> connector_;
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<redisReader, ReaderDeleter> reader_;
  std::size_t unansweredBytes_ = 0;  // fed to the reader since its last complete reply
  std::deque<Pending> pending_;      // in the order written (or to be written)
  std::string queued_;               // written once connected
  std::vector<std::pair<Callback, std::string>> deferred_;
  Timer timer_;
  Timer deferTimer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace popbridge::proxy
