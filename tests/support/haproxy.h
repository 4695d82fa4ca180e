#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace popbridge::test {

// Whether 127.0.0.1:port accepts a connection from 127.0.0.2, so that the probe's session
// (haproxy passes it on) is told apart from the test's clients and from haproxy's own 127.0.0.1
// in popbridge's log.
bool portAcceptsFromOtherLoopback(std::uint16_t port);

// One haproxy backend behind a frontend of its own on a free loopback port.
struct HaproxyBackend {
  // Each entry: a "server" line's address and options, e.g. "127.0.0.1:1110 send-proxy-v2".
  std::vector<std::string> servers;
  // More lines for the backend, e.g. "balance roundrobin\noption httpchk GET /readyz\n".
  std::string lines;
};

// Debian's haproxy -db (foreground) in TCP mode; the constructor returns once every frontend
// accepts connections and throws with haproxy's log when it exits or does not listen.
class Haproxy {
 public:
  // One frontend per route, each to the one server 127.0.0.1:<first> with the "server" line's
  // options <second> (e.g. "send-proxy-v2").
  Haproxy(const std::string& dir, const std::vector<std::pair<std::uint16_t, std::string>>& routes);
  // One frontend per backend; `defaults`: more lines for the defaults section.
  Haproxy(const std::string& dir, const std::vector<HaproxyBackend>& backends,
          const std::string& defaults = "");
  ~Haproxy();
  Haproxy(const Haproxy&) = delete;
  Haproxy& operator=(const Haproxy&) = delete;

  // The frontend port of route or backend `index`.
  std::uint16_t port(std::size_t index) const { return ports_.at(index); }
  std::string log() const;

 private:
  // Runs haproxy on `config` until every frontend accepts; false when it exited first.
  bool start(const std::string& dir, const std::string& config);

  std::vector<std::uint16_t> ports_;
  std::string logPath_;
  pid_t pid_ = -1;
};

}  // namespace popbridge::test
