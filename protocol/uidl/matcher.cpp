#include "protocol/uidl/matcher.h"

#include <algorithm>
#include <tuple>

namespace popbridge::protocol::uidl {
namespace {

bool hasKeys(const MatchFacts& f, SizeRule rule) {
  if (!f.hasHeader) return false;
  if (rule == SizeRule::LineEnds) return !f.messageId.empty() && !f.dateKey.empty();
  return !f.messageId.empty() || !f.dateKey.empty();
}

// Orders by the keys of the rule; equal under this order means "agree on every key".
int compareKeys(const MatchFacts& a, const MatchFacts& b, SizeRule rule) {
  if (const int c = a.messageId.compare(b.messageId); c != 0) return c;
  if (const int c = a.dateKey.compare(b.dateKey); c != 0) return c;
  if (a.headerHash != b.headerHash) return a.headerHash < b.headerHash ? -1 : 1;
  if (rule == SizeRule::Exact && a.size != b.size) return a.size < b.size ? -1 : 1;
  return 0;
}

}  // namespace

bool sizesCompatible(const MatchFacts& old, std::uint64_t presentSize) {
  if (old.size == presentSize) return true;
  if (old.size > presentSize) return false;
  const std::uint64_t shortBy = presentSize - old.size;
  return shortBy >= old.headerLines && shortBy <= presentSize / 2;
}

std::vector<MatchResult> matchMessages(std::span<const MatchFacts> old,
                                       std::span<const MatchFacts> present, SizeRule rule) {
  std::vector<MatchResult> results(present.size());
  std::vector<std::size_t> oldOrder;
  std::vector<std::size_t> presentOrder;
  oldOrder.reserve(old.size());
  presentOrder.reserve(present.size());
  for (std::size_t i = 0; i < old.size(); ++i) {
    if (hasKeys(old[i], rule)) oldOrder.push_back(i);
  }
  for (std::size_t i = 0; i < present.size(); ++i) {
    if (hasKeys(present[i], rule)) {
      presentOrder.push_back(i);
    } else {
      results[i].outcome = MatchOutcome::NoKeys;
    }
  }
  // Ties broken by index so that the walk below is deterministic.
  auto sorter = [rule](std::span<const MatchFacts> facts) {
    return [facts, rule](std::size_t a, std::size_t b) {
      const int c = compareKeys(facts[a], facts[b], rule);
      return c != 0 ? c < 0 : a < b;
    };
  };
  std::sort(oldOrder.begin(), oldOrder.end(), sorter(old));
  std::sort(presentOrder.begin(), presentOrder.end(), sorter(present));

  std::size_t o = 0;
  std::size_t p = 0;
  while (p < presentOrder.size()) {
    const MatchFacts& key = present[presentOrder[p]];
    std::size_t pEnd = p + 1;
    while (pEnd < presentOrder.size() && compareKeys(present[presentOrder[pEnd]], key, rule) == 0) {
      ++pEnd;
    }
    while (o < oldOrder.size() && compareKeys(old[oldOrder[o]], key, rule) < 0) ++o;
    std::size_t oEnd = o;
    while (oEnd < oldOrder.size() && compareKeys(old[oldOrder[oEnd]], key, rule) == 0) ++oEnd;

    const std::size_t oldCount = oEnd - o;
    const std::size_t presentCount = pEnd - p;
    for (std::size_t i = p; i < pEnd; ++i) {
      MatchResult& r = results[presentOrder[i]];
      if (oldCount == 0) {
        r.outcome = MatchOutcome::NoCandidate;
      } else if (oldCount > 1 || presentCount > 1) {
        r.outcome = MatchOutcome::Ambiguous;
      } else if (rule == SizeRule::LineEnds &&
                 !sizesCompatible(old[oldOrder[o]], present[presentOrder[i]].size)) {
        r.outcome = MatchOutcome::SizeMismatch;
      } else {
        r.outcome = MatchOutcome::Matched;
        r.oldIndex = oldOrder[o];
      }
    }
    p = pEnd;
    o = oEnd;
  }
  return results;
}

MatchSummary summarize(std::span<const MatchResult> results) {
  MatchSummary s;
  for (const MatchResult& r : results) {
    switch (r.outcome) {
      case MatchOutcome::Matched:
        ++s.matched;
        break;
      case MatchOutcome::NoKeys:
        ++s.noKeys;
        break;
      case MatchOutcome::NoCandidate:
        ++s.noCandidate;
        break;
      case MatchOutcome::Ambiguous:
        ++s.ambiguous;
        break;
      case MatchOutcome::SizeMismatch:
        ++s.sizeMismatch;
        break;
    }
  }
  return s;
}

}  // namespace popbridge::protocol::uidl
