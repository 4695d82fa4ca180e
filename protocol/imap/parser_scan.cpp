#include <algorithm>
#include <cstring>
#include <limits>

#include "protocol/imap/parser.h"
#include "protocol/imap/parser_chars.h"

// Framing (bytes into line segments and literals, per mode) and the token scanners the grammar
// reads a complete segment with.

namespace popbridge::protocol {

using namespace parser_chars;

ImapResponseParser::Status ImapResponseParser::parse(std::string_view input, std::size_t& consumed,
                                                     ImapEvent& ev) {
  consumed = 0;
  if (mode_ == Mode::Dead) return Status::Error;
  ev.clear();
  for (;;) {
    switch (mode_) {
      case Mode::ReadLine: {
        if (consumed == input.size()) return Status::NeedMore;
        const char* begin = input.data() + consumed;
        std::size_t avail = input.size() - consumed;
        const void* lf = std::memchr(begin, '\n', avail);
        std::size_t take =
            lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - begin) + 1 : avail;
        if (take > maxLine_ - lineBytes_) {
          failPlain("response line longer than " + std::to_string(maxLine_) + " bytes");
          return Status::Error;
        }
        seg_.append(begin, take);
        lineBytes_ += take;
        respBytes_ += take;
        consumed += take;
        if (!lf) return Status::NeedMore;
        if (!finishSegment()) return Status::Error;
        mode_ = Mode::Grammar;
        break;
      }
      case Mode::Grammar: {
        Step step = runGrammar(ev);
        if (step == Step::Event) return Status::Event;
        if (step == Step::Error) return Status::Error;
        break;
      }
      case Mode::BodyLiteral: {
        if (literalLeft_ == 0) {
          ev.kind = ImapEvent::Kind::BodyEnd;
          ev.number = number_;
          needLine();
          return Status::Event;
        }
        if (consumed == input.size()) return Status::NeedMore;
        std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(literalLeft_, input.size() - consumed));
        ev.kind = ImapEvent::Kind::BodyChunk;
        ev.number = number_;
        ev.data = input.substr(consumed, n);
        consumed += n;
        literalLeft_ -= n;
        respBytes_ += n;
        return Status::Event;
      }
      case Mode::KeepLiteral:
      case Mode::SkipLiteral: {
        std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(literalLeft_, input.size() - consumed));
        if (mode_ == Mode::KeepLiteral) text_.append(input.data() + consumed, n);
        consumed += n;
        literalLeft_ -= n;
        respBytes_ += n;
        if (literalLeft_ > 0) return Status::NeedMore;
        needLine();
        break;
      }
      case Mode::Dead:
        return Status::Error;
    }
  }
}

bool ImapResponseParser::finishSegment() {
  std::size_t n = seg_.size() - 1;  // without the LF
  if (n > 0 && seg_[n - 1] == '\r') --n;
  pos_ = 0;
  end_ = n;
  segLiteral_.reset();
  segBase_ = respBytes_ - seg_.size();
  if (n < 3 || seg_[n - 1] != '}') return true;
  std::size_t digitsEnd = n - 1;
  std::size_t i = digitsEnd;
  while (i > 0 && isDigit(static_cast<unsigned char>(seg_[i - 1]))) --i;
  if (i == digitsEnd || i == 0 || seg_[i - 1] != '{') return true;
  std::uint64_t size = 0;
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  for (std::size_t k = i; k < digitsEnd; ++k) {
    auto digit = static_cast<std::uint64_t>(seg_[k] - '0');
    if (size > (kMax - digit) / 10) {
      std::string shown = seg_.substr(i, std::min<std::size_t>(digitsEnd - i, 24));
      if (digitsEnd - i > 24) shown += "...";
      failPlain("literal size {" + shown + "} at offset " + std::to_string(segBase_ + i - 1) +
                " of the response is too large");
      return false;
    }
    size = size * 10 + digit;
  }
  segLiteral_ = size;
  end_ = i - 1;
  if (end_ > 0 && seg_[end_ - 1] == '~') --end_;  // literal8 (RFC 3516)
  return true;
}

void ImapResponseParser::needLine() {
  seg_.clear();
  pos_ = 0;
  end_ = 0;
  segLiteral_.reset();
  mode_ = Mode::ReadLine;
}

void ImapResponseParser::needLiteral(Mode mode) {
  literalLeft_ = *segLiteral_;
  seg_.clear();
  pos_ = 0;
  end_ = 0;
  segLiteral_.reset();
  mode_ = mode;
}

void ImapResponseParser::finishResponse() {
  state_ = State::ResponseStart;
  lineBytes_ = 0;
  respBytes_ = 0;
  stack_.clear();
  expectDelimiter_ = false;
  needLine();
}

ImapResponseParser::Step ImapResponseParser::failPlain(std::string message) {
  error_ = std::move(message);
  mode_ = Mode::Dead;
  return Step::Error;
}

ImapResponseParser::Step ImapResponseParser::fail(std::string_view expected) {
  std::string found;
  if (pos_ < end_) {
    unsigned char c = peek();
    if (c == ' ') {
      found = "SP";
    } else if (c > 0x20 && c < 0x7f) {
      found = std::string("'") + static_cast<char>(c) + "'";
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      found = std::string("byte 0x") + kHex[c >> 4] + kHex[c & 0xF];
    }
  } else {
    found = segLiteral_ ? "a literal" : "end of line";
  }
  return failPlain(std::string(expected) + " at offset " + std::to_string(segBase_ + pos_) +
                   " of the response, found " + found);
}

std::size_t ImapResponseParser::skipSpaces() {
  std::size_t start = pos_;
  while (pos_ < end_ && seg_[pos_] == ' ') ++pos_;
  return pos_ - start;
}

bool ImapResponseParser::requireSpaces(std::string_view what) {
  if (atEnd() || peek() != ' ') {
    fail(std::string("expected SP ") + std::string(what));
    return false;
  }
  skipSpaces();
  return true;
}

bool ImapResponseParser::expectChar(char c, std::string_view what) {
  if (atEnd() || peek() != static_cast<unsigned char>(c)) {
    fail(std::string("expected '") + c + "' " + std::string(what));
    return false;
  }
  ++pos_;
  return true;
}

bool ImapResponseParser::expectEnd(std::string_view what) {
  skipSpaces();
  if (!atEnd() || segLiteral_) {
    fail(std::string("expected end of line ") + std::string(what));
    return false;
  }
  return true;
}

std::string_view ImapResponseParser::readAtom() {
  std::size_t start = pos_;
  while (pos_ < end_ && isAtomChar(peek())) ++pos_;
  return std::string_view(seg_).substr(start, pos_ - start);
}

std::string_view ImapResponseParser::readWord() {
  std::size_t start = pos_;
  while (pos_ < end_ && isKeywordChar(peek())) ++pos_;
  return std::string_view(seg_).substr(start, pos_ - start);
}

bool ImapResponseParser::readNumber64(std::uint64_t& out, std::string_view what) {
  if (atEnd() || !isDigit(peek())) {
    fail(std::string("expected ") + std::string(what));
    return false;
  }
  std::size_t start = pos_;
  std::uint64_t value = 0;
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  while (pos_ < end_ && isDigit(peek())) {
    auto digit = static_cast<std::uint64_t>(peek() - '0');
    if (value > (kMax - digit) / 10) {
      pos_ = start;
      fail(std::string(what) + " out of range");
      return false;
    }
    value = value * 10 + digit;
    ++pos_;
  }
  out = value;
  return true;
}

bool ImapResponseParser::readNumber32(std::uint32_t& out, std::string_view what) {
  std::size_t start = pos_;
  std::uint64_t value = 0;
  if (!readNumber64(value, what)) return false;
  if (value > std::numeric_limits<std::uint32_t>::max()) {
    pos_ = start;
    fail(std::string(what) + " out of range");
    return false;
  }
  out = static_cast<std::uint32_t>(value);
  return true;
}

bool ImapResponseParser::readQuoted(std::string& out) {
  std::optional<std::string> expected = scanQuoted(out);
  if (expected) fail(*expected);
  return !expected;
}

std::optional<std::string> ImapResponseParser::scanQuoted(std::string& out) {
  ++pos_;  // the opening quote
  for (;;) {
    std::size_t runStart = pos_;
    while (pos_ < end_ && seg_[pos_] != '"' && seg_[pos_] != '\\') ++pos_;
    out.append(seg_, runStart, pos_ - runStart);
    if (atEnd()) return "expected '\"' closing the quoted string";
    if (seg_[pos_] == '"') {
      ++pos_;
      return std::nullopt;
    }
    ++pos_;  // the backslash
    if (atEnd() || (peek() != '"' && peek() != '\\')) {
      return "expected '\"' or '\\' after '\\' in a quoted string";
    }
    out.push_back(seg_[pos_]);
    ++pos_;
  }
}

bool ImapResponseParser::skipQuoted() {
  ++pos_;
  while (pos_ < end_) {
    char c = seg_[pos_];
    if (c == '"') {
      ++pos_;
      return true;
    }
    if (c == '\\') {
      ++pos_;
      if (atEnd() || (peek() != '"' && peek() != '\\')) {
        fail("expected '\"' or '\\' after '\\' in a quoted string");
        return false;
      }
    }
    ++pos_;
  }
  fail("expected '\"' closing the quoted string");
  return false;
}

bool ImapResponseParser::readFlagList(std::vector<std::string>& out, std::string_view what) {
  std::optional<std::string> expected = scanFlagList(out, what);
  if (expected) fail(*expected);
  return !expected;
}

std::optional<std::string> ImapResponseParser::scanFlagList(std::vector<std::string>& out,
                                                            std::string_view what) {
  if (atEnd() || peek() != '(') {
    return "expected '(' opening the " + std::string(what) + " list";
  }
  ++pos_;
  for (;;) {
    skipSpaces();
    if (atEnd()) return "expected ')' closing the " + std::string(what) + " list";
    if (peek() == ')') {
      ++pos_;
      return std::nullopt;
    }
    std::size_t start = pos_;
    if (peek() == '\\') {
      ++pos_;
      if (!atEnd() && peek() == '*') {
        ++pos_;
      } else if (readAtom().empty()) {
        return "expected a flag name after '\\'";
      }
    } else if (readAtom().empty()) {
      return "expected a flag or ')' in the " + std::string(what) + " list";
    }
    out.emplace_back(seg_, start, pos_ - start);
    if (!atEnd() && peek() != ' ' && peek() != ')') return "expected SP or ')' after a flag";
  }
}

bool ImapResponseParser::rejectLiteral(std::string_view what) {
  if (!segLiteral_) return true;
  pos_ = end_;
  fail(std::string("expected no literal in a ") + std::string(what) + " response");
  return false;
}

}  // namespace popbridge::protocol
