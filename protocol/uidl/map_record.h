#pragma once

#include <cstdint>
#include <string>

#include "protocol/state_record.h"
#include "protocol/uidl/match_facts.h"

namespace popbridge::protocol::uidl {

// How the stable-UIDL map's entries (protocol/state_record.h, kept by the state store) carry the
// match facts, and where an import waits for its first session.
//
// `popbridge uidl import` cannot know the new server's UIDs, so it stores the old server's
// messages under UIDVALIDITY 0, which no IMAP server sends (RFC 3501 uniqueid is nz-number). The
// first session that finds messages missing from the map matches them against those entries with
// SizeRule::LineEnds (old POP3 sizes may count LF-only line ends), and against entries of an
// earlier real UIDVALIDITY with SizeRule::Exact.
inline constexpr std::uint32_t kImportUidValidity = 0;

// An entry for `key` with `uidl` and the facts it will be matched on: Message-ID, the date key,
// the size and the header hash in hex (empty when the facts have no header, so they never match).
UidlRecord toRecord(UidKey key, std::string uidl, const MatchFacts& facts);
// The facts back. A malformed hash gives facts without a header, which never match.
MatchFacts toFacts(const UidlRecord& record);

}  // namespace popbridge::protocol::uidl
