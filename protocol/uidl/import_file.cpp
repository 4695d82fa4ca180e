#include "protocol/uidl/import_file.h"

#include "protocol/text.h"
#include "protocol/uidl/stable_id.h"

namespace popbridge::protocol::uidl {

ImportParser::ImportParser() : ImportParser(Limits{}) {}
ImportParser::ImportParser(Limits limits) : limits_(limits) {}

ImportParser::Status ImportParser::fail(std::size_t lineNumber, const std::string& message) {
  error_ = "line " + std::to_string(lineNumber) + ": " + message;
  status_ = Status::Error;
  return status_;
}

ImportParser::Status ImportParser::line(std::string_view text, std::vector<Entry>& out) {
  switch (state_) {
    case State::Magic:
      if (text != kMagic) {
        return fail(lineNumber_, "expected \"" + std::string(kMagic) + "\", found \"" +
                                     loggableText(text, 60) + "\"");
      }
      state_ = State::Between;
      return status_;

    case State::Between: {
      if (text.empty() || text[0] == '#') return status_;
      constexpr std::string_view kMessage = "message ";
      if (text.substr(0, kMessage.size()) != kMessage) {
        if (!text.empty() && isAsciiDigit(text[0])) {
          return fail(lineNumber_,
                      "a bare UIDL listing (\"n uidl\") cannot be imported: without each "
                      "message's header the match would rest on its size alone; capture "
                      "\"message <uidl> <size>\" and the TOP n 0 block for each message");
        }
        return fail(lineNumber_,
                    "expected \"message <uidl> <size>\", found \"" + loggableText(text, 60) + "\"");
      }
      std::string_view rest = text.substr(kMessage.size());
      const std::size_t space = rest.find(' ');
      if (space == std::string_view::npos) {
        return fail(lineNumber_, "expected \"message <uidl> <size>\": the size is missing");
      }
      const std::string_view uidl = rest.substr(0, space);
      const std::string_view size = rest.substr(space + 1);
      if (!isValidUidl(uidl)) {
        return fail(lineNumber_, "\"" + loggableText(uidl, 80) +
                                     "\" is not a UIDL (RFC 1939: 1-70 characters 0x21-0x7E)");
      }
      const auto octets = parseDecimal(size);
      if (!octets) {
        return fail(lineNumber_,
                    "size \"" + loggableText(size, 30) + "\" is not a decimal number of octets");
      }
      if (entries_ >= limits_.maxEntries) {
        return fail(lineNumber_, "more than " + std::to_string(limits_.maxEntries) + " messages");
      }
      const auto [it, inserted] = seen_.emplace(std::string(uidl), lineNumber_);
      if (!inserted) {
        return fail(lineNumber_, "UIDL \"" + std::string(uidl) + "\" was already given on line " +
                                     std::to_string(it->second));
      }
      entry_ = Entry{};
      entry_.uidl = std::string(uidl);
      entry_.facts.size = *octets;
      entry_.line = lineNumber_;
      header_.emplace(limits_.header);
      state_ = State::Header;
      return status_;
    }

    case State::Header:
    case State::Body: {
      if (text == ".") {
        if (state_ == State::Header && header_->finish() == HeaderFactsParser::Status::Error) {
          return fail(entry_.line, "message \"" + entry_.uidl + "\": " + header_->error());
        }
        const std::uint64_t size = entry_.facts.size;
        entry_.facts = header_->facts();
        entry_.facts.size = size;
        header_.reset();
        ++entries_;
        out.push_back(std::move(entry_));
        state_ = State::Between;
        return status_;
      }
      if (text.substr(0, 1) == ".") text.remove_prefix(1);  // dot-stuffing
      if (state_ == State::Body) return status_;  // a TOP n k with k > 0: the body is not used
      std::size_t consumed = 0;
      auto status = header_->feed(text, consumed);
      if (status == HeaderFactsParser::Status::NeedMore) status = header_->feed("\r\n", consumed);
      if (status == HeaderFactsParser::Status::Error) {
        return fail(lineNumber_, "message \"" + entry_.uidl + "\": " + header_->error());
      }
      if (status == HeaderFactsParser::Status::Done) state_ = State::Body;
      return status_;
    }
  }
  return status_;
}

ImportParser::Status ImportParser::feed(std::string_view data, std::vector<Entry>& out) {
  for (std::size_t i = 0; i < data.size() && status_ != Status::Error; ++i) {
    const char c = data[i];
    if (c != '\n') {
      if (line_.size() + 1 >= limits_.maxLineLength) {
        return fail(lineNumber_ + 1,
                    "longer than " + std::to_string(limits_.maxLineLength) + " bytes");
      }
      line_ += c;
      continue;
    }
    ++lineNumber_;
    std::string_view text = line_;
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    line(text, out);
    line_.clear();
  }
  return status_;
}

ImportParser::Status ImportParser::finish(std::vector<Entry>& out) {
  if (status_ == Status::Error) return status_;
  if (!line_.empty()) {
    ++lineNumber_;
    std::string_view text = line_;
    if (text.back() == '\r') text.remove_suffix(1);
    if (line(text, out) == Status::Error) return status_;
    line_.clear();
  }
  if (state_ == State::Magic)
    return fail(lineNumber_ + 1, "empty file: expected \"" + std::string(kMagic) + "\"");
  if (state_ == State::Header || state_ == State::Body) {
    return fail(lineNumber_, "the file ends inside message \"" + entry_.uidl + "\" (line " +
                                 std::to_string(entry_.line) +
                                 "): its TOP block has no final \".\"");
  }
  return status_;
}

std::optional<std::vector<ImportParser::Entry>> parseImportFile(std::string_view file,
                                                                std::string& error) {
  ImportParser parser;
  std::vector<ImportParser::Entry> entries;
  if (parser.feed(file, entries) == ImportParser::Status::Error ||
      parser.finish(entries) == ImportParser::Status::Error) {
    error = parser.error();
    return std::nullopt;
  }
  return entries;
}

}  // namespace popbridge::protocol::uidl
