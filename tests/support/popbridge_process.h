#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/dovecot_fixture.h"

namespace popbridge::test {

// The real popbridge binary, started with a generated TOML config in front of
// a DovecotFixture, as an admin would run it. Its log goes to a file that
// tests can read (and that the secrets test scans).
class PopbridgeProcess {
 public:
  struct Listener {
    std::string host = "127.0.0.1";  // "::1" for an IPv6 listener
    std::string tls = "none";        // none | starttls | implicit
    bool allowPlaintextAuth = true;
    std::string minTlsVersion = "1.2";
    std::uint16_t port = 0;  // 0: a free one
  };
  struct Options {
    std::vector<Listener> listeners{Listener{}};
    std::string upstreamTls = "none";  // none | starttls | implicit
    std::string serverName = "localhost";
    std::string caFile;  // empty: the fixture's test CA; "system": the system bundle
    bool verifyCertificate = true;
    std::uint16_t upstreamPort = 0;  // 0: the fixture's port for upstreamTls
    std::string onDelete = "flag";
    std::string server;    // extra lines for [server]
    std::string upstream;  // extra lines for [upstream]
    std::string mailbox;   // extra lines for [mailbox]
    std::string extra;     // appended verbatim (e.g. [[account]] tables)
    std::string logLevel = "debug";
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

  // Passwords that must never appear in the log; the fixture users' are
  // always included. The destructor fails the running test if one does.
  void addSecret(std::string secret) { secrets_.push_back(std::move(secret)); }

 private:
  std::string dir_;
  std::string configPath_;
  std::string logPath_;
  std::vector<std::uint16_t> ports_;
  std::vector<std::string> secrets_;
  pid_t pid_ = -1;
};

// ASan keeps freed memory in quarantine and maps shadow memory, so bounds on
// RSS only mean something in the normal build; the sanitizer build still
// runs every test for what it checks besides memory.
inline constexpr bool kRssBoundsApply = !POPBRIDGE_SANITIZED;

// Reads RSS of a process in KiB from /proc (VmRSS and VmHWM).
struct MemoryUsage {
  long rssKiB = 0;
  long peakKiB = 0;
};
MemoryUsage memoryOf(pid_t pid);
// User plus system CPU time a process has used so far.
double cpuSecondsOf(pid_t pid);

}  // namespace popbridge::test
