#include "protocol/http/request_parser.h"

#include <algorithm>

#include "protocol/text.h"

namespace popbridge::protocol {
namespace {

// RFC 9110 5.6.2 tchar.
bool isTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool isToken(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return isTokenChar(c); });
}

// field-value bytes: VCHAR, SP, HTAB and obs-text.
bool isFieldValueChar(unsigned char c) {
  return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
}

std::string_view trimWhitespace(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

HttpRequestParser::Result HttpRequestParser::fail(int status, std::string reason) {
  state_ = State::Error;
  errorStatus_ = status;
  error_ = std::move(reason);
  line_.clear();
  return Result::Error;
}

HttpRequestParser::Result HttpRequestParser::feed(std::string_view data, std::size_t& consumed) {
  consumed = 0;
  if (state_ == State::Done) return Result::Done;
  if (state_ == State::Error) return Result::Error;
  while (consumed < data.size()) {
    const std::string_view rest = data.substr(consumed);
    const std::size_t lf = rest.find('\n');
    const std::size_t take = lf == std::string_view::npos ? rest.size() : lf + 1;
    if (headBytes_ + take > limits_.maxHeadBytes) {
      consumed += limits_.maxHeadBytes - headBytes_;
      return fail(431, "request head over " + std::to_string(limits_.maxHeadBytes) + " bytes");
    }
    headBytes_ += take;
    consumed += take;
    line_.append(rest.substr(0, take));
    if (lf == std::string_view::npos) break;
    std::string_view line(line_);
    line.remove_suffix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\r') != std::string_view::npos) return fail(400, "bare CR in the request head");
    Result result = state_ == State::RequestLine ? requestLine(line) : headerLine(line);
    line_.clear();
    if (result != Result::NeedMore) return result;
  }
  return Result::NeedMore;
}

HttpRequestParser::Result HttpRequestParser::requestLine(std::string_view line) {
  if (line.empty()) return Result::NeedMore;  // RFC 9112 2.2: empty lines before it are skipped
  const std::size_t firstSpace = line.find(' ');
  const std::size_t lastSpace = line.rfind(' ');
  if (firstSpace == std::string_view::npos || firstSpace == lastSpace) {
    return fail(400, "malformed request line");
  }
  const std::string_view method = line.substr(0, firstSpace);
  const std::string_view target = line.substr(firstSpace + 1, lastSpace - firstSpace - 1);
  const std::string_view version = line.substr(lastSpace + 1);
  if (!isToken(method)) return fail(400, "malformed method");
  if (target.empty() || target.front() != '/' ||
      !std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return fail(400, "malformed request target");
  }
  if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return fail(400, "malformed HTTP version");
  }
  if (version[5] != '1' || version[7] > '1') return fail(505, "only HTTP/1.0 and HTTP/1.1");
  method_ = std::string(method);
  target_ = std::string(target);
  minor_ = version[7] - '0';
  if (method_ != "GET" && method_ != "HEAD") return fail(405, "only GET and HEAD");
  state_ = State::HeaderLine;
  return Result::NeedMore;
}

HttpRequestParser::Result HttpRequestParser::headerLine(std::string_view line) {
  if (line.empty()) return finishHead();
  if (line.front() == ' ' || line.front() == '\t') return fail(400, "obsolete line folding");
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return fail(400, "header line without a colon");
  const std::string_view name = line.substr(0, colon);
  if (!isToken(name)) return fail(400, "malformed header name");
  const std::string_view value = line.substr(colon + 1);
  if (!std::all_of(value.begin(), value.end(),
                   [](char c) { return isFieldValueChar(static_cast<unsigned char>(c)); })) {
    return fail(400, "control character in a header value");
  }
  if (headers_.size() >= limits_.maxHeaders) {
    return fail(431, "more than " + std::to_string(limits_.maxHeaders) + " header fields");
  }
  headers_.emplace_back(std::string(name), std::string(trimWhitespace(value)));
  return Result::NeedMore;
}

HttpRequestParser::Result HttpRequestParser::finishHead() {
  if (header("Transfer-Encoding")) return fail(400, "request bodies are not accepted");
  if (auto length = header("Content-Length"); length && *length != "0") {
    return fail(400, "request bodies are not accepted");
  }
  if (minor_ == 1) {
    std::size_t hosts = 0;
    for (const auto& [name, value] : headers_) hosts += equalsIgnoreCase(name, "Host") ? 1 : 0;
    if (hosts != 1) return fail(400, "HTTP/1.1 needs exactly one Host header");
  }
  state_ = State::Done;
  return Result::Done;
}

std::string_view HttpRequestParser::path() const {
  std::string_view target(target_);
  return target.substr(0, target.find('?'));
}

std::optional<std::string_view> HttpRequestParser::header(std::string_view name) const {
  for (const auto& [key, value] : headers_) {
    if (equalsIgnoreCase(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

}  // namespace popbridge::protocol
