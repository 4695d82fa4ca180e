#include "protocol/bridge/stable_uidls.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "protocol/uidl/map_record.h"
#include "protocol/uidl/stable_id.h"

namespace popbridge::protocol {

namespace {

// Matches the still-unassigned missing messages against `candidates`; fills `assigned` for the
// matched ones and marks the candidates they took.
uidl::MatchSummary matchAgainst(std::span<const UidlRecord* const> candidates,
                                std::span<const uidl::MatchFacts> facts,
                                std::vector<const std::string*>& assigned, uidl::SizeRule rule) {
  std::vector<std::size_t> open;
  for (std::size_t i = 0; i < facts.size(); ++i) {
    if (assigned[i] == nullptr) open.push_back(i);
  }
  if (candidates.empty() || open.empty()) return {};
  std::vector<uidl::MatchFacts> oldFacts;
  oldFacts.reserve(candidates.size());
  for (const UidlRecord* record : candidates) oldFacts.push_back(uidl::toFacts(*record));
  std::vector<uidl::MatchFacts> presentFacts;
  presentFacts.reserve(open.size());
  for (std::size_t i : open) presentFacts.push_back(facts[i]);
  const std::vector<uidl::MatchResult> results = uidl::matchMessages(oldFacts, presentFacts, rule);
  for (std::size_t j = 0; j < open.size(); ++j) {
    if (results[j].outcome == uidl::MatchOutcome::Matched) {
      assigned[open[j]] = &candidates[results[j].oldIndex]->uidl;
    }
  }
  return uidl::summarize(results);
}

}  // namespace

MapAssignment assignMapUidls(std::uint32_t uidValidity, std::span<const std::uint32_t> missing,
                             std::span<const uidl::MatchFacts> facts,
                             std::span<const UidlRecord> stored,
                             std::span<const std::uint32_t> allUids, bool wholeMailbox,
                             const UidlFormat& seed) {
  MapAssignment out;
  std::unordered_set<std::string_view> heldNow;  // UIDLs of this UIDVALIDITY's entries
  std::unordered_set<std::string_view> taken;    // every stored UIDL
  for (const UidlRecord& record : stored) {
    taken.insert(record.uidl);
    if (record.key.uidValidity == uidValidity) heldNow.insert(record.uidl);
  }
  std::vector<const UidlRecord*> earlier;
  std::vector<const UidlRecord*> imports;
  for (const UidlRecord& record : stored) {
    if (record.key.uidValidity == uidValidity) {
      const bool gone = !std::binary_search(allUids.begin(), allUids.end(), record.key.uid);
      if (wholeMailbox && gone) out.erases.push_back(record.key);
      continue;
    }
    if (heldNow.contains(record.uidl)) {
      // Already carried over to a message of this UIDVALIDITY: an erase that did not happen.
      out.erases.push_back(record.key);
      continue;
    }
    (record.key.uidValidity == uidl::kImportUidValidity ? imports : earlier).push_back(&record);
  }
  out.earlier = earlier.size();
  out.imports = imports.size();

  std::vector<const std::string*> assigned(missing.size(), nullptr);
  // An entry another session wrote since this one looked (sessions that share the maildrop, or
  // the replicas): the UIDL it served stands.
  std::unordered_map<std::uint32_t, const UidlRecord*> current;
  for (const UidlRecord& record : stored) {
    if (record.key.uidValidity == uidValidity) current.emplace(record.key.uid, &record);
  }
  std::vector<bool> alreadyKept(missing.size(), false);
  for (std::size_t i = 0; i < missing.size(); ++i) {
    auto it = current.find(missing[i]);
    if (it == current.end()) continue;
    assigned[i] = &it->second->uidl;
    alreadyKept[i] = true;
  }
  out.exact = matchAgainst(earlier, facts, assigned, uidl::SizeRule::Exact);
  out.imported = matchAgainst(imports, facts, assigned, uidl::SizeRule::LineEnds);

  out.uidls.resize(missing.size());
  for (std::size_t i = 0; i < missing.size(); ++i) {
    if (assigned[i] != nullptr) out.uidls[i] = *assigned[i];
  }
  // out.uidls does not grow past here, so views into it stay valid in `taken`.
  for (std::size_t i = 0; i < missing.size(); ++i) {
    if (assigned[i] != nullptr) continue;
    out.uidls[i] = uidl::newMapUidl(seed, missing[i], uidValidity,
                                    [&](std::string_view u) { return taken.contains(u); });
    taken.insert(out.uidls[i]);
  }
  out.puts.reserve(missing.size());
  for (std::size_t i = 0; i < missing.size(); ++i) {
    if (alreadyKept[i]) continue;
    out.puts.push_back(uidl::toRecord({uidValidity, missing[i]}, out.uidls[i], facts[i]));
  }
  // Earlier entries were matched against every message there is: the unmatched ones are gone.
  // With only the newest messages listed, the older ones may still match them later.
  std::unordered_set<const std::string*> matched(assigned.begin(), assigned.end());
  for (const auto* group : {&earlier, &imports}) {
    for (const UidlRecord* record : *group) {
      if (wholeMailbox || matched.contains(&record->uidl)) out.erases.push_back(record->key);
    }
  }
  return out;
}

}  // namespace popbridge::protocol
