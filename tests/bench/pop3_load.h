#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

// The POP3 load generator of the benchmark harness (tests/bench/run.sh): many concurrent
// sessions on one libuv loop, each checking every RETR against LIST. It only measures; the
// harness decides what the figures mean.
namespace popbridge::bench {

enum class Workload {
  kPoll,  // USER PASS STAT UIDL QUIT
  kRetr,  // USER PASS LIST, RETR each listed message (up to retrMax), QUIT
  kTop,   // USER PASS, TOP 1 topLines, QUIT
};

struct LoadOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  bool tls = false;    // implicit TLS (pop3s)
  std::string caFile;  // verifies the server when TLS is on; empty: no verification
  std::string serverName = "localhost";
  std::string user;  // a single user, or the prefix with users > 0
  int users = 0;     // > 0: session i logs in as user + (i % users)
  std::string password;
  int sessions = 1;
  int concurrency = 1;
  Workload workload = Workload::kPoll;
  int retrMax = 0;           // 0: every listed message
  int topLines = 5;          // kTop: the body lines asked for; the reply must hold exactly these
  long expectMessages = -1;  // >= 0: a session seeing another count fails
  int timeoutSeconds = 900;  // the whole run; unfinished sessions then count as failed
  std::string label = "run";
  // > 0: the pid of the server (popbridge), whose /proc/<pid>/io rchar is read just before each
  // TOP or RETR command is sent and just after its reply ended. Meaningful with one session at
  // a time; the growth is what the server read meanwhile: the upstream's bytes plus the command.
  long ioPid = 0;
};

struct LoadResult {
  int sessions = 0;
  int ok = 0;
  int failed = 0;
  std::uint64_t retrCount = 0;
  std::uint64_t retrBytes = 0;  // octets after un-dot-stuffing, CRLF kept, as LIST counts them
  std::uint64_t sizeMismatches = 0;
  std::uint64_t topCount = 0;
  std::uint64_t topBytes = 0;    // octets of the TOP replies after un-dot-stuffing, CRLF kept
  std::vector<double> topMs;     // each TOP: from sending it to the end of its reply
  std::uint64_t ioCommands = 0;  // TOP/RETR commands with an rchar reading before and after
  std::uint64_t ioBytes = 0;     // the sum of their rchar growths
  std::uint64_t ioFailures = 0;  // readings that failed (unreadable /proc/<pid>/io)
  double wallSeconds = 0;
  std::vector<double> sessionMs;      // successful sessions only, in completion order
  std::vector<std::string> failures;  // one reason per failed session
};

// Runs the sessions on a private loop and returns when all have finished or the timeout hit.
LoadResult runLoad(const LoadOptions& options);

// The rchar field of /proc/<pid>/io (bytes the process read from any descriptor); -1 when it
// cannot be read.
long long readRchar(long pid);

// Counts a RETR body as it streams in: un-dot-stuffs per RFC 1939 (a leading '.' is removed
// from every line but the terminator) and stops at ".CRLF". Keeps state across chunks.
class RetrBodyCounter {
 public:
  // Consumes bytes up to and including the terminator; returns how many were consumed.
  std::size_t consume(std::string_view data);
  bool done() const { return done_; }
  std::uint64_t octets() const { return octets_; }
  void reset() { *this = RetrBodyCounter(); }

 private:
  enum class Dot { kNone, kDot, kDotCr };
  std::uint64_t octets_ = 0;
  bool lineStart_ = true;
  Dot dot_ = Dot::kNone;
  bool done_ = false;
};

// Writes `count` messages of exactly `bytes` bytes (CRLF line ends, some body lines starting
// with '.') into the Maildir `dir` (cur/new/tmp are created), named with S= and W= so Dovecot
// need not read them to list them. Files are owned by uid/gid when those are >= 0. Returns an
// error text, empty on success.
std::string seedMaildir(const std::string& dir, int count, std::size_t bytes, long uid, long gid,
                        int firstIndex);

// The bytes of message `index` of the given size (deterministic).
std::string benchMessage(int index, std::size_t bytes);

}  // namespace popbridge::bench
