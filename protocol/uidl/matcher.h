#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "protocol/uidl/match_facts.h"

namespace popbridge::protocol::uidl {

// Rebuilding the stable-UIDL map after a UIDVALIDITY change, and importing an old POP3
// server's UIDLs, both come down to: which old message is each present message? The rules:
//
// - A message takes an old UIDL only when it and exactly one old entry agree on every key, and
//   that old entry agrees with no other present message. Anything else (two identical copies on
//   either side, no candidate, too few facts) gives a new UIDL. There is no scoring and no
//   "closest" candidate: a wrong match makes a client skip a new message for good (keep mode) or
//   delete a message it never downloaded (delete mode), while a missed match only costs one
//   download.
// - Keys (SizeRule::Exact, the map rebuild): Message-ID, Date, size and header hash. A message
//   without a Message-ID still matches on Date + size + header hash (scanners and some
//   automated senders omit Message-ID, and Date to the second plus the exact size and the hash
//   of From/To/Subject is still specific); one with neither Message-ID nor Date never matches.
// - SizeRule::LineEnds (imports): old POP3 servers that count a message's LF-only lines report
//   LIST sizes short by one octet per line, so size is no key there: Message-ID, Date and header
//   hash are, and both Message-ID and Date are required. A pair that is unique on those keys
//   matches only if the old size equals the present one, or falls short by at least the old
//   header's line count and by at most half the present size (a line is at least one octet
//   plus its LF).
//
// Deterministic (the result depends only on the inputs, never on their order beyond indices),
// O(n log n) time and O(n) memory in the number of entries.

enum class SizeRule : std::uint8_t { Exact, LineEnds };

enum class MatchOutcome : std::uint8_t {
  Matched,       // oldIndex is the old entry whose UIDL the message keeps
  NoKeys,        // too few facts (no header, or no Message-ID and no Date): new UIDL
  NoCandidate,   // no old entry agrees: new UIDL
  Ambiguous,     // more than one old entry or present message share the keys: new UIDL
  SizeMismatch,  // LineEnds only: the unique candidate's size is not compatible: new UIDL
};

struct MatchResult {
  MatchOutcome outcome = MatchOutcome::NoCandidate;
  std::size_t oldIndex = 0;  // only when Matched
};

struct MatchSummary {
  std::size_t matched = 0;
  std::size_t noKeys = 0;
  std::size_t noCandidate = 0;
  std::size_t ambiguous = 0;
  std::size_t sizeMismatch = 0;
};

// One result per present message, in the order of `present`. Every old index appears in at most
// one Matched result.
std::vector<MatchResult> matchMessages(std::span<const MatchFacts> old,
                                       std::span<const MatchFacts> present, SizeRule rule);

MatchSummary summarize(std::span<const MatchResult> results);

// Whether an old (import) size is compatible with the present RFC822.SIZE under LineEnds.
bool sizesCompatible(const MatchFacts& old, std::uint64_t presentSize);

}  // namespace popbridge::protocol::uidl
