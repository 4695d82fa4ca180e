#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace popbridge::protocol {

// Streaming body writer for RETR and TOP (RFC 1939 section 3): turns a
// message, fed in chunks of any size, into the body of a multi-line reply.
// - Line ends are normalised to CRLF: a bare LF becomes CRLF. A CR that is
//   not followed by LF is passed through as data; it does not start a line.
// - A line that starts with '.' gets a second '.'.
// The output is identical however the input is split, and the state between
// chunks is two flags, so a 50 MB message costs no more memory than a chunk.
//
// Size rule: LIST and STAT report sizes from IMAP RFC822.SIZE, which IMAP
// defines over the CRLF form of the message, the same octets BODY[] returns.
// For a conforming server the normalisation here is therefore a no-op, and
// the octets RETR sends before stuffing equal the advertised size, as RFC
// 1939 requires. Only a non-conforming upstream (bare LFs) makes them differ.
class DotStuffer {
 public:
  // Appends the stuffed form of `in` to `out`.
  void feed(std::string_view in, std::string& out);
  // Ends the reply: completes an unterminated last line (LF after a trailing
  // CR, CRLF otherwise), then appends ".\r\n". The stuffer is then ready for
  // the next message.
  void finish(std::string& out);
  void reset();

 private:
  bool atLineStart_ = true;
  bool lastWasCr_ = false;
};

// TOP n k: forwards the header, the blank line that ends it, then the first k
// lines of the body. The header ends at the first empty line, whatever its
// line ends (CRLF CRLF, LF LF or a mix); a message without an empty line is
// all header and is forwarded whole. Lines are counted by LF, so a last body
// line without a line end counts as a line too (DotStuffer::finish completes
// it). k = 0 gives the header and the blank line only.
class TopLimiter {
 public:
  explicit TopLimiter(std::uint64_t bodyLines);
  // How many leading bytes of `chunk` belong to the reply; the caller drops
  // the rest of the chunk. Returns 0 once done().
  std::size_t take(std::string_view chunk);
  bool done() const { return done_; }

 private:
  enum class HeaderState : std::uint8_t { LineStart, LineStartCr, InLine, Body };

  HeaderState state_ = HeaderState::LineStart;
  std::uint64_t remaining_;
  bool done_ = false;
};

}  // namespace popbridge::protocol
