#pragma once

// The persistent map's part of stable UIDLs (uidl/stable_id.h has the rules): given what the
// store holds for a maildrop and the facts of the messages it has no entry for, which UIDL each
// of them gets, and what the store must then keep and forget. Pure: the maildrop does the I/O.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol/pop3/uidl_format.h"
#include "protocol/state_record.h"
#include "protocol/uidl/match_facts.h"
#include "protocol/uidl/matcher.h"

namespace popbridge::protocol {

struct MapAssignment {
  std::vector<std::string> uidls;  // one per missing message, in its order
  std::vector<UidlRecord> puts;    // the missing messages' new entries
  // Entries the store no longer needs: an earlier UIDVALIDITY's and the import's once the whole
  // mailbox was matched against them, and this UIDVALIDITY's whose UID is gone.
  std::vector<UidKey> erases;
  uidl::MatchSummary exact;     // against an earlier UIDVALIDITY's entries
  uidl::MatchSummary imported;  // against `popbridge uidl import`'s entries
  std::size_t earlier = 0;      // entries of an earlier UIDVALIDITY that were candidates
  std::size_t imports = 0;      // import entries that were candidates
};

// `stored`: every entry of the maildrop (UidlMapStore::loadUidls). `missing` and `facts`: the
// messages of the current UIDVALIDITY without an entry, and their facts (same order).
// `allUids`: every UID the mailbox holds now, \Deleted ones included, sorted; when
// `wholeMailbox` is false (max_messages listed only the newest), nothing is forgotten except the
// earlier entries that were matched.
//
// A missing message keeps an earlier UIDL only when uidl::matchMessages finds exactly one
// candidate (SizeRule::Exact against earlier UIDVALIDITYs first, then SizeRule::LineEnds against
// imports); candidates are the earlier entries whose UIDL no current entry holds, so one UIDL is
// never given to two messages. Every other missing message gets newMapUidl(seed), avoiding every
// stored UIDL.
MapAssignment assignMapUidls(std::uint32_t uidValidity, std::span<const std::uint32_t> missing,
                             std::span<const uidl::MatchFacts> facts,
                             std::span<const UidlRecord> stored,
                             std::span<const std::uint32_t> allUids, bool wholeMailbox,
                             const UidlFormat& seed);

}  // namespace popbridge::protocol
