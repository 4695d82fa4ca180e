#include "protocol/imap/parser.h"
#include "protocol/imap/parser_chars.h"
#include "protocol/text.h"

// The FETCH response: the items popbridge reads, body values streamed as events, and every other
// item skipped however deeply nested.

namespace popbridge::protocol {

using namespace parser_chars;

namespace {

constexpr std::size_t kMaxObjectId = 255;

bool isObjectIdChar(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || isDigit(c) || c == '_' || c == '-';
}

}  // namespace

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
    std::size_t close = findCloseBracket(std::string_view(seg_).substr(0, end_), pos_);
    if (close == std::string_view::npos) {
      pos_ = end_;
      return fail("expected ']' closing the section");
    }
    assignUpper(section_, std::string_view(seg_).substr(pos_, close - pos_));
    pos_ = close + 1;
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
  } else if (name == "EMAILID") {
    // RFC 8474: "(" objectid ")", objectid = 1*255(ALPHA / DIGIT / "_" / "-").
    if (!expectChar('(', "opening the EMAILID value")) return Step::Error;
    skipSpaces();
    const std::size_t idStart = pos_;
    while (pos_ < end_ && isObjectIdChar(peek())) ++pos_;
    if (pos_ == idStart) return fail("expected an EMAILID objectid");
    if (pos_ - idStart > kMaxObjectId) {
      pos_ = idStart;
      return fail("an EMAILID objectid longer than 255 characters");
    }
    std::string emailId(seg_, idStart, pos_ - idStart);
    skipSpaces();
    if (!expectChar(')', "closing the EMAILID value")) return Step::Error;
    fetch_.emailId = std::move(emailId);
    expectDelimiter_ = true;
    return Step::Continue;
  } else if (name == "X-GM-MSGID") {
    std::uint64_t id = 0;
    if (!readNumber64(id, "an X-GM-MSGID")) return Step::Error;
    fetch_.gmMsgId = id;
    expectDelimiter_ = true;
    return Step::Continue;
  }
  // ENVELOPE, BODYSTRUCTURE, INTERNALDATE, BINARY.SIZE, X-GM-LABELS, X-GM-THRID, THREADID, ...:
  // skipped.
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
  if (equalsIgnoreCase(readWord(), "NIL")) {
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
