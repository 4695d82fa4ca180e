#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace popbridge::protocol::uidl {

// The client side of `popbridge uidl capture` (sans-I/O): once the caller has logged in to the
// old POP3 server, it sends UIDL, then LIST, then TOP n 0 for every message, one command at a
// time, and writes the replies as an import file (import_file.h). The TOP blocks are copied as
// the server sent them, dot-stuffing included, so the file records exactly what the server said.
class Capture {
 public:
  struct Limits {
    std::size_t maxLineLength = 8192;  // any reply line, line end included
    std::size_t maxMessages = 1'000'000;
  };
  enum class Status { NeedMore, Done, Error };

  Capture();
  explicit Capture(Limits limits);

  // The next command to send ("UIDL\r\n" first), or empty while a reply is awaited or after the
  // end. Each command is returned once.
  std::string takeCommand();
  // Server bytes. Import-file text is appended to `out` as it is known. Done and Error stick.
  Status feed(std::string_view data, std::string& out);

  const std::string& error() const { return error_; }
  std::size_t messages() const { return uidls_.size(); }

 private:
  enum class Phase { Uidl, List, Top, Done };
  Status line(std::string_view text, std::string& out);
  Status fail(std::string message);
  void nextTop(std::string& out);

  Limits limits_;
  Phase phase_ = Phase::Uidl;
  Status status_ = Status::NeedMore;
  bool statusLineSeen_ = false;
  std::string command_ = "UIDL\r\n";
  std::string line_;
  std::string error_;
  std::vector<std::uint32_t> numbers_;  // message numbers, in the UIDL listing's order
  std::vector<std::string> uidls_;
  std::vector<std::uint64_t> sizes_;  // indexed like numbers_
  std::vector<bool> sized_;
  std::size_t top_ = 0;  // index into numbers_ of the TOP in progress
};

}  // namespace popbridge::protocol::uidl
