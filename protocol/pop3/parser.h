#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/pop3/command.h"

namespace popbridge::protocol {

// Resumable, byte-level parser for the client side of a POP3 session.
//
// Input may be split anywhere and may hold many pipelined commands (RFC 2449
// PIPELINING): parse() stops after each complete line and the caller calls it
// again with the rest. Only the arguments of the line in progress are kept,
// and never more than the line limit, so memory is bounded whatever the peer
// sends.
//
// Syntax decisions (RFC 1939 asks for a single SPACE between words):
// - A line ends at CRLF or at a bare LF.
// - A CR that is not followed by LF makes the line an error ("Bare CR in
//   command line"), as in nginx: it is never a line end, so it cannot be used
//   to smuggle a second command past a filter that splits on CRLF.
// - Words are separated by runs of SP or HTAB, and leading and trailing blanks
//   are ignored. Being strict about tabs buys nothing, and a tab must never
//   glue "PASS\tsecret" into one word that an error reply would echo back.
// - Verbs are case-insensitive. Arguments are kept as sent, except the AUTH
//   mechanism, which is upper-cased.
// - PASS drops exactly one separator after the verb and keeps the rest of the
//   line verbatim, spaces included.
// - A NUL byte anywhere in a line makes the line an error, except in the USER
//   name and the PASS argument: those are credentials, which the session
//   refuses with "-ERR [AUTH]" whatever login command carried them.
// - Error texts are short printable ASCII, meant for "-ERR <text>", and never
//   contain a PASS or AUTH argument nor a SASL response.
class Pop3Parser {
 public:
  enum class Status { NeedMore, Command, Error };
  struct Result {
    Status status = Status::NeedMore;
    Pop3Command command;
    std::string error;
    // The line passed its limit. The error is returned as soon as the limit
    // is exceeded; the rest of that line, up to and including its LF, is then
    // discarded silently. nginx and Dovecot close the session here.
    bool lineTooLong = false;
  };

  static constexpr std::size_t kMaxCommandLine = 255;  // RFC 2449, including CRLF
  static constexpr std::size_t kMaxSaslLine = 16384;   // SASL responses can be long (RFC 5034)
  // PASS and AUTH lines carry secrets, and OAuth2 tokens or generated
  // passwords run to kilobytes: the same limit as a SASL response, not 255.
  static constexpr std::size_t kMaxCredentialLine = kMaxSaslLine;

  Pop3Parser() = default;

  // Consumes input up to and including the end of at most ONE line and sets
  // `consumed` (bytes of a too-long line that are discarded do not count as a
  // line). Command and Error: consumed > 0, and the caller passes the rest of
  // the input to the next call. NeedMore: all of input was consumed and kept
  // (bounded) for the next call.
  Result parse(std::string_view input, std::size_t& consumed);

  // While on, each line is returned verbatim as a SaslResponse command, with
  // the kMaxSaslLine limit; the session interprets "*" (cancel). The mode is
  // taken when a line starts, so switching it only affects the next line.
  void expectSaslResponse(bool on) { saslMode_ = on; }

  // Drops any partial line and any pending discard of a too-long line. Used
  // after STLS, where everything received before the handshake must be
  // thrown away (RFC 2595). Leaves the SASL mode as it is.
  void reset();

 private:
  enum class State : std::uint8_t {
    LineStart,  // nothing of the current line seen yet, or only blanks
    Verb,
    Blanks,  // between words
    Word,
    RestOfLine,  // PASS argument or SASL response
    AfterCr,
    Skip,     // the line is already an error; waiting for its LF
    Discard,  // after a too-long line: silently dropping up to its LF
  };

  static constexpr std::size_t kMaxVerbEcho = 20;

  void startLine();
  void fail(std::string_view error);
  void endVerb();
  std::size_t maxWords() const;
  bool inCredential() const;
  Result finishLine();
  Result takeError();

  State state_ = State::LineStart;
  bool saslMode_ = false;
  bool lineIsSasl_ = false;
  std::size_t lineLength_ = 0;
  std::size_t lineLimit_ = kMaxCommandLine;
  std::size_t wordCount_ = 0;
  Pop3Verb verb_{};
  std::size_t verbLength_ = 0;
  char verbEcho_[kMaxVerbEcho] = {};
  std::string arg_;
  std::string arg2_;
  std::string error_;
};

}  // namespace popbridge::protocol
