#include "protocol/uidl/matcher.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace popbridge::protocol::uidl {
namespace {

MatchFacts facts(std::string messageId, std::string date, std::uint64_t size,
                 std::string headerSeed = "h") {
  MatchFacts f;
  f.messageId = std::move(messageId);
  f.dateKey = std::move(date);
  f.size = size;
  f.headerHash = Sha256::of(headerSeed);
  f.hasHeader = true;
  return f;
}

// "M<n>" = Matched with old index n, "new:<reason>" otherwise.
std::vector<std::string> outcomes(const std::vector<MatchFacts>& old,
                                  const std::vector<MatchFacts>& present,
                                  SizeRule rule = SizeRule::Exact) {
  std::vector<std::string> out;
  for (const MatchResult& r : matchMessages(old, present, rule)) {
    switch (r.outcome) {
      case MatchOutcome::Matched:
        out.push_back("M" + std::to_string(r.oldIndex));
        break;
      case MatchOutcome::NoKeys:
        out.push_back("new:nokeys");
        break;
      case MatchOutcome::NoCandidate:
        out.push_back("new:none");
        break;
      case MatchOutcome::Ambiguous:
        out.push_back("new:ambiguous");
        break;
      case MatchOutcome::SizeMismatch:
        out.push_back("new:size");
        break;
    }
  }
  return out;
}

using V = std::vector<std::string>;

TEST(Matcher, Empty) {
  EXPECT_EQ(outcomes({}, {}), V{});
  EXPECT_EQ(outcomes({facts("a", "@1", 10)}, {}), V{});
  EXPECT_EQ(outcomes({}, {facts("a", "@1", 10)}), V{"new:none"});
}

TEST(Matcher, ExactAndReordered) {
  const std::vector<MatchFacts> old = {facts("a", "@1", 10), facts("b", "@2", 20),
                                       facts("c", "@3", 30)};
  EXPECT_EQ(outcomes(old, old), (V{"M0", "M1", "M2"}));
  EXPECT_EQ(outcomes(old, {old[2], old[0], old[1]}), (V{"M2", "M0", "M1"}));
}

TEST(Matcher, DuplicatesAreAmbiguousOnEitherSide) {
  const MatchFacts a = facts("a", "@1", 10);
  const MatchFacts b = facts("b", "@2", 20);
  // Two identical copies now, one before: neither copy may take the old UIDL.
  EXPECT_EQ(outcomes({a, b}, {a, a, b}), (V{"new:ambiguous", "new:ambiguous", "M1"}));
  // Two identical entries before, one copy now.
  EXPECT_EQ(outcomes({a, a, b}, {b, a}), (V{"M2", "new:ambiguous"}));
}

TEST(Matcher, EveryKeyMustAgree) {
  const MatchFacts a = facts("a", "@1", 10);
  EXPECT_EQ(outcomes({a}, {facts("a", "@1", 11)}), V{"new:none"});       // size changed
  EXPECT_EQ(outcomes({a}, {facts("a", "@2", 10)}), V{"new:none"});       // date
  EXPECT_EQ(outcomes({a}, {facts("b", "@1", 10)}), V{"new:none"});       // Message-ID
  EXPECT_EQ(outcomes({a}, {facts("a", "@1", 10, "g")}), V{"new:none"});  // header hash
}

TEST(Matcher, MissingMessageIdMatchesOnTheRestWhenUnique) {
  const MatchFacts noId = facts("", "@5", 50, "scan");
  EXPECT_EQ(outcomes({noId}, {noId}), V{"M0"});
  EXPECT_EQ(outcomes({noId}, {noId, noId}), (V{"new:ambiguous", "new:ambiguous"}));
  // Neither Message-ID nor Date: never matched, whatever else agrees.
  const MatchFacts bare = facts("", "", 50, "scan");
  EXPECT_EQ(outcomes({bare}, {bare}), V{"new:nokeys"});
  // No header at all.
  MatchFacts headerless = facts("a", "@1", 10);
  headerless.hasHeader = false;
  EXPECT_EQ(outcomes({headerless}, {headerless}), V{"new:nokeys"});
}

TEST(Matcher, PartialOverlap) {
  const std::vector<MatchFacts> old = {facts("a", "@1", 10), facts("b", "@2", 20),
                                       facts("c", "@3", 30)};
  EXPECT_EQ(outcomes(old, {facts("d", "@4", 40), old[1], facts("e", "@5", 50)}),
            (V{"new:none", "M1", "new:none"}));
}

TEST(Matcher, LineEndsRuleForImports) {
  MatchFacts before = facts("a", "@1", 970);
  before.headerLines = 20;
  // An LF-counting server: 30 lines fewer than the CRLF size.
  EXPECT_EQ(outcomes({before}, {facts("a", "@1", 1000)}, SizeRule::LineEnds), V{"M0"});
  EXPECT_EQ(outcomes({before}, {facts("a", "@1", 970)}, SizeRule::LineEnds), V{"M0"});
  // Shorter by less than the header's own lines, larger, or by more than half: no.
  EXPECT_EQ(outcomes({before}, {facts("a", "@1", 980)}, SizeRule::LineEnds), V{"new:size"});
  EXPECT_EQ(outcomes({before}, {facts("a", "@1", 960)}, SizeRule::LineEnds), V{"new:size"});
  EXPECT_EQ(outcomes({before}, {facts("a", "@1", 5000)}, SizeRule::LineEnds), V{"new:size"});
  // Size is no key here, so two copies of different sizes are still ambiguous.
  EXPECT_EQ(outcomes({before}, {facts("a", "@1", 1000), facts("a", "@1", 990)}, SizeRule::LineEnds),
            (V{"new:ambiguous", "new:ambiguous"}));
  // Imports need both Message-ID and Date.
  EXPECT_EQ(outcomes({facts("", "@1", 10)}, {facts("", "@1", 10)}, SizeRule::LineEnds),
            V{"new:nokeys"});
}

TEST(Matcher, DeterministicAndOneToOneOnLargeInputs) {
  std::vector<MatchFacts> old;
  std::vector<MatchFacts> present;
  for (int i = 0; i < 5000; ++i) {
    old.push_back(facts("id" + std::to_string(i % 4000), "@" + std::to_string(i), 100 + i));
  }
  for (int i = 4999; i >= 0; i -= 2) present.push_back(old[static_cast<std::size_t>(i)]);
  const auto results = matchMessages(old, present, SizeRule::Exact);
  std::vector<bool> used(old.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    ASSERT_EQ(results[i].outcome, MatchOutcome::Matched);
    EXPECT_EQ(old[results[i].oldIndex], present[i]);
    EXPECT_FALSE(used[results[i].oldIndex]);
    used[results[i].oldIndex] = true;
  }
  const auto again = matchMessages(old, present, SizeRule::Exact);
  ASSERT_EQ(again.size(), results.size());
  for (std::size_t i = 0; i < again.size(); ++i) EXPECT_EQ(again[i].oldIndex, results[i].oldIndex);
  EXPECT_EQ(summarize(results).matched, 2500u);
}

}  // namespace
}  // namespace popbridge::protocol::uidl
