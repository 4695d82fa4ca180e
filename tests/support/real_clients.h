#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/client_runner.h"

// Drivers for real POP3 clients from Debian (fetchmail, getmail6, mpop, curl, Python's poplib).
// Each run delivers into a fresh maildir or directory of its own, so a test sees exactly what one
// run delivered; the client's UIDL memory lives on between runs, as it would for a user.
namespace popbridge::test {

enum class Transport { kPlain, kStls, kImplicit };

std::string transportName(Transport transport);

struct Account {
  std::uint16_t port = 0;
  Transport transport = Transport::kPlain;
  std::string caFile;
  std::string user;
  std::string password;
};

enum class Mode { kKeep, kDelete };

// What one run of a client is asked to do.
struct FetchRun {
  Mode mode = Mode::kKeep;
  // Messages larger than this (by LIST) are skipped: neither downloaded nor deleted. 0: no limit.
  std::size_t sizeLimit = 0;
};

struct Delivered {
  std::string bytes;
  std::string file;
  // The size the client saw in LIST, when the driver can report it (curl, poplib); else -1.
  long long listedSize = -1;
};

// How a client legitimately changes a message on its way to disk.
struct DeliveryRules {
  bool lfLineEnds = false;                // writes LF where the wire had CRLF
  std::vector<std::string> addedHeaders;  // fields the client puts on top (names, any case)
  // A client bug: lines longer than this arrive mangled (0: none). Such a message must still
  // arrive exactly once, intact up to its first overlong line.
  std::size_t mangledLinesOver = 0;
};

class MailClient {
 public:
  explicit MailClient(const std::string& name) : name_(name), dir_("popbridge-" + name) {}
  virtual ~MailClient() = default;
  const std::string& name() const { return name_; }
  // Runs the client once: it fetches what it has not seen before (by its own UIDL memory) and, in
  // kDelete mode, deletes what it fetched. Returns what it delivered in this run. Throws with the
  // client's output when it fails.
  virtual std::vector<Delivered> fetch(const Account& account, const FetchRun& run) = 0;
  virtual DeliveryRules rules() const = 0;
  // Output of the last run, for diagnostics.
  const std::string& lastOutput() const { return lastOutput_; }

 protected:
  // A fresh maildir per run, so each run's deliveries are seen on their own.
  std::string newRunDir();
  CommandResult check(CommandResult result, std::initializer_list<int> okCodes);

  std::string name_;
  TempDir dir_;
  int runs_ = 0;
  std::string lastOutput_;
};

// name: fetchmail, getmail, mpop, curl or poplib; anything else throws std::invalid_argument.
std::unique_ptr<MailClient> makeClient(const std::string& name);

}  // namespace popbridge::test
