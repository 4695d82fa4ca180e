#include "tests/support/haproxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

#include "tests/support/test_clients.h"

namespace popbridge::test {

using namespace std::chrono_literals;

bool portAcceptsFromOtherLoopback(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in source{};
  source.sin_family = AF_INET;
  source.sin_addr.s_addr = htonl(0x7F000002);
  ::bind(fd, reinterpret_cast<sockaddr*>(&source), sizeof source);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return up;
}

namespace {

std::vector<HaproxyBackend> backendsOf(
    const std::vector<std::pair<std::uint16_t, std::string>>& routes) {
  std::vector<HaproxyBackend> backends;
  for (const auto& [port, options] : routes) {
    backends.push_back({{"127.0.0.1:" + std::to_string(port) + " " + options}, ""});
  }
  return backends;
}

}  // namespace

Haproxy::Haproxy(const std::string& dir,
                 const std::vector<std::pair<std::uint16_t, std::string>>& routes)
    : Haproxy(dir, backendsOf(routes)) {}

Haproxy::Haproxy(const std::string& dir, const std::vector<HaproxyBackend>& backends,
                 const std::string& defaults) {
  std::string config =
      "global\n  maxconn 100\n"
      "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n"
      // Without it a health check's whole time is bounded by its `inter`, which a loaded test
      // machine can exceed while the replica is fine; a killed replica refuses at once anyway.
      "  timeout server 60s\n  timeout check 5s\n" +
      defaults;
  // A port free when picked may be taken by another test's process before haproxy binds it:
  // then it starts again on other ports.
  for (int attempt = 1;; ++attempt) {
    std::string text = config;
    ports_.clear();
    for (std::size_t i = 0; i < backends.size(); ++i) {
      const std::uint16_t port = freeLoopbackPort();
      ports_.push_back(port);
      const std::string name = std::to_string(i);
      text += "frontend f" + name + "\n  bind 127.0.0.1:" + std::to_string(port) +
              "\n  default_backend b" + name + "\nbackend b" + name + "\n" + backends[i].lines;
      for (std::size_t s = 0; s < backends[i].servers.size(); ++s) {
        text += "\n  server s" + std::to_string(s) + " " + backends[i].servers[s];
      }
      text += "\n";
    }
    if (start(dir, text)) return;
    if (attempt == 5 || log().find("Address already in use") == std::string::npos) {
      throw std::runtime_error("haproxy exited: " + log());
    }
  }
}

bool Haproxy::start(const std::string& dir, const std::string& config) {
  const std::string path = dir + "/haproxy.cfg";
  std::ofstream(path) << config;
  logPath_ = dir + "/haproxy.log";
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    FILE* log = std::fopen(logPath_.c_str(), "w");
    if (log != nullptr) {
      ::dup2(fileno(log), 1);
      ::dup2(fileno(log), 2);
    }
    ::execlp("haproxy", "haproxy", "-db", "-f", path.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 200; ++i) {
    bool all = true;
    for (std::uint16_t port : ports_) all = all && portAcceptsFromOtherLoopback(port);
    if (all) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(50ms);
  }
  throw std::runtime_error("haproxy did not listen: " + log());
}

Haproxy::~Haproxy() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string Haproxy::log() const {
  std::ifstream in(logPath_);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace popbridge::test
