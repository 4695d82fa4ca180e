#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace popbridge::protocol {

// Everything a response may make the parser hold is bounded by these, so a hostile or broken
// token endpoint (or proxy) costs at most about maxHeaderBytes + maxBodyBytes of memory.
struct HttpResponseLimits {
  // The status line and header section of the final response, plus those of any 1xx interim
  // responses before it (an endless stream of 100 Continue must end somewhere). Also the
  // bound of one chunk-size line and of the trailer section.
  std::size_t maxHeaderBytes = 16 * 1024;
  // The decoded body: Content-Length, the sum of the chunk sizes, or a close-delimited body.
  std::size_t maxBodyBytes = 256 * 1024;
  // Header fields of the final response; also trailer fields.
  std::size_t maxHeaders = 100;
};

// A resumable, sans-I/O parser of one HTTP/1.x response (RFC 9112), for the OAuth2 token
// requests popbridge makes and for the reply to a CONNECT through an HTTP proxy.
//
// Strict where a lenient reading could be steered into a different message (request smuggling
// in reverse: a response read with other framing than the sender meant): obs-fold, bare CR,
// whitespace before a header's colon, a malformed or conflicting Content-Length, a transfer
// coding other than a lone "chunked", and malformed chunk framing are all Errors. Practical
// where nothing depends on it: bare LF ends a line (RFC 9112 2.2), any HTTP/1.minor is read as
// 1.1, the reason phrase may be missing, chunk extensions and trailers are skipped unread.
//
// Not handled because popbridge never asks for them: responses to HEAD, content codings (no
// Accept-Encoding is sent), 101 Switching Protocols (an Error), persistent connections (one
// response per parser; what follows it is the caller's).
class HttpResponseParser {
 public:
  enum class Result { NeedMore, Done, Error };

  // connectResponse: the reply to a CONNECT request, where a 2xx has no body (RFC 9110 9.3.6).
  explicit HttpResponseParser(HttpResponseLimits limits = {}, bool connectResponse = false);

  // Consumes bytes; `consumed` says how many were used. NeedMore consumes everything given;
  // Done stops right after the response, and bytes after it are the caller's (e.g. TLS records
  // after a CONNECT's 200). Once Done or Error, feed() consumes nothing and returns the same.
  Result feed(std::string_view data, std::size_t& consumed);

  // The peer closed: completes a close-delimited body (no Content-Length, not chunked), else
  // Error ("connection closed before the response was complete"). Done and Error stay.
  Result eof();

  // Valid once the final (non-1xx) status line has been read, in practice after Done.
  int status() const { return status_; }
  const std::string& reason() const { return reason_; }
  // Case-insensitive; the first occurrence, its value without surrounding whitespace.
  std::optional<std::string_view> header(std::string_view name) const;
  const std::string& body() const { return body_; }
  // Human-readable, never echoes more than ~60 bytes of input; empty unless Error.
  const std::string& error() const { return error_; }

 private:
  enum class State : std::uint8_t {
    StatusLine,
    HeaderLine,
    FixedBody,    // Content-Length bytes left in remaining_
    CloseBody,    // until eof()
    ChunkSize,    // hex digits of a chunk-size line
    ChunkExt,     // the rest of a chunk-size line, skipped
    ChunkData,    // remaining_ bytes of chunk data
    ChunkDataCr,  // the CRLF after chunk data
    ChunkDataLf,  // the LF after chunk data's CR
    TrailerLine,  // a trailer field line, skipped
    Done,
    Error,
  };

  enum class Line : std::uint8_t { Complete, Partial, Failed };

  bool fail(std::string message);
  // Moves head bytes up to and including the next LF into line_, within maxHeaderBytes for all
  // heads together; Complete leaves line_ without its line end.
  Line takeLine(std::string_view data, std::size_t& pos);
  bool parseStatusLine();
  bool parseHeaderLine();
  bool endOfHead();
  bool chooseBodyFraming();
  bool chunkSizeByte(char c);
  bool chunkExtByte(char c);
  bool trailerByte(char c);

  HttpResponseLimits limits_;
  bool connectResponse_;
  State state_ = State::StatusLine;
  std::string error_;

  std::string line_;
  bool lineCr_ = false;        // the previous byte of a skipped line was a CR
  std::size_t headBytes_ = 0;  // status lines and headers of all heads read so far
  std::size_t lineBytes_ = 0;  // chunk-size line bytes
  std::size_t trailerBytes_ = 0;
  std::size_t trailerFields_ = 0;
  bool trailerLineEmpty_ = true;
  std::uint64_t remaining_ = 0;
  bool sawChunkDigit_ = false;
  bool chunkExtSpace_ = false;  // only whitespace so far after the chunk size

  int status_ = 0;
  int minorVersion_ = 1;
  std::string reason_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string body_;
};

}  // namespace popbridge::protocol
