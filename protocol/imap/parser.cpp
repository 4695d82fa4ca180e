#include "protocol/imap/parser.h"

#include <algorithm>
#include <limits>

#include "protocol/imap/parser_chars.h"
#include "protocol/text.h"

// The grammar of a response up to its kind: tagged, continuation, untagged status, the untagged
// responses popbridge reads, and the skipping of all others. FETCH is in parser_fetch.cpp, the
// framing and token scanners in parser_scan.cpp.

namespace popbridge::protocol {

using namespace parser_chars;

namespace {

void splitWordsUpper(std::string_view s, std::vector<std::string>& out) {
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t start = i;
    while (i < s.size() && s[i] != ' ') ++i;
    if (i > start) out.push_back(toUpper(s.substr(start, i - start)));
  }
}

std::optional<ImapStatus> untaggedStatus(std::string_view keyword) {
  if (keyword == "OK") return ImapStatus::Ok;
  if (keyword == "NO") return ImapStatus::No;
  if (keyword == "BAD") return ImapStatus::Bad;
  if (keyword == "PREAUTH") return ImapStatus::PreAuth;
  if (keyword == "BYE") return ImapStatus::Bye;
  return std::nullopt;
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
  emailId.reset();
  gmMsgId.reset();
}

void ImapEvent::clear() {
  kind = Kind::Other;
  tag.clear();
  status = ImapStatus::Ok;
  code.reset();
  text.clear();
  number = 0;
  words.clear();
  mailbox.clear();
  delimiter.reset();
  fetch.clear();
  numbers.clear();
  statusItems.clear();
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
  listAttributes_.clear();
  listDelimiter_.reset();
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
        step = skipRest(ev, ImapEvent::Kind::Other);
        break;
      case State::ListAfterName:
        step = listAfterName();
        break;
      case State::ListTail:
        step = skipRest(ev, ImapEvent::Kind::List);
        break;
      case State::StatusAfterName:
        step = statusAfterName(ev);
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
  if (equalsIgnoreCase(word, "OK")) {
    status_ = ImapStatus::Ok;
  } else if (equalsIgnoreCase(word, "NO")) {
    status_ = ImapStatus::No;
  } else if (equalsIgnoreCase(word, "BAD")) {
    status_ = ImapStatus::Bad;
  } else {
    pos_ = wordPos;
    return fail("expected OK, NO or BAD after the tag");
  }
  return startText(TextKind::Tagged);
}

ImapResponseParser::Step ImapResponseParser::startText(TextKind kind) {
  textKind_ = kind;
  if (!atEnd() && peek() == ' ') {
    ++pos_;
  } else if (!atEnd() && peek() != '[') {
    return fail("expected SP after the status");
  }
  text_.clear();
  state_ = State::Text;
  return Step::Continue;
}

// A client must be prepared to accept any response at all times (RFC 9051 7), and servers do
// send untagged data nobody asked for, so only the responses popbridge acts on are held to the
// grammar; anywhere else a quirk must not end the session. A first pass therefore classifies the
// response without ever failing, and only the responses that matter are then read again, strictly,
// from the start.
ImapResponseParser::Step ImapResponseParser::startUntagged(ImapEvent& ev) {
  const std::size_t afterStar = pos_;
  skipSpaces();
  const bool numbered = !atEnd() && isDigit(peek());
  // Saturates just past 32 bits: enough to tell "too large" without overflowing.
  constexpr std::uint64_t kTooLarge = std::uint64_t{std::numeric_limits<std::uint32_t>::max()} + 1;
  std::uint64_t number = 0;
  while (!atEnd() && isDigit(peek())) {
    number = std::min(number * 10 + (peek() - '0'), kTooLarge);
    ++pos_;
  }
  skipSpaces();
  assignUpper(keyword_, readWord());

  if (numbered) {
    if (keyword_ == "EXISTS" || keyword_ == "EXPUNGE" || keyword_ == "FETCH") {
      pos_ = afterStar;
      return startNumbered(ev);
    }
    if (keyword_ == "RECENT" && number < kTooLarge) {
      skipSpaces();
      if (atEnd() && !segLiteral_) {
        ev.kind = ImapEvent::Kind::Recent;
        ev.number = static_cast<std::uint32_t>(number);
        finishResponse();
        return Step::Event;
      }
    }
    number_ = number < kTooLarge ? static_cast<std::uint32_t>(number) : 0;
  } else if (std::optional<ImapStatus> status = untaggedStatus(keyword_)) {
    pos_ = afterStar;
    if (!requireSpaces("after '*'")) return Step::Error;
    readWord();
    status_ = *status;
    return startText(TextKind::Status);
  } else if (keyword_ == "CAPABILITY" || keyword_ == "FLAGS") {
    pos_ = afterStar;
    if (!requireSpaces("after '*'")) return Step::Error;
    readWord();
    return keyword_ == "CAPABILITY" ? parseCapability(ev) : parseFlags(ev);
  } else if (keyword_ == "LIST") {
    return parseList();
  } else if (keyword_ == "SEARCH") {
    return parseSearch(ev);
  } else if (keyword_ == "STATUS") {
    return parseStatus();
  }
  state_ = State::SkipRest;
  return Step::Continue;
}

// "* n EXISTS", "* n EXPUNGE" and "* n FETCH (", read strictly from after the '*'.
ImapResponseParser::Step ImapResponseParser::startNumbered(ImapEvent& ev) {
  if (!requireSpaces("after '*'")) return Step::Error;
  const std::size_t numberPos = pos_;
  if (!readNumber32(number_, "a message number")) return Step::Error;
  if (!requireSpaces("after the message number")) return Step::Error;
  readWord();
  if (keyword_ != "EXISTS" && number_ == 0) {
    pos_ = numberPos;
    return fail("expected a non-zero message number");
  }
  if (keyword_ == "FETCH") {
    if (!requireSpaces("after FETCH")) return Step::Error;
    if (!expectChar('(', "opening the FETCH list")) return Step::Error;
    fetch_.clear();
    stack_.assign(1, Frame::FetchList);
    expectDelimiter_ = false;
    state_ = State::FetchNext;
    return Step::Continue;
  }
  const bool exists = keyword_ == "EXISTS";
  if (!expectEnd(exists ? "after EXISTS" : "after EXPUNGE")) return Step::Error;
  ev.kind = exists ? ImapEvent::Kind::Exists : ImapEvent::Kind::Expunge;
  ev.number = number_;
  finishResponse();
  return Step::Event;
}

ImapResponseParser::Step ImapResponseParser::parseCapability(ImapEvent& ev) {
  if (!rejectLiteral("CAPABILITY")) return Step::Error;
  for (;;) {
    skipSpaces();
    if (atEnd()) break;
    std::string_view word = readAtom();
    if (word.empty()) return fail("expected a capability name");
    ev.words.push_back(toUpper(word));
  }
  ev.kind = ImapEvent::Kind::Capability;
  finishResponse();
  return Step::Event;
}

ImapResponseParser::Step ImapResponseParser::parseFlags(ImapEvent& ev) {
  if (!rejectLiteral("FLAGS")) return Step::Error;
  if (!requireSpaces("after FLAGS")) return Step::Error;
  if (!readFlagList(ev.words, "FLAGS")) return Step::Error;
  if (!expectEnd("after the FLAGS list")) return Step::Error;
  ev.kind = ImapEvent::Kind::Flags;
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
    std::size_t close = findCloseBracket(text, 1);
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

// Skips the rest of the response, literals included, then reports it as `kind`: Other, or a List
// whose extended data (RFC 5258 CHILDINFO, OLDNAME...) popbridge does not read.
ImapResponseParser::Step ImapResponseParser::skipRest(ImapEvent& ev, ImapEvent::Kind kind) {
  pos_ = end_;
  if (segLiteral_) {
    // Counted off the input, never buffered, so its size costs nothing: no limit applies.
    needLiteral(Mode::SkipLiteral);
    return Step::Continue;
  }
  ev.kind = kind;
  ev.number = number_;
  if (kind == ImapEvent::Kind::List) {
    // Swapped rather than copied: the members take the event's emptied buffers.
    ev.words.swap(listAttributes_);
    ev.mailbox.swap(text_);
    ev.delimiter = listDelimiter_;
  } else {
    ev.text = keyword_;
  }
  finishResponse();
  return Step::Event;
}

// "* SEARCH 3 7 12" (RFC 3501 7.2.5) from after "SEARCH", possibly without numbers. Whatever
// else it holds (a literal, RFC 7162's "(MODSEQ n)", a zero or a number beyond 32 bits) makes it
// an Other "SEARCH": its reader must not take a partial list for the whole answer.
ImapResponseParser::Step ImapResponseParser::parseSearch(ImapEvent& ev) {
  state_ = State::SkipRest;
  if (segLiteral_) return Step::Continue;
  for (;;) {
    std::size_t spaces = skipSpaces();
    if (atEnd()) break;
    std::uint64_t value = 0;
    std::size_t digits = 0;
    while (!atEnd() && isDigit(peek()) && value <= std::numeric_limits<std::uint32_t>::max()) {
      value = value * 10 + (peek() - '0');
      ++pos_;
      ++digits;
    }
    if (spaces == 0 || digits == 0 || value == 0 ||
        value > std::numeric_limits<std::uint32_t>::max() || (!atEnd() && peek() != ' ')) {
      ev.numbers.clear();
      return Step::Continue;
    }
    ev.numbers.push_back(static_cast<std::uint32_t>(value));
  }
  ev.kind = ImapEvent::Kind::Search;
  finishResponse();
  return Step::Event;
}

// "* LIST (attributes) delimiter mailbox" (RFC 3501 7.2.2) from after "LIST". Whatever does not
// fit that shape is skipped as Other from where it stopped, so nothing here fails the parser.
ImapResponseParser::Step ImapResponseParser::parseList() {
  state_ = State::SkipRest;  // until the name is read
  text_.clear();
  listAttributes_.clear();
  listDelimiter_.reset();
  if (skipSpaces() == 0 || scanFlagList(listAttributes_, "LIST")) return Step::Continue;
  if (skipSpaces() == 0 || atEnd()) return Step::Continue;
  if (peek() == '"') {
    std::string delimiter;
    if (scanQuoted(delimiter) || delimiter.size() != 1) return Step::Continue;
    listDelimiter_ = delimiter[0];
  } else if (!equalsIgnoreCase(readWord(), "NIL")) {
    return Step::Continue;
  }
  return readMailboxName(State::ListAfterName);
}

// SP and a mailbox name (an astring) into text_, then `after`; once the literal is read, for a
// literal name. Anything else leaves the response to be skipped (state_ is SkipRest).
ImapResponseParser::Step ImapResponseParser::readMailboxName(State after) {
  if (skipSpaces() == 0) return Step::Continue;
  if (atEnd()) {
    // A literal name is kept like a literal in response text, up to the same limit; a longer
    // one is skipped unread.
    if (!segLiteral_ || *segLiteral_ > maxInlineLiteral_) return Step::Continue;
    needLiteral(Mode::KeepLiteral);
    state_ = after;
    return Step::Continue;
  }
  if (peek() == '"') {
    if (scanQuoted(text_)) return Step::Continue;
  } else if (text_.assign(readAtom()); text_.empty()) {
    return Step::Continue;
  }
  state_ = after;
  return Step::Continue;
}

// Right after the name (on the segment that follows it, for a literal name): the end of the
// response, or SP and extended data.
ImapResponseParser::Step ImapResponseParser::listAfterName() {
  const bool fits = atEnd() ? !segLiteral_ : peek() == ' ';
  state_ = fits ? State::ListTail : State::SkipRest;
  return Step::Continue;
}

// "* STATUS mailbox (name value ...)" (RFC 3501 7.2.4, RFC 9051 7.3.4) from after "STATUS". The
// name is read like LIST's; whatever does not fit that shape is skipped as Other, so nothing here
// fails the parser.
ImapResponseParser::Step ImapResponseParser::parseStatus() {
  state_ = State::SkipRest;  // until the items are read
  text_.clear();
  return readMailboxName(State::StatusAfterName);
}

// Right after the name (on the segment that follows it, for a literal name): SP and the item
// list, all in this segment. A literal among the items, a value that is not a 64-bit number or
// anything after the list makes the response Other; the items read so far are dropped, so that
// no reader takes a partial list for the whole answer.
ImapResponseParser::Step ImapResponseParser::statusAfterName(ImapEvent& ev) {
  state_ = State::SkipRest;
  if (segLiteral_ || skipSpaces() == 0 || atEnd() || peek() != '(') return Step::Continue;
  ++pos_;
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  for (;;) {
    skipSpaces();
    if (atEnd()) break;
    if (peek() == ')') {
      ++pos_;
      skipSpaces();
      if (!atEnd()) break;
      ev.kind = ImapEvent::Kind::MailboxStatus;
      ev.mailbox.swap(text_);
      finishResponse();
      return Step::Event;
    }
    std::string_view name = readWord();
    if (name.empty() || skipSpaces() == 0) break;
    std::uint64_t value = 0;
    std::size_t digits = 0;
    bool overflow = false;
    while (!atEnd() && isDigit(peek())) {
      auto digit = static_cast<std::uint64_t>(peek() - '0');
      overflow = overflow || value > (kMax - digit) / 10;
      value = value * 10 + digit;
      ++pos_;
      ++digits;
    }
    if (digits == 0 || overflow || (!atEnd() && peek() != ' ' && peek() != ')')) break;
    ev.statusItems.emplace_back(toUpper(name), value);
  }
  ev.statusItems.clear();
  return Step::Continue;
}

}  // namespace popbridge::protocol
