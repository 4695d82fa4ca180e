#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace popbridge::protocol {

struct HttpRequestLimits {
  // The request line and the header section together, line ends included.
  std::size_t maxHeadBytes = 8 * 1024;
  std::size_t maxHeaders = 64;
};

// A resumable, sans-I/O parser of the head of one HTTP/1.x request (RFC 9112), for the metrics
// listener: GET and HEAD of a path, nothing else. Strict, because nothing needs leniency: the
// request line is "METHOD origin-form HTTP/1.x", obs-fold, bare CR, control bytes, whitespace
// before a header's colon, a request body, and HTTP/1.1 without Host are all errors. Bare LF ends
// a line (RFC 9112 2.2) and empty lines before the request line are skipped (2.2 too).
//
// Each error carries the status to answer with: 400 malformed, 405 a method other than GET or
// HEAD, 431 a head over the limits, 505 an HTTP version other than 1.0 and 1.1. The caller
// answers and closes; there is no keep-alive, so what follows the head is never read.
class HttpRequestParser {
 public:
  enum class Result { NeedMore, Done, Error };

  explicit HttpRequestParser(HttpRequestLimits limits = {}) : limits_(limits) {}

  // Consumes bytes up to the end of the head (Done) or the byte that made it wrong (Error);
  // NeedMore consumes everything. Once Done or Error, consumes nothing and returns the same.
  Result feed(std::string_view data, std::size_t& consumed);

  const std::string& method() const { return method_; }
  // The request target as sent, e.g. "/metrics?x=1".
  const std::string& target() const { return target_; }
  // The target without its query.
  std::string_view path() const;
  // 0 or 1: HTTP/1.0 or HTTP/1.1.
  int minorVersion() const { return minor_; }
  // Case-insensitive; the first occurrence, without surrounding whitespace.
  std::optional<std::string_view> header(std::string_view name) const;

  // Set with Error: the status to answer with, and a short reason that never quotes input.
  int errorStatus() const { return errorStatus_; }
  const std::string& error() const { return error_; }

 private:
  enum class State : std::uint8_t { RequestLine, HeaderLine, Done, Error };

  Result fail(int status, std::string reason);
  Result requestLine(std::string_view line);
  Result headerLine(std::string_view line);
  Result finishHead();

  HttpRequestLimits limits_;
  State state_ = State::RequestLine;
  std::size_t headBytes_ = 0;
  std::string line_;
  std::string method_;
  std::string target_;
  int minor_ = 1;
  std::vector<std::pair<std::string, std::string>> headers_;
  int errorStatus_ = 0;
  std::string error_;
};

}  // namespace popbridge::protocol
