#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/uidl/match_facts.h"

namespace popbridge::protocol::uidl {

// The file `popbridge uidl import ACCOUNT FILE` reads: what an old POP3 server (UW ipop3d,
// Courier, Cyrus, Dovecot) said about each message, so that devices moved to popbridge keep the
// UIDLs they know. Matching needs the header, so each message carries its UIDL, its LIST size
// and its `TOP n 0` block, exactly as the server sent them:
//
//   popbridge-uidl-import 1
//   # comments and blank lines are allowed between messages
//   message <uidl> <size>
//   <the TOP n 0 reply's lines, still dot-stuffed, without the +OK line>
//   .
//   message ...
//
// Lines end in LF or CRLF. A capture is a loop of `UIDL n`, `LIST n` and `TOP n 0` over the
// old server (any POP3 client can write it). A bare UIDL listing ("n uidl" lines, even with
// sizes) is refused: with no header the match would rest on the size alone, and that is a guess.
class ImportParser {
 public:
  struct Limits {
    std::size_t maxLineLength = 8192;  // any line, line end included
    std::size_t maxEntries = 1'000'000;
    HeaderLimits header;  // per message
  };
  struct Entry {
    std::string uidl;
    MatchFacts facts;      // size = the LIST size; headerLines from the TOP block
    std::size_t line = 0;  // where its "message" line is
  };
  enum class Status { NeedMore, Error };

  static constexpr std::string_view kMagic = "popbridge-uidl-import 1";

  ImportParser();
  explicit ImportParser(Limits limits);

  // Appends each complete message to `out`. Error sticks; error() then says "line N: ...".
  Status feed(std::string_view data, std::vector<Entry>& out);
  // End of the file: Error when it stops inside a message or before the first line.
  Status finish(std::vector<Entry>& out);

  const std::string& error() const { return error_; }

 private:
  Status line(std::string_view text, std::vector<Entry>& out);
  Status fail(std::size_t lineNumber, const std::string& message);

  enum class State { Magic, Between, Header, Body };
  Limits limits_;
  State state_ = State::Magic;
  Status status_ = Status::NeedMore;
  std::string error_;
  std::string line_;
  std::size_t lineNumber_ = 0;
  Entry entry_;
  std::optional<HeaderFactsParser> header_;
  std::size_t entries_ = 0;
  std::unordered_map<std::string, std::size_t> seen_;  // uidl -> line
};

// The whole file at once.
std::optional<std::vector<ImportParser::Entry>> parseImportFile(std::string_view file,
                                                                std::string& error);

}  // namespace popbridge::protocol::uidl
