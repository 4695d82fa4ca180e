#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/dovecot_fixture.h"

namespace popbridge::test {

// The receiving end of $NOTIFY_SOCKET, as a service manager (systemd Type=notify) holds it: an
// AF_UNIX datagram socket that popbridge sends "READY=1" and "STOPPING=1" to.
class NotifySocket {
 public:
  // `name`: a file system path, or '@' and a name in the abstract namespace. Throws
  // std::runtime_error when it cannot be bound.
  explicit NotifySocket(std::string name);
  // Closes the socket and removes its path.
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  // What to put in NOTIFY_SOCKET.
  const std::string& name() const { return name_; }
  // The next datagram, or nullopt when none arrives within `timeout`.
  std::optional<std::string> receive(std::chrono::milliseconds timeout);

 private:
  std::string name_;
  int fd_ = -1;
};

// Whether a notification datagram holds the line `assignment` (e.g. "READY=1").
bool hasAssignment(std::string_view datagram, std::string_view assignment);

// Starts the popbridge binary (PBTEST_POPBRIDGE_BINARY, else this build's) with `--config
// configPath`, stdout and stderr to logPath, and `environment` (NAME=value entries) replacing
// same-named variables of this process. The child gets SIGTERM when the calling thread ends.
// With blockStopSignals the child starts with SIGINT and SIGTERM blocked, as if one had
// arrived before popbridge could install its handlers.
pid_t spawnPopbridge(const std::string& configPath, const std::string& logPath,
                     const std::vector<std::string>& environment, bool blockStopSignals = false);

// The [upstream] lines that turn popbridge's fast paths off, which PopbridgeProcess adds when
// POPBRIDGE_TEST_FAST_PATHS=off (tests/README.md): each of pool_idle = "0s", snapshot_cache =
// false and read_ahead = false whose key is in `knownKeys` (the build's config::kUpstreamKeys: an
// older popbridge rejects unknown keys) and that `upstream`, the test's own [upstream] lines,
// does not assign (a test of the pool sets pool_idle and keeps it).
std::string fastPathsOffLines(std::string_view upstream,
                              std::span<const std::string_view> knownKeys);

// The real popbridge binary, started with a generated TOML config in front of
// a DovecotFixture, as an admin would run it. Its log goes to a file that
// tests can read (and that the secrets test scans). The constructor returns once popbridge has
// sent READY=1 to the NOTIFY_SOCKET it was given (after every listener accepts connections and
// its signal handlers exist), never merely because a port connects; it throws with the log
// when popbridge exits first or says nothing within 15 s.
class PopbridgeProcess {
 public:
  struct Listener {
    std::string host = "127.0.0.1";  // "::1" for an IPv6 listener
    std::string tls = "none";        // none | starttls | implicit
    bool allowPlaintextAuth = true;
    std::string minTlsVersion = "1.2";
    std::uint16_t port = 0;  // 0: a free one
    std::string extra;       // more lines for this [[listener]], e.g. ciphers = "..."
    // For tls != "none": empty means the fixture's server certificate and key.
    std::string certificate;
    std::string privateKey;
  };
  struct Options {
    std::vector<Listener> listeners{Listener{}};
    std::string upstreamTls = "none";  // none | starttls | implicit
    std::string serverName = "localhost";
    std::string caFile;  // empty: the fixture's test CA; "system": the system bundle
    bool verifyCertificate = true;
    std::uint16_t upstreamPort = 0;  // 0: the fixture's port for upstreamTls
    std::string onDelete = "flag";
    // Extra lines for [server]. Unless they set shutdown_timeout, it is "2s": a test that stops
    // popbridge with a logged-in client open would otherwise wait the default 10 s drain.
    std::string server;
    std::string upstream;  // extra lines for [upstream]
    std::string mailbox;   // extra lines for [mailbox]
    std::string extra;     // appended verbatim (e.g. [[account]] tables)
    std::string logLevel = "debug";
    // NOTIFY_SOCKET for popbridge: empty for a socket file in the process's directory, or '@'
    // and an abstract name.
    std::string notifySocket;
  };

  PopbridgeProcess(const DovecotFixture& dovecot, Options options);
  ~PopbridgeProcess();
  PopbridgeProcess(const PopbridgeProcess&) = delete;
  PopbridgeProcess& operator=(const PopbridgeProcess&) = delete;

  std::uint16_t port(std::size_t listener = 0) const { return ports_.at(listener); }
  std::string log() const;
  const std::string& configPath() const { return configPath_; }
  pid_t pid() const { return pid_; }
  // SIGTERM and wait; returns the exit status (or -1 when killed).
  int stop();
  // Sends `signum` (SIGHUP, SIGTERM...) and returns at once.
  void signal(int signum) const;
  // Waits for the process to exit on its own, up to `timeout` (then it is killed); returns the
  // exit status, or -1 when it was killed or died by a signal.
  int waitForExit(std::chrono::milliseconds timeout);
  // The datagrams popbridge sent to NOTIFY_SOCKET: READY=1 once started, and after stop() also
  // what it sent while shutting down.
  const std::vector<std::string>& notifications() const { return notifications_; }

  // Passwords that must never appear in the log; the fixture users' are
  // always included. The destructor fails the running test if one does.
  void addSecret(std::string secret) { secrets_.push_back(std::move(secret)); }

 private:
  // Spawns popbridge on the written config and waits for READY=1; false when it exited first.
  // Throws when it neither exits nor gets ready in time.
  bool start(const std::string& config);

  std::string dir_;
  std::string configPath_;
  std::string logPath_;
  std::vector<std::uint16_t> ports_;
  std::vector<std::string> secrets_;
  std::unique_ptr<NotifySocket> notify_;
  std::vector<std::string> notifications_;
  pid_t pid_ = -1;
};

// ASan keeps freed memory in quarantine and maps shadow memory, so bounds on
// RSS only mean something in the normal build; the sanitizer build still
// runs every test for what it checks besides memory. A popbridge from another build
// (PBTEST_POPBRIDGE_BINARY: CI's ASan and TSan stages) is taken to be instrumented.
inline bool rssBoundsApply() {
  return !POPBRIDGE_SANITIZED && std::getenv("PBTEST_POPBRIDGE_BINARY") == nullptr;
}

// Reads RSS of a process in KiB from /proc (VmRSS and VmHWM).
struct MemoryUsage {
  long rssKiB = 0;
  long peakKiB = 0;
};
MemoryUsage memoryOf(pid_t pid);
// User plus system CPU time a process has used so far.
double cpuSecondsOf(pid_t pid);

}  // namespace popbridge::test
