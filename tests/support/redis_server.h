#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/test_tls.h"

namespace popbridge::test {

struct RedisServerOptions {
  std::string password;  // requirepass; empty: none
  bool tls = false;      // TLS only (port 0 for plaintext), certificates of a test CA
};

// A private redis-server on loopback for the shared-state tests: no persistence, its own
// directory, killed with the test. start() returns once it answers PING.
class RedisServer {
 public:
  using Options = RedisServerOptions;
  explicit RedisServer(Options options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Whether this machine's redis-server was built with TLS (Debian's is).
  static bool supportsTls();

  std::uint16_t port() const { return port_; }
  // What [state] redis takes: redis://127.0.0.1:PORT, or rediss://localhost:PORT.
  std::string url() const;
  const std::string& caFile() const { return pki_.caCert; }
  const std::string& dir() const { return dir_; }

  // SIGKILL: an outage as popbridge sees it (connections reset, then refused).
  void kill();
  // Starts again on the same port (empty: a fresh instance without the old keys).
  void start();
  bool running() const { return pid_ > 0; }

  // One command over a fresh connection; the reply as text: a status or error line without
  // its prefix ("OK", "ERR ..."), an integer, a bulk string, "(nil)", or an array's elements
  // one per line.
  std::string command(const std::vector<std::string>& args) const;

 private:
  Options options_;
  std::string dir_;
  TestPki pki_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace popbridge::test
