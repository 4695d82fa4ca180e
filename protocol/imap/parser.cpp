#include "protocol/imap/parser.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "protocol/imap/syntax.h"

namespace popbridge::protocol {
namespace {

// ESEARCH ALL and VANISHED sets are expanded into numbers; a hostile "1:4294967295" must not
// allocate 16 GiB. 4 Mi numbers (16 MiB) is far beyond any real mailbox.
constexpr std::size_t kMaxSetExpansion = std::size_t{1} << 22;

bool isDigit(unsigned char c) {
  return c >= '0' && c <= '9';
}

// Lenient atom character: what servers put in atoms, flags and extension data. ']' and '[' are
// accepted because resp-specials appear in real atoms (e.g. Gmail labels).
bool isAtomChar(unsigned char c) {
  if (c <= 0x20 || c == 0x7f) return false;
  switch (c) {
    case '(':
    case ')':
    case '{':
    case '"':
    case '\\':
      return false;
    default:
      return true;
  }
}

// RFC 3501 tag: ASTRING-CHAR except '+'.
bool isTagChar(unsigned char c) {
  return c != '+' && isAstringChar(c);
}

bool isKeywordChar(unsigned char c) {
  return isAtomChar(c) && c != '[' && c != ']' && c != '<';
}

char upperAscii(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

void assignUpper(std::string& out, std::string_view s) {
  out.resize(s.size());
  std::transform(s.begin(), s.end(), out.begin(), upperAscii);
}

std::string toUpper(std::string_view s) {
  std::string out;
  assignUpper(out, s);
  return out;
}

bool iequals(std::string_view s, std::string_view upper) {
  return s.size() == upper.size() && std::equal(s.begin(), s.end(), upper.begin(),
                                                [](char a, char b) { return upperAscii(a) == b; });
}

void splitWordsUpper(std::string_view s, std::vector<std::string>& out) {
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t start = i;
    while (i < s.size() && s[i] != ' ') ++i;
    if (i > start) out.push_back(toUpper(s.substr(start, i - start)));
  }
}

}  // namespace

std::string_view imapStatusName(ImapStatus status) {
  switch (status) {
    case ImapStatus::Ok:
      return "OK";
    case ImapStatus::No:
      return "NO";
    case ImapStatus::Bad:
      return "BAD";
    case ImapStatus::PreAuth:
      return "PREAUTH";
    case ImapStatus::Bye:
      return "BYE";
  }
  return "?";
}

void FetchAttributes::clear() {
  uid.reset();
  rfc822Size.reset();
  flags.reset();
  modseq.reset();
}

void ImapEvent::clear() {
  kind = Kind::Other;
  tag.clear();
  status = ImapStatus::Ok;
  code.reset();
  text.clear();
  number = 0;
  words.clear();
  numbers.clear();
  fetch.clear();
  section.clear();
  origin.reset();
  literalSize = 0;
  data = {};
}

ImapResponseParser::ImapResponseParser(std::size_t maxLine, std::size_t maxInlineLiteral)
    : maxLine_(maxLine), maxInlineLiteral_(maxInlineLiteral) {}

void ImapResponseParser::reset() {
  error_.clear();
  mode_ = Mode::ReadLine;
  state_ = State::ResponseStart;
  seg_.clear();
  pos_ = 0;
  end_ = 0;
  segLiteral_.reset();
  lineBytes_ = 0;
  respBytes_ = 0;
  segBase_ = 0;
  literalLeft_ = 0;
  textKind_ = TextKind::Tagged;
  status_ = ImapStatus::Ok;
  tag_.clear();
  text_.clear();
  keyword_.clear();
  number_ = 0;
  fetch_.clear();
  stack_.clear();
  skipBase_ = 0;
  expectDelimiter_ = false;
  section_.clear();
  origin_.reset();
  bodyBuf_.clear();
}

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
  ++pos_;  // the opening quote
  for (;;) {
    std::size_t runStart = pos_;
    while (pos_ < end_ && seg_[pos_] != '"' && seg_[pos_] != '\\') ++pos_;
    out.append(seg_, runStart, pos_ - runStart);
    if (atEnd()) {
      fail("expected '\"' closing the quoted string");
      return false;
    }
    if (seg_[pos_] == '"') {
      ++pos_;
      return true;
    }
    ++pos_;  // the backslash
    if (atEnd() || (peek() != '"' && peek() != '\\')) {
      fail("expected '\"' or '\\' after '\\' in a quoted string");
      return false;
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
  if (atEnd() || peek() != '(') {
    fail(std::string("expected '(' opening the ") + std::string(what) + " list");
    return false;
  }
  ++pos_;
  for (;;) {
    skipSpaces();
    if (atEnd()) {
      fail(std::string("expected ')' closing the ") + std::string(what) + " list");
      return false;
    }
    if (peek() == ')') {
      ++pos_;
      return true;
    }
    std::size_t start = pos_;
    if (peek() == '\\') {
      ++pos_;
      if (!atEnd() && peek() == '*') {
        ++pos_;
      } else if (readAtom().empty()) {
        fail("expected a flag name after '\\'");
        return false;
      }
    } else if (readAtom().empty()) {
      fail(std::string("expected a flag or ')' in the ") + std::string(what) + " list");
      return false;
    }
    out.emplace_back(seg_, start, pos_ - start);
    if (!atEnd() && peek() != ' ' && peek() != ')') {
      fail("expected SP or ')' after a flag");
      return false;
    }
  }
}

bool ImapResponseParser::readSequenceSet(std::vector<std::uint32_t>& out) {
  for (;;) {
    std::size_t start = pos_;
    std::uint32_t first = 0;
    if (!readNumber32(first, "a number of a sequence set")) return false;
    std::uint32_t last = first;
    if (!atEnd() && peek() == ':') {
      ++pos_;
      if (!readNumber32(last, "a number of a sequence set")) return false;
    }
    std::uint32_t lo = std::min(first, last);
    std::uint32_t hi = std::max(first, last);
    if (static_cast<std::uint64_t>(hi) - lo + 1 > kMaxSetExpansion - out.size()) {
      pos_ = start;
      fail("sequence set expanding to at most " + std::to_string(kMaxSetExpansion) + " numbers");
      return false;
    }
    for (std::uint64_t v = lo; v <= hi; ++v) out.push_back(static_cast<std::uint32_t>(v));
    if (atEnd() || peek() != ',') return true;
    ++pos_;
  }
}

bool ImapResponseParser::skipBalancedValue(std::string_view& raw) {
  std::size_t start = pos_;
  if (atEnd()) {
    fail("expected a value");
    return false;
  }
  if (peek() == '"') {
    if (!skipQuoted()) return false;
  } else if (peek() == '(') {
    std::size_t depth = 0;
    do {
      if (atEnd()) {
        fail("expected ')' closing a list");
        return false;
      }
      char c = seg_[pos_];
      if (c == '"') {
        if (!skipQuoted()) return false;
        continue;
      }
      if (c == '(') ++depth;
      if (c == ')') --depth;
      ++pos_;
    } while (depth > 0);
  } else {
    while (pos_ < end_ && (isAtomChar(peek()) || peek() == '\\')) ++pos_;
    if (pos_ == start) {
      fail("expected a value");
      return false;
    }
  }
  raw = std::string_view(seg_).substr(start, pos_ - start);
  return true;
}

bool ImapResponseParser::rejectLiteral(std::string_view what) {
  if (!segLiteral_) return true;
  pos_ = end_;
  fail(std::string("expected no literal in a ") + std::string(what) + " response");
  return false;
}

ImapResponseParser::Step ImapResponseParser::runGrammar(ImapEvent& ev) {
  for (;;) {
    Step step = Step::Continue;
    switch (state_) {
      case State::ResponseStart:
        step = startResponse(ev);
        break;
      case State::Text:
        step = continueText(ev);
        break;
      case State::SkipRest:
        step = continueSkipRest(ev);
        break;
      case State::FetchNext:
        step = fetchNext(ev);
        break;
      case State::FetchSkip:
        step = fetchSkip();
        break;
      case State::BodyChunk:
        ev.kind = ImapEvent::Kind::BodyChunk;
        ev.number = number_;
        ev.data = bodyBuf_;
        state_ = State::BodyEnd;
        return Step::Event;
      case State::BodyEnd:
        ev.kind = ImapEvent::Kind::BodyEnd;
        ev.number = number_;
        state_ = State::FetchNext;
        return Step::Event;
    }
    if (step != Step::Continue || mode_ != Mode::Grammar) return step;
  }
}

ImapResponseParser::Step ImapResponseParser::startResponse(ImapEvent& ev) {
  number_ = 0;
  if (atEnd()) {
    if (!segLiteral_) {
      // An empty line carries nothing and cannot confuse the framing, so it is skipped rather
      // than fatal.
      finishResponse();
      return Step::Continue;
    }
    return fail("expected '*', '+' or a tag");
  }
  unsigned char c = peek();
  if (c == '+') {
    ++pos_;
    if (!atEnd() && peek() == ' ') ++pos_;
    textKind_ = TextKind::Continuation;
    text_.clear();
    state_ = State::Text;
    return Step::Continue;
  }
  if (c == '*') {
    ++pos_;
    return startUntagged(ev);
  }
  std::size_t start = pos_;
  while (pos_ < end_ && isTagChar(peek())) ++pos_;
  if (pos_ == start) return fail("expected '*', '+' or a tag");
  tag_.assign(seg_, start, pos_ - start);
  if (!requireSpaces("after the tag")) return Step::Error;
  std::size_t wordPos = pos_;
  std::string_view word = readWord();
  if (iequals(word, "OK")) {
    status_ = ImapStatus::Ok;
  } else if (iequals(word, "NO")) {
    status_ = ImapStatus::No;
  } else if (iequals(word, "BAD")) {
    status_ = ImapStatus::Bad;
  } else {
    pos_ = wordPos;
    return fail("expected OK, NO or BAD after the tag");
  }
  textKind_ = TextKind::Tagged;
  if (!atEnd() && peek() == ' ') {
    ++pos_;
  } else if (!atEnd() && peek() != '[') {
    return fail("expected SP after the status");
  }
  text_.clear();
  state_ = State::Text;
  return Step::Continue;
}

ImapResponseParser::Step ImapResponseParser::startUntagged(ImapEvent& ev) {
  if (!requireSpaces("after '*'")) return Step::Error;
  if (!atEnd() && isDigit(peek())) {
    std::size_t numberPos = pos_;
    if (!readNumber32(number_, "a message number")) return Step::Error;
    if (!requireSpaces("after the message number")) return Step::Error;
    std::string_view keyword = readWord();
    if (keyword.empty()) return fail("expected a response keyword");
    assignUpper(keyword_, keyword);
    ImapEvent::Kind kind = ImapEvent::Kind::Other;
    if (keyword_ == "EXISTS") {
      kind = ImapEvent::Kind::Exists;
    } else if (keyword_ == "RECENT") {
      kind = ImapEvent::Kind::Recent;
    } else if (keyword_ == "EXPUNGE") {
      kind = ImapEvent::Kind::Expunge;
    } else if (keyword_ == "FETCH") {
      if (number_ == 0) {
        pos_ = numberPos;
        return fail("expected a non-zero message number");
      }
      if (!requireSpaces("after FETCH")) return Step::Error;
      if (!expectChar('(', "opening the FETCH list")) return Step::Error;
      fetch_.clear();
      stack_.assign(1, Frame::FetchList);
      expectDelimiter_ = false;
      state_ = State::FetchNext;
      return Step::Continue;
    } else {
      state_ = State::SkipRest;
      return Step::Continue;
    }
    if (kind == ImapEvent::Kind::Expunge && number_ == 0) {
      pos_ = numberPos;
      return fail("expected a non-zero message number");
    }
    if (!expectEnd(kind == ImapEvent::Kind::Exists   ? "after EXISTS"
                   : kind == ImapEvent::Kind::Recent ? "after RECENT"
                                                     : "after EXPUNGE")) {
      return Step::Error;
    }
    ev.kind = kind;
    ev.number = number_;
    finishResponse();
    return Step::Event;
  }
  std::string_view keyword = readWord();
  if (keyword.empty()) return fail("expected a response keyword after '*'");
  assignUpper(keyword_, keyword);
  std::optional<ImapStatus> status;
  if (keyword_ == "OK") {
    status = ImapStatus::Ok;
  } else if (keyword_ == "NO") {
    status = ImapStatus::No;
  } else if (keyword_ == "BAD") {
    status = ImapStatus::Bad;
  } else if (keyword_ == "PREAUTH") {
    status = ImapStatus::PreAuth;
  } else if (keyword_ == "BYE") {
    status = ImapStatus::Bye;
  }
  if (status) {
    status_ = *status;
    textKind_ = TextKind::Status;
    if (!atEnd() && peek() == ' ') {
      ++pos_;
    } else if (!atEnd() && peek() != '[') {
      return fail("expected SP after the status");
    }
    text_.clear();
    state_ = State::Text;
    return Step::Continue;
  }
  if (keyword_ == "CAPABILITY" || keyword_ == "FLAGS" || keyword_ == "SEARCH" ||
      keyword_ == "ESEARCH" || keyword_ == "VANISHED") {
    return parseSimpleUntagged(keyword_, ev);
  }
  state_ = State::SkipRest;
  return Step::Continue;
}

ImapResponseParser::Step ImapResponseParser::parseSimpleUntagged(std::string_view keyword,
                                                                 ImapEvent& ev) {
  // None of these can carry a literal (the ESEARCH correlator could in theory, but it echoes
  // our own tag, which is an atom).
  if (!rejectLiteral(keyword)) return Step::Error;
  if (keyword == "CAPABILITY") {
    for (;;) {
      skipSpaces();
      if (atEnd()) break;
      std::string_view word = readAtom();
      if (word.empty()) return fail("expected a capability name");
      ev.words.push_back(toUpper(word));
    }
    ev.kind = ImapEvent::Kind::Capability;
  } else if (keyword == "FLAGS") {
    if (!requireSpaces("after FLAGS")) return Step::Error;
    if (!readFlagList(ev.words, "FLAGS")) return Step::Error;
    if (!expectEnd("after the FLAGS list")) return Step::Error;
    ev.kind = ImapEvent::Kind::Flags;
  } else if (keyword == "SEARCH") {
    for (;;) {
      if (!atEnd() && peek() != ' ') return fail("expected SP or end of line in SEARCH");
      skipSpaces();
      if (atEnd()) break;
      if (peek() == '(') {
        ++pos_;
        skipSpaces();
        std::size_t namePos = pos_;
        if (!iequals(readWord(), "MODSEQ")) {
          pos_ = namePos;
          return fail("expected MODSEQ in the SEARCH result");
        }
        std::uint64_t modseq = 0;
        if (!requireSpaces("after MODSEQ") || !readNumber64(modseq, "a mod-sequence")) {
          return Step::Error;
        }
        skipSpaces();
        if (!expectChar(')', "closing the SEARCH MODSEQ")) return Step::Error;
        ev.fetch.modseq = modseq;
        continue;
      }
      std::uint32_t n = 0;
      if (!readNumber32(n, "a number in SEARCH")) return Step::Error;
      ev.numbers.push_back(n);
    }
    ev.kind = ImapEvent::Kind::Search;
  } else if (keyword == "ESEARCH") {
    return parseESearch(ev);
  } else {
    return parseVanished(ev);
  }
  finishResponse();
  return Step::Event;
}

ImapResponseParser::Step ImapResponseParser::parseESearch(ImapEvent& ev) {
  bool first = true;
  for (;;) {
    if (!atEnd() && peek() != ' ') return fail("expected SP or end of line in ESEARCH");
    skipSpaces();
    if (atEnd()) break;
    if (first && peek() == '(') {
      first = false;
      ++pos_;
      for (;;) {
        skipSpaces();
        if (atEnd()) return fail("expected ')' closing the search correlator");
        if (peek() == ')') {
          ++pos_;
          break;
        }
        std::string_view name = readWord();
        if (name.empty()) return fail("expected a search correlator name");
        bool isTag = iequals(name, "TAG");
        if (!requireSpaces("after the correlator name")) return Step::Error;
        if (isTag && !atEnd() && peek() == '"') {
          ev.text.clear();
          if (!readQuoted(ev.text)) return Step::Error;
        } else {
          std::string_view raw;
          if (!skipBalancedValue(raw)) return Step::Error;
          if (isTag) ev.text.assign(raw);
        }
      }
      continue;
    }
    first = false;
    std::string_view name = readWord();
    if (name.empty()) return fail("expected search return data");
    std::string upper = toUpper(name);
    if (upper == "UID") {
      ev.words.push_back(std::move(upper));
      continue;
    }
    if (!requireSpaces("after the search return data name")) return Step::Error;
    if (upper == "ALL") {
      if (!readSequenceSet(ev.numbers)) return Step::Error;
      continue;
    }
    std::string_view raw;
    if (!skipBalancedValue(raw)) return Step::Error;
    upper.push_back(' ');
    upper.append(raw);
    ev.words.push_back(std::move(upper));
  }
  ev.kind = ImapEvent::Kind::ESearch;
  finishResponse();
  return Step::Event;
}

ImapResponseParser::Step ImapResponseParser::parseVanished(ImapEvent& ev) {
  if (!requireSpaces("after VANISHED")) return Step::Error;
  if (!atEnd() && peek() == '(') {
    ++pos_;
    for (;;) {
      skipSpaces();
      if (atEnd()) return fail("expected ')' closing the VANISHED modifiers");
      if (peek() == ')') {
        ++pos_;
        break;
      }
      std::string_view word = readWord();
      if (word.empty()) return fail("expected a VANISHED modifier");
      ev.words.push_back(toUpper(word));
    }
    if (!requireSpaces("after the VANISHED modifiers")) return Step::Error;
  }
  if (!readSequenceSet(ev.numbers)) return Step::Error;
  if (!expectEnd("after the VANISHED set")) return Step::Error;
  ev.kind = ImapEvent::Kind::Vanished;
  finishResponse();
  return Step::Event;
}

ImapResponseParser::Step ImapResponseParser::continueText(ImapEvent& ev) {
  text_.append(seg_, pos_, end_ - pos_);
  pos_ = end_;
  if (segLiteral_) {
    if (*segLiteral_ > maxInlineLiteral_ ||
        text_.size() + *segLiteral_ > maxLine_ + maxInlineLiteral_) {
      return failPlain("literal of " + std::to_string(*segLiteral_) +
                       " bytes in response text exceeds the limit of " +
                       std::to_string(maxInlineLiteral_) + " bytes");
    }
    needLiteral(Mode::KeepLiteral);
    return Step::Continue;
  }

  switch (textKind_) {
    case TextKind::Tagged:
      ev.kind = ImapEvent::Kind::Tagged;
      ev.tag = tag_;
      ev.status = status_;
      break;
    case TextKind::Status:
      ev.kind = ImapEvent::Kind::Status;
      ev.status = status_;
      break;
    case TextKind::Continuation:
      ev.kind = ImapEvent::Kind::Continuation;
      break;
  }
  std::string_view text = text_;
  if (!text.empty() && text[0] == '[') {
    // The code ends at the first ']' outside a quoted string (BADCHARSET may quote names).
    std::size_t close = std::string_view::npos;
    bool quoted = false;
    for (std::size_t i = 1; i < text.size(); ++i) {
      char c = text[i];
      if (quoted) {
        if (c == '\\') {
          ++i;
        } else if (c == '"') {
          quoted = false;
        }
      } else if (c == '"') {
        quoted = true;
      } else if (c == ']') {
        close = i;
        break;
      }
    }
    // Without a closing bracket or a name the text is kept whole rather than refused: it is
    // only for humans and logs.
    if (close != std::string_view::npos) {
      std::string_view inner = text.substr(1, close - 1);
      std::size_t nameEnd = std::min(inner.find(' '), inner.size());
      if (nameEnd > 0) {
        ImapResponseCode code;
        code.name = toUpper(inner.substr(0, nameEnd));
        if (nameEnd < inner.size()) code.text.assign(inner.substr(nameEnd + 1));
        if (code.name == "CAPABILITY") splitWordsUpper(code.text, ev.words);
        ev.code = std::move(code);
        text.remove_prefix(close + 1);
        if (!text.empty() && text[0] == ' ') text.remove_prefix(1);
      }
    }
  }
  ev.text.assign(text);
  finishResponse();
  return Step::Event;
}

ImapResponseParser::Step ImapResponseParser::continueSkipRest(ImapEvent& ev) {
  pos_ = end_;
  if (segLiteral_) {
    if (*segLiteral_ > maxInlineLiteral_) {
      return failPlain("literal of " + std::to_string(*segLiteral_) + " bytes in a " + keyword_ +
                       " response exceeds the limit of " + std::to_string(maxInlineLiteral_) +
                       " bytes");
    }
    needLiteral(Mode::SkipLiteral);
    return Step::Continue;
  }
  ev.kind = ImapEvent::Kind::Other;
  ev.text = keyword_;
  ev.number = number_;
  finishResponse();
  return Step::Event;
}

ImapResponseParser::Step ImapResponseParser::fetchNext(ImapEvent& ev) {
  if (expectDelimiter_) {
    expectDelimiter_ = false;
    if (!atEnd() && peek() != ' ' && peek() != ')') {
      return fail("expected SP or ')' after a FETCH item");
    }
  }
  skipSpaces();
  if (atEnd()) {
    if (segLiteral_) return fail("expected a FETCH item name");
    return fail("expected ')' closing the FETCH list");
  }
  if (peek() == ')') {
    ++pos_;
    stack_.pop_back();
    if (!expectEnd("after the FETCH list")) return Step::Error;
    ev.kind = ImapEvent::Kind::Fetch;
    ev.number = number_;
    ev.fetch = std::move(fetch_);
    fetch_.clear();
    finishResponse();
    return Step::Event;
  }

  std::size_t nameStart = pos_;
  while (pos_ < end_ && isKeywordChar(peek())) ++pos_;
  if (pos_ == nameStart) return fail("expected a FETCH item name or ')'");
  std::string name = toUpper(std::string_view(seg_).substr(nameStart, pos_ - nameStart));
  bool hasSection = false;
  section_.clear();
  origin_.reset();
  if (!atEnd() && peek() == '[') {
    hasSection = true;
    ++pos_;
    std::size_t sectionStart = pos_;
    bool quoted = false;
    while (pos_ < end_) {
      char c = seg_[pos_];
      if (quoted) {
        if (c == '\\') {
          ++pos_;
        } else if (c == '"') {
          quoted = false;
        }
      } else if (c == '"') {
        quoted = true;
      } else if (c == ']') {
        break;
      }
      ++pos_;
    }
    if (pos_ >= end_) {
      pos_ = end_;
      return fail("expected ']' closing the section");
    }
    assignUpper(section_, std::string_view(seg_).substr(sectionStart, pos_ - sectionStart));
    ++pos_;
    if (!atEnd() && peek() == '<') {
      ++pos_;
      std::uint64_t origin = 0;
      if (!readNumber64(origin, "an origin octet")) return Step::Error;
      if (!expectChar('>', "closing the origin")) return Step::Error;
      origin_ = origin;
    }
  }
  if (!requireSpaces("after the FETCH item name")) return Step::Error;

  if (hasSection) {
    if (name == "BODY" || name == "BODY.PEEK") return bodyValue(ev);
    if (name == "BINARY" || name == "BINARY.PEEK") return bodyValue(ev);
  } else if (name == "RFC822") {
    return bodyValue(ev);
  } else if (name == "RFC822.HEADER") {
    section_ = "HEADER";
    return bodyValue(ev);
  } else if (name == "RFC822.TEXT") {
    section_ = "TEXT";
    return bodyValue(ev);
  } else if (name == "UID") {
    std::uint32_t uid = 0;
    std::size_t valuePos = pos_;
    if (!readNumber32(uid, "a UID")) return Step::Error;
    if (uid == 0) {
      pos_ = valuePos;
      return fail("expected a non-zero UID");
    }
    fetch_.uid = uid;
    expectDelimiter_ = true;
    return Step::Continue;
  } else if (name == "RFC822.SIZE") {
    std::uint64_t size = 0;
    if (!readNumber64(size, "an RFC822.SIZE")) return Step::Error;
    fetch_.rfc822Size = size;
    expectDelimiter_ = true;
    return Step::Continue;
  } else if (name == "FLAGS") {
    std::vector<std::string> flags;
    if (!readFlagList(flags, "FLAGS")) return Step::Error;
    fetch_.flags = std::move(flags);
    expectDelimiter_ = true;
    return Step::Continue;
  } else if (name == "MODSEQ") {
    std::uint64_t modseq = 0;
    if (!expectChar('(', "opening the MODSEQ value")) return Step::Error;
    skipSpaces();
    if (!readNumber64(modseq, "a mod-sequence")) return Step::Error;
    skipSpaces();
    if (!expectChar(')', "closing the MODSEQ value")) return Step::Error;
    fetch_.modseq = modseq;
    expectDelimiter_ = true;
    return Step::Continue;
  }
  // ENVELOPE, BODYSTRUCTURE, INTERNALDATE, BINARY.SIZE, X-GM-*, EMAILID, ...: skipped.
  skipBase_ = stack_.size();
  state_ = State::FetchSkip;
  return Step::Continue;
}

void ImapResponseParser::beginBody(ImapEvent& ev) {
  ev.kind = ImapEvent::Kind::BodyBegin;
  ev.number = number_;
  ev.fetch = fetch_;
  ev.section = section_;
  ev.origin = origin_;
}

ImapResponseParser::Step ImapResponseParser::bodyValue(ImapEvent& ev) {
  if (atEnd()) {
    if (!segLiteral_) return fail("expected a body value (NIL, a string or a literal)");
    // literal8 is only defined for BINARY, but a server sending it for BODY means the same
    // bytes, so it is accepted there too.
    beginBody(ev);
    ev.literalSize = *segLiteral_;
    needLiteral(Mode::BodyLiteral);
    state_ = State::FetchNext;
    expectDelimiter_ = true;
    return Step::Event;
  }
  if (peek() == '"') {
    bodyBuf_.clear();
    if (!readQuoted(bodyBuf_)) return Step::Error;
    beginBody(ev);
    ev.literalSize = bodyBuf_.size();
    state_ = bodyBuf_.empty() ? State::BodyEnd : State::BodyChunk;
    expectDelimiter_ = true;
    return Step::Event;
  }
  std::size_t valuePos = pos_;
  if (iequals(readWord(), "NIL")) {
    beginBody(ev);
    ev.literalSize = 0;
    state_ = State::BodyEnd;
    expectDelimiter_ = true;
    return Step::Event;
  }
  pos_ = valuePos;
  return fail("expected a body value (NIL, a string or a literal)");
}

ImapResponseParser::Step ImapResponseParser::fetchSkip() {
  for (;;) {
    bool inList = stack_.size() > skipBase_;
    if (atEnd()) {
      if (!segLiteral_) {
        return fail(inList ? "expected ')' closing a list in a FETCH item"
                           : "expected a FETCH item value");
      }
      if (*segLiteral_ > maxInlineLiteral_) {
        return failPlain("literal of " + std::to_string(*segLiteral_) +
                         " bytes in a FETCH item exceeds the limit of " +
                         std::to_string(maxInlineLiteral_) + " bytes for non-body data");
      }
      needLiteral(Mode::SkipLiteral);
      if (!inList) {
        state_ = State::FetchNext;
        expectDelimiter_ = true;
      }
      return Step::Continue;
    }
    unsigned char c = peek();
    if (c == ' ' && inList) {
      ++pos_;
      continue;
    }
    if (c == '(') {
      stack_.push_back(Frame::SkipList);
      ++pos_;
      continue;
    }
    if (c == ')') {
      if (!inList) return fail("expected a FETCH item value");
      stack_.pop_back();
      ++pos_;
      if (stack_.size() == skipBase_) {
        state_ = State::FetchNext;
        expectDelimiter_ = true;
        return Step::Continue;
      }
      continue;
    }
    if (c == '"') {
      if (!skipQuoted()) return Step::Error;
    } else if (isAtomChar(c) || c == '\\') {
      while (pos_ < end_ && (isAtomChar(peek()) || peek() == '\\')) ++pos_;
    } else {
      return fail(inList ? "expected a value or ')' in a FETCH item"
                         : "expected a FETCH item value");
    }
    if (!inList) {
      state_ = State::FetchNext;
      expectDelimiter_ = true;
      return Step::Continue;
    }
  }
}

}  // namespace popbridge::protocol
