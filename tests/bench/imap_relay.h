#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// The counting TCP relay of the benchmark harness (`pop3load relay`): it sits between a POP3
// proxy (popbridge, or Dovecot's imapc) and the IMAP server and counts what the proxy sends and
// receives, the same way for both, so W6 can report upstream commands and bytes per poll.
namespace popbridge::bench {

// Counts the IMAP commands in a client-to-server byte stream: a line that does not continue a
// command (after a literal) and starts with a tag, a space and a command word. Literal data
// ({n} and {n+}) is skipped, so message text that looks like a command is not counted; the
// answers to AUTHENTICATE challenges and IDLE's DONE have no tag and no space, and are not
// commands either.
class ImapCommandCounter {
 public:
  void consume(std::string_view data);
  std::uint64_t commands() const { return commands_; }
  // Per command name in upper case ("LOGIN", "SELECT", "UID FETCH").
  const std::map<std::string, std::uint64_t>& byName() const { return byName_; }
  // The names of the commands counted since the last call, in order.
  std::vector<std::string> takeNames() { return std::exchange(new_, {}); }

 private:
  void endLine();

  std::uint64_t commands_ = 0;
  std::map<std::string, std::uint64_t> byName_;
  std::vector<std::string> new_;
  std::uint64_t literal_ = 0;  // literal octets still to skip
  bool continuation_ = false;  // the current line continues a command after a literal
  std::string head_;           // the first bytes of the current line (tag and command)
  std::string tail_;           // its last bytes (a literal announcement)
};

struct RelayOptions {
  std::uint16_t listenPort = 0;  // on 127.0.0.1
  std::string targetHost = "127.0.0.1";
  std::uint16_t targetPort = 0;
  // Rewritten (atomically, by rename) whenever the figures changed, at most every 100 ms:
  // "connections=N commands=N c2s_bytes=N s2c_bytes=N cmd.NAME=N ...".
  std::string statsFile;
};

// Runs until SIGTERM or SIGINT; returns the exit status (non-zero when it cannot listen).
int runRelay(const RelayOptions& options);

}  // namespace popbridge::bench
