#include "protocol/uidl/map_record.h"

#include <gtest/gtest.h>

#include <string>

namespace popbridge::protocol::uidl {
namespace {

MatchFacts sampleFacts() {
  std::string error;
  auto facts = parseHeaderFacts(
      "From: a@example.org\r\nTo: b@example.org\r\nSubject: scan\r\n"
      "Date: Tue, 1 Dec 2026 10:00:00 +0100\r\nMessage-ID: <x1@example.org>\r\n\r\n",
      error);
  EXPECT_TRUE(facts) << error;
  facts->size = 1234;
  return *facts;
}

TEST(MapRecord, FactsSurviveTheStoredForm) {
  const MatchFacts facts = sampleFacts();
  const UidlRecord record = toRecord({7, 42}, "0000002a00000007", facts);
  EXPECT_EQ(record.key, (UidKey{7, 42}));
  EXPECT_EQ(record.uidl, "0000002a00000007");
  EXPECT_EQ(record.headerHash.size(), 64u);
  const auto decoded = decodeUidlRecord(record.key, encodeUidlRecord(record));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(toFacts(*decoded), facts);
}

TEST(MapRecord, FactsWithoutAHeaderStayWithoutOne) {
  MatchFacts facts;
  facts.size = 10;
  const UidlRecord record = toRecord({1, 1}, "u", facts);
  EXPECT_TRUE(record.headerHash.empty());
  EXPECT_FALSE(toFacts(record).hasHeader);
}

TEST(MapRecord, AMalformedHashNeverMatches) {
  UidlRecord record = toRecord({1, 1}, "u", sampleFacts());
  for (std::string bad : {record.headerHash.substr(1), record.headerHash + "0",
                          std::string(64, 'G'), std::string(64, 'A')}) {
    record.headerHash = bad;
    EXPECT_FALSE(toFacts(record).hasHeader) << bad;
  }
}

}  // namespace
}  // namespace popbridge::protocol::uidl
