#include "protocol/pop3/dot_stuffer.h"

#include <cstring>

namespace popbridge::protocol {

namespace {

void appendRange(std::string& out, const char* from, const char* to) {
  out.append(from, static_cast<std::size_t>(to - from));
}

const char* findLf(const char* from, const char* end) {
  return static_cast<const char*>(std::memchr(from, '\n', static_cast<std::size_t>(end - from)));
}

}  // namespace

void DotStuffer::feed(std::string_view in, std::string& out) {
  if (in.empty()) return;
  const char* const begin = in.data();
  const char* const end = begin + in.size();
  // Conforming input only grows by the odd stuffed dot; bare-LF input grows
  // further through the string's own geometric growth.
  out.reserve(out.size() + in.size() + in.size() / 64 + 8);

  // Bytes from `span` on are copied in one append whenever something has to
  // be inserted, so CRLF input with no leading dots is a single memcpy.
  const char* span = begin;
  const char* p = begin;
  if (atLineStart_ && *p == '.') out.push_back('.');
  for (;;) {
    const char* lf = findLf(p, end);
    if (lf == nullptr) break;
    const bool crBefore = lf == begin ? lastWasCr_ : lf[-1] == '\r';
    if (!crBefore) {
      appendRange(out, span, lf);
      out.append("\r\n", 2);
      span = lf + 1;
    }
    p = lf + 1;
    if (p == end) {
      appendRange(out, span, end);
      atLineStart_ = true;
      lastWasCr_ = false;
      return;
    }
    if (*p == '.') {
      appendRange(out, span, p);
      out.push_back('.');
      span = p;
    }
  }
  appendRange(out, span, end);
  atLineStart_ = false;
  lastWasCr_ = end[-1] == '\r';
}

void DotStuffer::finish(std::string& out) {
  if (!atLineStart_) out.append(lastWasCr_ ? "\n" : "\r\n");
  out.append(".\r\n");
  reset();
}

void DotStuffer::reset() {
  atLineStart_ = true;
  lastWasCr_ = false;
}

TopLimiter::TopLimiter(std::uint64_t bodyLines) : remaining_(bodyLines) {}

std::size_t TopLimiter::take(std::string_view chunk) {
  if (done_ || chunk.empty()) return 0;
  const char* const begin = chunk.data();
  const char* const end = begin + chunk.size();
  const char* p = begin;

  // The header is short, so it is walked line by line; only line starts
  // need a look at the bytes themselves.
  while (state_ != HeaderState::Body && p < end) {
    switch (state_) {
      case HeaderState::InLine: {
        const char* lf = findLf(p, end);
        if (lf == nullptr) return chunk.size();
        p = lf + 1;
        state_ = HeaderState::LineStart;
        break;
      }
      case HeaderState::LineStart:
      case HeaderState::LineStartCr: {
        const char c = *p++;
        if (c == '\n') {
          state_ = HeaderState::Body;
        } else if (c == '\r' && state_ == HeaderState::LineStart) {
          state_ = HeaderState::LineStartCr;
        } else {
          state_ = HeaderState::InLine;
        }
        break;
      }
      case HeaderState::Body:
        break;
    }
  }
  if (state_ != HeaderState::Body) return chunk.size();

  while (remaining_ > 0) {
    const char* lf = findLf(p, end);
    if (lf == nullptr) return chunk.size();
    p = lf + 1;
    --remaining_;
  }
  done_ = true;
  return static_cast<std::size_t>(p - begin);
}

}  // namespace popbridge::protocol
