#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/uidl/sha256.h"

namespace popbridge::protocol::uidl {

// The facts about one message that the stable-UIDL map matches on after a UIDVALIDITY change,
// and that `popbridge uidl import` matches an old POP3 server's messages on.
//
// They come from the header fields named in kMatchFields, fetched over IMAP as
//   UID FETCH n (RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)])
// or taken from a POP3 `TOP n 0` block (which holds every field; the others are skipped).
//
// Canonical value of a field occurrence: the unfolded value (a line break followed by
// whitespace is removed, the whitespace kept), every run of SP, HTAB, CR and LF collapsed to one
// SP, leading and trailing whitespace removed. Case is kept. Field names compare ASCII-case-
// insensitively, and trailing whitespace before the colon (obsolete syntax) is ignored.
//
// headerHash, exactly (so a persisted hash can be recomputed by any implementation):
//   for each name N of the first kHashedFields of kMatchFields (from, to, subject), H_N =
//   SHA-256 of the concatenation, over the occurrences of N in the order they appear, of
//   canonical value + "\n";
//   headerHash = SHA-256 of the concatenation, over those N in that order, of
//   N + ":" + decimal count of occurrences + ":" + the 32 raw bytes of H_N.
// Date and Message-ID are keys of their own, compared normalized, so they stay out of the hash:
// a server that rewrites the Date's layout or zone (Exchange does) still matches.
// A server that re-folds lines, changes line ends or whitespace, or reorders fields gives the
// same hash; one that re-encodes a field (another RFC 2047 form) gives another hash, so the
// message simply gets a new UIDL, which is the safe failure.
inline constexpr std::string_view kMatchFields[] = {"from", "to", "subject", "date", "message-id"};
inline constexpr std::size_t kHashedFields = 3;
inline constexpr std::string_view kMatchFieldsFetch =
    "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)]";

struct MatchFacts {
  // The first Message-ID's msg-id without the angle brackets and without whitespace; empty when
  // the message has none.
  std::string messageId;
  // The first Date field: "@" + seconds since 1970 UTC when it parses as an RFC 5322 date
  // (obsolete forms included), so that a server rewriting the zone or the layout still matches;
  // otherwise "=" + its canonical value. Empty when the message has none.
  std::string dateKey;
  // RFC822.SIZE, or for an import the old server's LIST size.
  std::uint64_t size = 0;
  Sha256::Digest headerHash{};
  // False until a header block was parsed: facts without a header never match.
  bool hasHeader = false;
  // Physical lines in the header block (the blank line excluded). Only meaningful for a full
  // header (TOP n 0): an import uses it to bound a line-end-counting difference in sizes.
  std::uint32_t headerLines = 0;

  bool operator==(const MatchFacts&) const = default;
};

struct HeaderLimits {
  std::size_t maxLineLength = 8192;  // one physical line, line end included
  std::size_t maxTotal = 1 << 20;    // the whole block
  std::size_t maxValueLength = 998;  // the Message-ID and Date values kept (RFC 5322 line limit)
};

// Seconds since 1970-01-01 UTC for an RFC 5322 date-time (section 3.3 and the obsolete forms of
// 4.3: two- and three-digit years, zone names, military zones taken as -0000, comments).
std::optional<std::int64_t> parseRfc5322Date(std::string_view text);

// Incremental, bounded parser of one header block. Memory is one line (maxLineLength) plus the
// two kept values, whatever the input.
class HeaderFactsParser {
 public:
  enum class Status { NeedMore, Done, Error };

  explicit HeaderFactsParser(HeaderLimits limits = {});

  // Consumes bytes up to and including the blank line that ends the header; `consumed` says how
  // many, so what follows (a body, the next record) is the caller's. Done and Error stick.
  Status feed(std::string_view data, std::size_t& consumed);
  // End of input. A header with no blank line after it (an IMAP HEADER.FIELDS literal of a
  // message without those fields is just "\r\n"; a TOP block may end at the last field) is
  // complete too.
  Status finish();

  // The facts so far (size is left 0: it is not in the header). Complete after Done.
  const MatchFacts& facts() const { return facts_; }
  // One line saying what was wrong, after Error.
  const std::string& error() const { return error_; }

 private:
  void processLine(std::string_view line);
  void endField();
  void appendCanonical(std::string_view text);
  Status fail(std::string message);
  void complete();

  HeaderLimits limits_;
  Status status_ = Status::NeedMore;
  MatchFacts facts_;
  std::string error_;
  std::string line_;
  std::size_t total_ = 0;
  std::uint32_t lines_ = 0;
  int field_ = -1;  // index into kMatchFields of the field being read, or -1
  bool pendingSpace_ = false;
  bool fieldHasText_ = false;
  std::string value_;  // canonical value of the current Message-ID or Date occurrence
  bool valueOverlong_ = false;
  bool haveMessageId_ = false;
  bool haveDate_ = false;
  Sha256 fieldHash_[kHashedFields];
  std::uint32_t fieldCount_[std::size(kMatchFields)] = {};
};

// The whole block at once. nullopt and `error` when it breaks a limit.
std::optional<MatchFacts> parseHeaderFacts(std::string_view block, std::string& error,
                                           HeaderLimits limits = {});

}  // namespace popbridge::protocol::uidl
