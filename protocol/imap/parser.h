#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace popbridge::protocol {

enum class ImapStatus : std::uint8_t { Ok, No, Bad, PreAuth, Bye };

// "OK", "NO", "BAD", "PREAUTH", "BYE".
std::string_view imapStatusName(ImapStatus status);

// "[UIDVALIDITY 1234]" -> {"UIDVALIDITY", "1234"}. name is upper-cased, text is the rest inside
// the brackets, verbatim.
struct ImapResponseCode {
  std::string name;
  std::string text;
};

struct FetchAttributes {
  std::optional<std::uint32_t> uid;
  std::optional<std::uint64_t> rfc822Size;
  std::optional<std::vector<std::string>> flags;  // as sent, e.g. "\\Deleted", "$Label"
  std::optional<std::uint64_t> modseq;
  // RFC 8474 EMAILID: the objectid inside the parentheses, as sent (1..255 of ALPHA, DIGIT,
  // "_", "-"; anything else is a parse error).
  std::optional<std::string> emailId;
  // Gmail's X-GM-MSGID: an unsigned 64-bit decimal.
  std::optional<std::uint64_t> gmMsgId;
  void clear();
};

struct ImapEvent {
  enum class Kind : std::uint8_t {
    Tagged,        // tag + status + code + text
    Status,        // untagged "* OK|NO|BAD|PREAUTH|BYE [code] text"; status says which
    Capability,    // "* CAPABILITY ..." -> words, upper-cased
    Exists,        // number
    Recent,        // number
    Expunge,       // number
    Flags,         // "* FLAGS (...)" -> words, as sent
    Fetch,         // "* n FETCH (...)" complete: number + all fetch attributes
    BodyBegin,     // body item inside a FETCH: number, fetch (so far), section, origin, literalSize
    BodyChunk,     // number, data
    BodyEnd,       // number
    Continuation,  // "+ text": code (if the text starts with one) and text
    List,          // "* LIST (attributes) delimiter mailbox": words, delimiter, mailbox
    Search,        // "* SEARCH 3 7 12" (RFC 3501 7.2.5): numbers, possibly none
    MailboxStatus,  // "* STATUS mailbox (UIDVALIDITY 7 MESSAGES 3)": mailbox, statusItems
    Other           // any other untagged response (ESEARCH, VANISHED, odd STATUS, ...)
  };
  Kind kind = Kind::Other;
  std::string tag;
  ImapStatus status = ImapStatus::Ok;
  std::optional<ImapResponseCode> code;
  // Tagged/Status/Continuation: the human-readable text after the code. Other: the response
  // keyword, upper-cased (empty when the response has none).
  std::string text;
  // Exists/Recent/Expunge: the count or message number. Fetch/Body*: the message sequence
  // number. Other: the number of a numbered response ("* 3 XFOO"), else 0 (also when it does
  // not fit in 32 bits).
  std::uint32_t number = 0;
  // Capability; Flags; Status/Tagged with a CAPABILITY code (the code's words, upper-cased);
  // List: the mailbox attributes, as sent ("\\HasNoChildren", "\\Trash").
  std::vector<std::string> words;
  // List, MailboxStatus: the mailbox name exactly as the server sent it, quoting and literal
  // framing removed
  // (modified UTF-7, or UTF-8 after UTF8=ACCEPT), to be sent back as it is; at most
  // maxInlineLiteral bytes as a literal, else within maxLine. List: the delimiter; none for NIL.
  std::string mailbox;
  std::optional<char> delimiter;
  FetchAttributes fetch;
  // Search: the numbers as sent (UIDs after UID SEARCH). They all came in one line, so there are
  // at most maxLine / 2 of them.
  std::vector<std::uint32_t> numbers;
  // MailboxStatus: each status item's name, upper-cased, and its value, in the order sent. They
  // all came in one line, so there are at most maxLine / 4 of them.
  std::vector<std::pair<std::string, std::uint64_t>> statusItems;
  // BodyBegin: the section, upper-cased: "BODY[]" -> "", "BODY[HEADER]" -> "HEADER",
  // "BODY[TEXT]<0>" -> "TEXT" with origin 0, "RFC822" -> "", "RFC822.HEADER" -> "HEADER",
  // "RFC822.TEXT" -> "TEXT", "BINARY[1.2]" -> "1.2".
  std::string section;
  std::optional<std::uint64_t> origin;
  // BodyBegin: the size of the body value in bytes (literal size, decoded quoted-string length,
  // or 0 for NIL). The BodyChunk data that follow add up to exactly this.
  std::uint64_t literalSize = 0;
  // BodyChunk: valid only until the next parse() call. For a literal it points straight into
  // the input given to parse(); for a quoted-string body into the parser's own buffer.
  std::string_view data;
  void clear();  // keeps capacity
};

// A resumable, sans-I/O parser of IMAP server responses (RFC 3501, RFC 9051 and the extensions
// popbridge uses), turning bytes into ImapEvents.
//
// How it works: the input is framed byte by byte into line segments; a segment ends at LF, and
// a response continues past it only when the segment ends with a literal header "{n}" (or
// literal8 "~{n}"). A segment is interpreted only once complete, so input may be split anywhere
// without the grammar ever seeing half a token; the grammar itself is a state machine whose only
// memory across segments is its state, an explicit stack of open parenthesised lists, and the
// attributes gathered so far. Body values in FETCH responses are never assembled: literal bytes
// are handed out as BodyChunk views into the caller's input, so a 50 MB body costs one event
// per input chunk and no copying. Literals in response text are buffered, and literals inside
// unknown FETCH items skipped, only up to maxInlineLiteral bytes; the non-literal bytes of one
// response are limited to maxLine in total, so memory per parser is bounded by about
// maxLine + maxInlineLiteral.
//
// Strict where it matters, lenient elsewhere: tagged responses, continuations, untagged status
// responses and the untagged CAPABILITY, FLAGS, EXISTS, EXPUNGE and FETCH responses, which
// popbridge acts on, must follow the grammar, and a violation is an Error (in FETCH, that holds
// for the items popbridge reads: UID, RFC822.SIZE, FLAGS, MODSEQ, EMAILID, X-GM-MSGID and the
// body values). LIST, SEARCH and STATUS are read when well-formed and otherwise skipped as Other:
// popbridge only looks in LIST for a folder, and not finding one has a safe fallback (RFC 5258
// extended data after the name is skipped); a STATUS item whose value is not a number (RFC 9051
// allows only numbers, some servers send other things) makes the whole response Other. Any
// other untagged response (unknown or unrequested, such as ESEARCH or VANISHED, or a known keyword
// with odd content, such as "* 3 RECENT junk") is skipped as one Other event, whatever it contains,
// and parsing goes on with the next response; its literals are counted off the input without being
// buffered, whatever their size. Only what breaks the framing itself (a literal size beyond 64
// bits, a line beyond maxLine) is an Error there.
//
// The framing treats any line ending in "{n}" as announcing a literal, as IMAP clients commonly
// do, including in response text; no server puts such text at the end of a line otherwise.
class ImapResponseParser {
 public:
  enum class Status { NeedMore, Event, Error };

  explicit ImapResponseParser(std::size_t maxLine = 64 * 1024,
                              std::size_t maxInlineLiteral = 64 * 1024);

  // Consumes input until exactly one event is complete (returns Event; call again with the rest
  // of the input, even if that is empty, to get the events that follow) or all input is
  // consumed (returns NeedMore, consumed == input.size()). After Error, error() says why and
  // the parser stays dead: the connection must be dropped.
  Status parse(std::string_view input, std::size_t& consumed, ImapEvent& event);

  const std::string& error() const { return error_; }

  // Back to the initial state, e.g. after STARTTLS, where nothing received before the
  // handshake may be interpreted afterwards.
  void reset();
  // Between responses, holding nothing of the next one: the connection can change hands here.
  bool atResponseBoundary() const {
    return mode_ == Mode::ReadLine && state_ == State::ResponseStart && seg_.empty();
  }

 private:
  enum class Mode : std::uint8_t { ReadLine, Grammar, BodyLiteral, KeepLiteral, SkipLiteral, Dead };
  enum class State : std::uint8_t {
    ResponseStart,
    Text,             // collecting resp-text of a tagged, status or continuation response
    SkipRest,         // an Other response: everything up to its end is skipped
    FetchNext,        // inside a FETCH list, expecting an item or ')'
    FetchSkip,        // skipping the value of an unknown FETCH item (may span literals)
    BodyChunk,        // a quoted body's data is pending
    BodyEnd,          // a NIL or quoted body's end is pending
    ListAfterName,    // a LIST's mailbox name is complete (maybe in a literal); SP or end next
    ListTail,         // skipping a LIST's extended data (may span literals), then the List event
    StatusAfterName,  // a STATUS's mailbox name is complete (maybe in a literal); the items next
  };
  enum class TextKind : std::uint8_t { Tagged, Status, Continuation };
  enum class Frame : std::uint8_t { FetchList, SkipList };
  enum class Step : std::uint8_t { Continue, Event, Error };

  Step runGrammar(ImapEvent& ev);
  Step startResponse(ImapEvent& ev);
  Step startText(TextKind kind);
  Step startUntagged(ImapEvent& ev);
  Step continueText(ImapEvent& ev);
  Step fetchNext(ImapEvent& ev);
  Step fetchSkip();
  Step bodyValue(ImapEvent& ev);
  Step startNumbered(ImapEvent& ev);
  Step parseCapability(ImapEvent& ev);
  Step parseFlags(ImapEvent& ev);
  Step parseList();
  Step parseSearch(ImapEvent& ev);
  Step listAfterName();
  Step readMailboxName(State after);
  Step parseStatus();
  Step statusAfterName(ImapEvent& ev);
  Step skipRest(ImapEvent& ev, ImapEvent::Kind kind);

  bool finishSegment();
  void finishResponse();
  void needLine();
  void needLiteral(Mode mode);
  void beginBody(ImapEvent& ev);

  // Segment scanning helpers; all stop at end_ (the literal header, if any, is not content).
  bool atEnd() const { return pos_ >= end_; }
  unsigned char peek() const { return static_cast<unsigned char>(seg_[pos_]); }
  std::size_t skipSpaces();
  bool requireSpaces(std::string_view what);
  bool expectChar(char c, std::string_view what);
  bool expectEnd(std::string_view what);
  std::string_view readAtom();
  std::string_view readWord();
  bool readNumber32(std::uint32_t& out, std::string_view what);
  bool readNumber64(std::uint64_t& out, std::string_view what);
  bool readQuoted(std::string& out);
  bool skipQuoted();
  bool readFlagList(std::vector<std::string>& out, std::string_view what);
  // The scanners behind readQuoted and readFlagList, for lenient callers: on a violation they
  // return what was expected at pos_ instead of failing the parser.
  std::optional<std::string> scanQuoted(std::string& out);
  std::optional<std::string> scanFlagList(std::vector<std::string>& out, std::string_view what);
  bool rejectLiteral(std::string_view what);

  Step fail(std::string_view expected);
  Step failPlain(std::string message);

  std::size_t maxLine_;
  std::size_t maxInlineLiteral_;
  std::string error_;

  Mode mode_ = Mode::ReadLine;
  State state_ = State::ResponseStart;

  // The current segment (line bytes including the line end); content is [0, end_), the
  // literal header, if any, follows it.
  std::string seg_;
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
  std::optional<std::uint64_t> segLiteral_;

  std::size_t lineBytes_ = 0;    // non-literal bytes of the current response
  std::uint64_t respBytes_ = 0;  // all bytes of the current response consumed so far
  std::uint64_t segBase_ = 0;    // offset of seg_ within the response, for error messages
  std::uint64_t literalLeft_ = 0;

  // The response under construction.
  TextKind textKind_ = TextKind::Tagged;
  ImapStatus status_ = ImapStatus::Ok;
  std::string tag_;
  std::string text_;
  std::string keyword_;
  std::uint32_t number_ = 0;
  FetchAttributes fetch_;
  std::vector<Frame> stack_;
  std::size_t skipBase_ = 0;
  bool expectDelimiter_ = false;
  std::string section_;
  std::optional<std::uint64_t> origin_;
  std::string bodyBuf_;
  // LIST: the attributes and delimiter; the name (of a STATUS too) is collected in text_.
  std::vector<std::string> listAttributes_;
  std::optional<char> listDelimiter_;
};

}  // namespace popbridge::protocol
