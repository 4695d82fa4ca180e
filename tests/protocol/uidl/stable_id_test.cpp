#include "protocol/uidl/stable_id.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "protocol/uidl/import_file.h"

namespace popbridge::protocol::uidl {
namespace {

UidlFormat dovecot() {
  std::string error;
  return *UidlFormat::parse(UidlFormat::kDovecotDefault, error);
}

MatchFacts facts(std::string messageId, std::uint64_t size) {
  MatchFacts f;
  f.messageId = std::move(messageId);
  f.dateKey = "@1";
  f.size = size;
  f.hasHeader = true;
  return f;
}

TEST(StableId, ValidUidlAndObjectId) {
  EXPECT_TRUE(isValidUidl("a"));
  EXPECT_TRUE(isValidUidl(std::string(70, '~')));
  EXPECT_FALSE(isValidUidl(""));
  EXPECT_FALSE(isValidUidl(std::string(71, 'a')));
  EXPECT_FALSE(isValidUidl("a b"));
  EXPECT_FALSE(isValidUidl("a\x7f"));
  EXPECT_TRUE(isValidObjectId("M6d99ac3275bb4e_-"));
  EXPECT_FALSE(isValidObjectId("M6d9.9"));
  EXPECT_FALSE(isValidObjectId(std::string(256, 'a')));
}

TEST(StableId, FirstSourceThatApplies) {
  MessageIds ids;
  EXPECT_EQ(stableSource(ids), StableSource::Map);
  EXPECT_EQ(stableIdFromServer(ids), std::nullopt);
  ids.gmMsgId = 1278455344230334865ull;
  EXPECT_EQ(stableSource(ids), StableSource::GmMsgId);
  EXPECT_EQ(stableIdFromServer(ids), "1278455344230334865");
  ids.emailId = "Mabc";
  EXPECT_EQ(stableSource(ids), StableSource::EmailId);
  EXPECT_EQ(stableIdFromServer(ids), "Mabc");
  ids.emailId = "not valid";  // not an RFC 8474 objectid: the next source
  EXPECT_EQ(stableSource(ids), StableSource::GmMsgId);
}

TEST(StableId, FirstSightGivesTodaysUidlUnlessTaken) {
  const auto none = [](std::string_view) { return false; };
  EXPECT_EQ(newMapUidl(dovecot(), 0x2a, 0x5f3a1b2c, none), "0000002a5f3a1b2c");
  std::set<std::string, std::less<>> taken = {"0000002a5f3a1b2c"};
  const auto inSet = [&](std::string_view u) { return taken.contains(u); };
  const std::string other = newMapUidl(dovecot(), 0x2a, 0x5f3a1b2c, inSet);
  EXPECT_EQ(other.size(), 27u);
  EXPECT_EQ(other[0], '~');
  EXPECT_TRUE(isValidUidl(other));
  EXPECT_EQ(newMapUidl(dovecot(), 0x2a, 0x5f3a1b2c, inSet), other);  // deterministic
  taken.insert(other);
  const std::string third = newMapUidl(dovecot(), 0x2a, 0x5f3a1b2c, inSet);
  EXPECT_NE(third, other);
  EXPECT_TRUE(isValidUidl(third));
}

TEST(StableId, RebuildKeepsMatchedUidlsAndNeverReusesOld) {
  // The map before: three messages under UIDVALIDITY 5.
  const std::vector<MapEntry> old = {{"0000000100000005", facts("a", 10)},
                                     {"0000000200000005", facts("b", 20)},
                                     {"0000000300000005", facts("c", 30)}};
  // After the change (UIDVALIDITY 6): b and a are still there (renumbered), c is gone, d is new.
  // A server that reused UIDVALIDITY 5 would give d the UIDL "0000000300000005", which c held.
  const std::vector<PresentMessage> present = {
      {1, facts("b", 20)}, {2, facts("a", 10)}, {3, facts("d", 40)}};
  const Rebuild rebuild = rebuildMap(old, present, 6, dovecot(), SizeRule::Exact);
  ASSERT_EQ(rebuild.uidls.size(), 3u);
  EXPECT_EQ(rebuild.uidls[0], "0000000200000005");
  EXPECT_EQ(rebuild.uidls[1], "0000000100000005");
  EXPECT_EQ(rebuild.uidls[2], "0000000300000006");
  EXPECT_EQ(rebuild.summary.matched, 2u);
  EXPECT_EQ(rebuild.summary.noCandidate, 1u);

  const Rebuild reused = rebuildMap(old, present, 5, dovecot(), SizeRule::Exact);
  EXPECT_NE(reused.uidls[2], "0000000300000005");
  EXPECT_EQ(reused.uidls[2][0], '~');
}

TEST(StableId, RebuildGivesIdenticalCopiesDistinctNewUidls) {
  const std::vector<MapEntry> old = {{"old-a", facts("a", 10)}};
  const std::vector<PresentMessage> present = {{7, facts("a", 10)}, {8, facts("a", 10)}};
  const Rebuild rebuild = rebuildMap(old, present, 9, dovecot(), SizeRule::Exact);
  EXPECT_EQ(rebuild.summary.ambiguous, 2u);
  EXPECT_EQ(rebuild.uidls[0], "0000000700000009");
  EXPECT_EQ(rebuild.uidls[1], "0000000800000009");
}

// An import end to end: the old server's file, the IMAP side's HEADER.FIELDS facts, and the
// LIST sizes of a server that counted LF line ends.
TEST(StableId, ImportKeepsTheOldServersUidls) {
  const std::string file =
      "popbridge-uidl-import 1\n"
      "message old-1 960\n"
      "Received: by old.example\n"
      "From: a@x\n"
      "Date: 1 Jan 2000 00:00:00 GMT\n"
      "Message-ID: <1@x>\n"
      "\n.\n"
      "message old-2 500\n"
      "From: a@x\n"
      "Date: 2 Jan 2000 00:00:00 GMT\n"
      "Message-ID: <2@x>\n"
      "\n.\n";
  std::string error;
  const auto entries = parseImportFile(file, error);
  ASSERT_TRUE(entries.has_value()) << error;
  std::vector<MapEntry> old;
  for (const auto& e : *entries) old.push_back({e.uidl, e.facts});

  auto imapFacts = [](std::string_view header, std::uint64_t size) {
    std::string problem;
    MatchFacts f = *parseHeaderFacts(header, problem);
    f.size = size;
    return f;
  };
  const std::vector<PresentMessage> present = {
      // 40 lines of 1000 octets: the old server said 960.
      {11, imapFacts("From: a@x\r\nDate: Sat, 01 Jan 2000 00:00:00 +0000\r\nMessage-ID: "
                     "<1@x>\r\n\r\n",
                     1000)},
      // Same headers, but a size no line-end count explains.
      {12,
       imapFacts("From: a@x\r\nDate: 2 Jan 2000 00:00:00 GMT\r\nMessage-ID: <2@x>\r\n\r\n", 400)},
      {13,
       imapFacts("From: b@x\r\nDate: 3 Jan 2000 00:00:00 GMT\r\nMessage-ID: <3@x>\r\n\r\n", 77)}};
  const Rebuild rebuild = rebuildMap(old, present, 1, dovecot(), SizeRule::LineEnds);
  EXPECT_EQ(rebuild.uidls[0], "old-1");
  EXPECT_EQ(rebuild.results[1].outcome, MatchOutcome::SizeMismatch);
  EXPECT_EQ(rebuild.uidls[1], "0000000c00000001");
  EXPECT_EQ(rebuild.results[2].outcome, MatchOutcome::NoCandidate);
  EXPECT_EQ(rebuild.uidls[2], "0000000d00000001");
}

}  // namespace
}  // namespace popbridge::protocol::uidl
