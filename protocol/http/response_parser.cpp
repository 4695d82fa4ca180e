#include "protocol/http/response_parser.h"

#include <algorithm>
#include <limits>

#include "protocol/http/excerpt.h"
#include "protocol/text.h"

namespace popbridge::protocol {

using http_detail::excerpt;

namespace {

bool isTchar(char c) {
  const auto u = static_cast<unsigned char>(c);
  if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool isWhitespace(char c) {
  return c == ' ' || c == '\t';
}

// Field values and reason phrases: VCHAR, obs-text, SP and HTAB (RFC 9110 5.5, RFC 9112 4).
bool isTextByte(char c) {
  return c == '\t' || !isAsciiControl(c);
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isWhitespace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isWhitespace(s.back())) s.remove_suffix(1);
  return s;
}

// The elements of a comma-separated list (RFC 9110 5.6.1), trimmed, empty ones dropped as the
// RFC asks of recipients.
template <typename F>
void forEachListElement(std::string_view value, F&& f) {
  while (true) {
    const std::size_t comma = value.find(',');
    const std::string_view element = trim(value.substr(0, comma));
    if (!element.empty()) f(element);
    if (comma == std::string_view::npos) return;
    value.remove_prefix(comma + 1);
  }
}

std::string bodyTooLarge(std::size_t limit) {
  return "response body exceeds " + std::to_string(limit) + " bytes";
}

std::string describeByte(char c) {
  return excerpt(std::string_view(&c, 1));
}

}  // namespace

HttpResponseParser::HttpResponseParser(HttpResponseLimits limits, bool connectResponse)
    : limits_(limits), connectResponse_(connectResponse) {}

bool HttpResponseParser::fail(std::string message) {
  error_ = std::move(message);
  state_ = State::Error;
  // Nothing of a broken response is meant to be used.
  body_.clear();
  line_.clear();
  return false;
}

std::optional<std::string_view> HttpResponseParser::header(std::string_view name) const {
  for (const auto& [key, value] : headers_) {
    if (equalsIgnoreCase(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

HttpResponseParser::Result HttpResponseParser::feed(std::string_view data, std::size_t& consumed) {
  consumed = 0;
  std::size_t pos = 0;
  while (pos < data.size() && state_ != State::Done && state_ != State::Error) {
    switch (state_) {
      case State::StatusLine:
      case State::HeaderLine: {
        const Line line = takeLine(data, pos);
        if (line == Line::Partial) continue;
        if (line == Line::Complete) {
          if (state_ == State::StatusLine) {
            parseStatusLine();
          } else {
            parseHeaderLine();
          }
          line_.clear();
        }
        break;
      }
      case State::FixedBody:
      case State::ChunkData: {
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size() - pos));
        body_.append(data.substr(pos, n));
        pos += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          state_ = state_ == State::FixedBody ? State::Done : State::ChunkDataCr;
        }
        break;
      }
      case State::CloseBody: {
        const std::size_t n = data.size() - pos;
        if (n > limits_.maxBodyBytes - body_.size()) {
          fail(bodyTooLarge(limits_.maxBodyBytes));
          break;
        }
        body_.append(data.substr(pos));
        pos = data.size();
        break;
      }
      case State::ChunkSize:
        if (chunkSizeByte(data[pos])) ++pos;
        break;
      case State::ChunkExt:
        if (chunkExtByte(data[pos])) ++pos;
        break;
      case State::ChunkDataCr:
        if (data[pos] == '\r') {
          state_ = State::ChunkDataLf;
        } else if (data[pos] == '\n') {
          state_ = State::ChunkSize;
        } else {
          fail("expected CRLF after chunk data, found " + describeByte(data[pos]));
          break;
        }
        ++pos;
        break;
      case State::ChunkDataLf:
        if (data[pos] != '\n') {
          fail("expected CRLF after chunk data, found CR and " + describeByte(data[pos]));
          break;
        }
        state_ = State::ChunkSize;
        ++pos;
        break;
      case State::TrailerLine:
        if (trailerByte(data[pos])) ++pos;
        break;
      case State::Done:
      case State::Error:
        break;
    }
  }
  consumed = pos;
  if (state_ == State::Done) return Result::Done;
  if (state_ == State::Error) return Result::Error;
  return Result::NeedMore;
}

HttpResponseParser::Result HttpResponseParser::eof() {
  if (state_ == State::CloseBody) state_ = State::Done;
  if (state_ == State::Done) return Result::Done;
  if (state_ != State::Error) fail("connection closed before the response was complete");
  return Result::Error;
}

HttpResponseParser::Line HttpResponseParser::takeLine(std::string_view data, std::size_t& pos) {
  const std::size_t lf = data.find('\n', pos);
  const std::size_t end = lf == std::string_view::npos ? data.size() : lf + 1;
  const std::size_t n = end - pos;
  if (n > limits_.maxHeaderBytes - headBytes_) {
    fail("response headers exceed " + std::to_string(limits_.maxHeaderBytes) + " bytes");
    return Line::Failed;
  }
  headBytes_ += n;
  line_.append(data.substr(pos, n));
  pos = end;
  if (lf == std::string_view::npos) return Line::Partial;
  line_.pop_back();
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  // A bare CR is read differently by different implementations (RFC 9112 2.2).
  if (line_.find('\r') != std::string::npos) {
    fail(std::string("bare CR in the response ") +
         (state_ == State::StatusLine ? "status line" : "headers"));
    return Line::Failed;
  }
  return Line::Complete;
}

bool HttpResponseParser::parseStatusLine() {
  const std::string_view line = line_;
  static constexpr std::string_view kHttp1 = "HTTP/1.";
  if (!line.starts_with("HTTP/")) return fail("invalid status line " + excerpt(line));
  // HTTP/1.minor, one digit each (RFC 9112 2.3); a later 1.x is read as the 1.1 it extends.
  if (!line.starts_with(kHttp1) || line.size() < 8 || !isAsciiDigit(line[7]) ||
      (line.size() > 8 && isAsciiDigit(line[8]))) {
    return fail("unsupported HTTP version in status line " + excerpt(line));
  }
  if (line.size() < 9 || line[8] != ' ') return fail("invalid status line " + excerpt(line));
  minorVersion_ = line[7] - '0';
  const std::string_view code = line.substr(9, 3);
  const std::string_view rest = line.substr(std::min<std::size_t>(line.size(), 12));
  // The SP before an empty reason is often left out, and nothing else could follow the code.
  if (code.size() != 3 || !isAllDigits(code) || (!rest.empty() && rest.front() != ' ')) {
    return fail("invalid status line " + excerpt(line));
  }
  const int status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  if (status < 100 || status > 599) return fail("invalid status code " + excerpt(code));
  if (status == 101) return fail("unexpected 101 Switching Protocols (no upgrade was asked for)");
  const std::string_view reason = rest.empty() ? rest : rest.substr(1);
  if (!std::all_of(reason.begin(), reason.end(), isTextByte)) {
    return fail("control byte in the reason phrase " + excerpt(reason));
  }
  status_ = status;
  reason_.assign(reason);
  state_ = State::HeaderLine;
  return true;
}

bool HttpResponseParser::parseHeaderLine() {
  const std::string_view line = line_;
  if (line.empty()) return endOfHead();
  if (isWhitespace(line.front())) {
    // obs-fold (RFC 9112 5.2), or whitespace before the first field, which could hide a field
    // from one reader and not another (RFC 9112 2.2).
    return fail("obsolete line folding in the response headers");
  }
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return fail("header line without a colon " + excerpt(line));
  if (colon == 0) return fail("empty header name in " + excerpt(line));
  const std::string_view name = line.substr(0, colon);
  if (isWhitespace(name.back())) {
    return fail("whitespace before the colon in header " + excerpt(trim(name)));
  }
  if (!std::all_of(name.begin(), name.end(), isTchar)) {
    return fail("invalid header name " + excerpt(name));
  }
  const std::string_view value = trim(line.substr(colon + 1));
  if (!std::all_of(value.begin(), value.end(), isTextByte)) {
    return fail("control byte in the value of header " + excerpt(name));
  }
  if (headers_.size() >= limits_.maxHeaders) {
    return fail("response has more than " + std::to_string(limits_.maxHeaders) + " header fields");
  }
  headers_.emplace_back(name, value);
  return true;
}

bool HttpResponseParser::endOfHead() {
  if (status_ >= 100 && status_ < 200) {
    // An interim response (100 Continue, 103 Early Hints): the final one follows. Its header
    // bytes stay counted, so a stream of them ends at maxHeaderBytes.
    headers_.clear();
    status_ = 0;
    reason_.clear();
    state_ = State::StatusLine;
    return true;
  }
  return chooseBodyFraming();
}

// RFC 9112 6.3, in its order.
bool HttpResponseParser::chooseBodyFraming() {
  // A tunnel starts right after the head; any framing fields are meaningless (RFC 9110 9.3.6).
  if ((connectResponse_ && status_ >= 200 && status_ < 300) || status_ == 204 || status_ == 304) {
    state_ = State::Done;
    return true;
  }

  bool hasTransferEncoding = false;
  bool chunked = false;
  std::size_t codings = 0;
  std::string_view unsupported;
  bool hasContentLength = false;
  for (const auto& [name, value] : headers_) {
    if (equalsIgnoreCase(name, "Transfer-Encoding")) {
      hasTransferEncoding = true;
      forEachListElement(value, [&](std::string_view coding) {
        ++codings;
        if (equalsIgnoreCase(coding, "chunked")) {
          chunked = true;
        } else if (unsupported.empty()) {
          unsupported = coding;
        }
      });
    } else if (equalsIgnoreCase(name, "Content-Length")) {
      hasContentLength = true;
    }
  }

  if (hasTransferEncoding) {
    if (minorVersion_ == 0) {
      // RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
      return fail("Transfer-Encoding in an HTTP/1.0 response");
    }
    // popbridge sends no TE or Accept-Encoding, so only plain chunked can be meant; anything
    // else would hand a compressed or double-chunked body to a JSON parser.
    if (!unsupported.empty()) return fail("unsupported Transfer-Encoding " + excerpt(unsupported));
    if (codings != 1 || !chunked) return fail("invalid Transfer-Encoding");
    // Chunked wins over any Content-Length (RFC 9112 6.3 item 3).
    state_ = State::ChunkSize;
    return true;
  }

  if (hasContentLength) {
    std::optional<std::uint64_t> length;
    for (const auto& [name, value] : headers_) {
      if (!equalsIgnoreCase(name, "Content-Length")) continue;
      bool ok = true;
      std::string_view bad = value;
      std::size_t elements = 0;
      // "42, 42" and repeated fields are one length sent twice (RFC 9110 8.6).
      forEachListElement(value, [&](std::string_view element) {
        ++elements;
        const auto n = isAllDigits(element) ? parseDecimal(element) : std::nullopt;
        if (!n) {
          if (ok) bad = element;
          ok = false;
        } else if (ok && length && *length != *n) {
          ok = false;
          bad = {};
        } else if (ok) {
          length = n;
        }
      });
      if (elements == 0) return fail("empty Content-Length");
      if (!ok) {
        return fail(bad.empty() ? std::string("conflicting Content-Length values")
                                : "invalid Content-Length " + excerpt(bad));
      }
    }
    if (*length > limits_.maxBodyBytes) return fail(bodyTooLarge(limits_.maxBodyBytes));
    remaining_ = *length;
    body_.reserve(static_cast<std::size_t>(remaining_));
    state_ = remaining_ == 0 ? State::Done : State::FixedBody;
    return true;
  }

  state_ = State::CloseBody;
  return true;
}

bool HttpResponseParser::chunkSizeByte(char c) {
  const int digit = hexValue(c);
  if (digit < 0) {
    if (!sawChunkDigit_) return fail("expected a chunk size, found " + describeByte(c));
    state_ = State::ChunkExt;
    chunkExtSpace_ = true;
    return false;  // the same byte, looked at as the line's rest
  }
  if (++lineBytes_ > limits_.maxHeaderBytes) {
    return fail("chunk size line exceeds " + std::to_string(limits_.maxHeaderBytes) + " bytes");
  }
  sawChunkDigit_ = true;
  // Bounded by what the body may still take, which also rules out overflow.
  const std::uint64_t room = limits_.maxBodyBytes - body_.size();
  if (static_cast<std::uint64_t>(digit) > room ||
      remaining_ > (room - static_cast<std::uint64_t>(digit)) / 16) {
    return fail(bodyTooLarge(limits_.maxBodyBytes));
  }
  remaining_ = remaining_ * 16 + static_cast<std::uint64_t>(digit);
  return true;
}

bool HttpResponseParser::chunkExtByte(char c) {
  if (++lineBytes_ > limits_.maxHeaderBytes) {
    return fail("chunk size line exceeds " + std::to_string(limits_.maxHeaderBytes) + " bytes");
  }
  if (lineCr_ && c != '\n') return fail("bare CR in a chunk size line");
  if (c == '\r') {
    lineCr_ = true;
    return true;
  }
  if (c == '\n') {
    lineCr_ = false;
    lineBytes_ = 0;
    sawChunkDigit_ = false;
    if (remaining_ == 0) {
      state_ = State::TrailerLine;
      trailerLineEmpty_ = true;
    } else {
      state_ = State::ChunkData;
    }
    return true;
  }
  if (chunkExtSpace_) {
    if (c == ';') {
      chunkExtSpace_ = false;
    } else if (!isWhitespace(c)) {
      return fail("unexpected " + describeByte(c) + " after the chunk size");
    }
    return true;
  }
  // Extensions are ignored (RFC 9112 7.1.1) but still may not smuggle in controls.
  if (!isTextByte(c)) return fail("control byte in a chunk extension");
  return true;
}

// Trailer fields are skipped unread: nothing popbridge uses may arrive in them.
bool HttpResponseParser::trailerByte(char c) {
  if (++trailerBytes_ > limits_.maxHeaderBytes) {
    return fail("response trailers exceed " + std::to_string(limits_.maxHeaderBytes) + " bytes");
  }
  if (lineCr_ && c != '\n') return fail("bare CR in the response trailers");
  if (c == '\r') {
    lineCr_ = true;
    return true;
  }
  if (c == '\n') {
    lineCr_ = false;
    if (trailerLineEmpty_) {
      state_ = State::Done;
      return true;
    }
    if (++trailerFields_ > limits_.maxHeaders) {
      return fail("response has more than " + std::to_string(limits_.maxHeaders) +
                  " trailer fields");
    }
    trailerLineEmpty_ = true;
    return true;
  }
  if (trailerLineEmpty_ && isWhitespace(c)) {
    return fail("obsolete line folding in the response trailers");
  }
  if (!isTextByte(c)) return fail("control byte in the response trailers");
  trailerLineEmpty_ = false;
  return true;
}

}  // namespace popbridge::protocol
