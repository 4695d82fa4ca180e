#include "protocol/bridge/stable_uidls.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/bridge/mailbox_options.h"
#include "protocol/uidl/import_file.h"
#include "protocol/uidl/map_record.h"

namespace popbridge::protocol {
namespace {

using uidl::MatchFacts;

MatchFacts facts(std::string messageId, std::uint64_t size) {
  MatchFacts f;
  f.messageId = std::move(messageId);
  f.dateKey = "@1";
  f.size = size;
  f.hasHeader = true;
  return f;
}

TEST(AssignMapUidls, MatchedMessagesKeepTheirUidlsAndNewOnesNeverReuseOld) {
  // The map before: three messages under UIDVALIDITY 5, and one imported entry whose UIDL is
  // what a new message of UIDVALIDITY 6 would get at first sight.
  const std::vector<UidlRecord> stored = {
      uidl::toRecord({5, 1}, "0000000100000005", facts("a", 10)),
      uidl::toRecord({5, 2}, "0000000200000005", facts("b", 20)),
      uidl::toRecord({5, 3}, "0000000300000005", facts("c", 30)),
      uidl::toRecord({uidl::kImportUidValidity, 1}, "0000000400000006", facts("z", 99))};
  // After the change (UIDVALIDITY 6): b and a are still there (renumbered), c is gone, d and e
  // are new.
  const std::vector<std::uint32_t> missing = {1, 2, 3, 4};
  const std::vector<MatchFacts> present = {facts("b", 20), facts("a", 10), facts("d", 40),
                                           facts("e", 50)};
  const MapAssignment out =
      assignMapUidls(6, missing, present, stored, missing, true, defaultUidlFormat());
  ASSERT_EQ(out.uidls.size(), 4u);
  EXPECT_EQ(out.uidls[0], "0000000200000005");
  EXPECT_EQ(out.uidls[1], "0000000100000005");
  EXPECT_EQ(out.uidls[2], "0000000300000006");
  EXPECT_NE(out.uidls[3], "0000000400000006") << "held by an entry a client may remember";
  EXPECT_EQ(out.uidls[3][0], '~');
  EXPECT_EQ(out.exact.matched, 2u);
  EXPECT_EQ(out.exact.noCandidate, 2u);
  EXPECT_EQ(out.earlier, 3u);
  EXPECT_EQ(out.imports, 1u);
  EXPECT_EQ(out.puts.size(), 4u);
  // The whole mailbox was matched: every earlier and imported entry goes.
  EXPECT_EQ(out.erases.size(), 4u);
}

TEST(AssignMapUidls, IdenticalCopiesGetDistinctNewUidls) {
  const std::vector<UidlRecord> stored = {uidl::toRecord({5, 1}, "old-a", facts("a", 10))};
  const std::vector<std::uint32_t> missing = {7, 8};
  const std::vector<MatchFacts> present = {facts("a", 10), facts("a", 10)};
  const MapAssignment out =
      assignMapUidls(9, missing, present, stored, missing, true, defaultUidlFormat());
  EXPECT_EQ(out.exact.ambiguous, 2u);
  EXPECT_EQ(out.uidls[0], "0000000700000009");
  EXPECT_EQ(out.uidls[1], "0000000800000009");
}

TEST(AssignMapUidls, OnlyTheNewestListedKeepsUnmatchedEarlierEntries) {
  const std::vector<UidlRecord> stored = {uidl::toRecord({5, 1}, "old-a", facts("a", 10)),
                                          uidl::toRecord({5, 2}, "old-b", facts("b", 20))};
  const std::vector<std::uint32_t> missing = {4};
  const std::vector<MatchFacts> present = {facts("b", 20)};
  const MapAssignment out =
      assignMapUidls(6, missing, present, stored, missing, false, defaultUidlFormat());
  EXPECT_EQ(out.uidls[0], "old-b");
  ASSERT_EQ(out.erases.size(), 1u) << "a, unlisted, may still be matched later";
  EXPECT_EQ(out.erases[0], (UidKey{5, 2}));
}

// An import end to end: the old server's file, the IMAP side's HEADER.FIELDS facts, and the
// LIST sizes of a server that counted LF line ends.
TEST(AssignMapUidls, AnImportKeepsTheOldServersUidls) {
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
  const auto entries = uidl::parseImportFile(file, error);
  ASSERT_TRUE(entries.has_value()) << error;
  std::vector<UidlRecord> stored;
  for (const auto& e : *entries) {
    stored.push_back(
        uidl::toRecord({uidl::kImportUidValidity, static_cast<std::uint32_t>(stored.size() + 1)},
                       e.uidl, e.facts));
  }
  auto imapFacts = [](std::string_view header, std::uint64_t size) {
    std::string problem;
    MatchFacts f = *uidl::parseHeaderFacts(header, problem);
    f.size = size;
    return f;
  };
  const std::vector<std::uint32_t> missing = {11, 12, 13};
  const std::vector<MatchFacts> present = {
      // 40 lines of 1000 octets: the old server said 960.
      imapFacts("From: a@x\r\nDate: Sat, 01 Jan 2000 00:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\n",
                1000),
      // Same headers, but a size no line-end count explains.
      imapFacts("From: a@x\r\nDate: 2 Jan 2000 00:00:00 GMT\r\nMessage-ID: <2@x>\r\n\r\n", 400),
      imapFacts("From: b@x\r\nDate: 3 Jan 2000 00:00:00 GMT\r\nMessage-ID: <3@x>\r\n\r\n", 77)};
  const MapAssignment out =
      assignMapUidls(1, missing, present, stored, missing, true, defaultUidlFormat());
  EXPECT_EQ(out.uidls[0], "old-1");
  EXPECT_EQ(out.imported.matched, 1u);
  EXPECT_EQ(out.imported.sizeMismatch, 1u);
  EXPECT_EQ(out.uidls[1], "0000000c00000001");
  EXPECT_EQ(out.imported.noCandidate, 1u);
  EXPECT_EQ(out.uidls[2], "0000000d00000001");
}

}  // namespace
}  // namespace popbridge::protocol
