#include "protocol/uidl/stable_id.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace popbridge::protocol::uidl {
namespace {

UidlFormat dovecot() {
  std::string error;
  return *UidlFormat::parse(UidlFormat::kDovecotDefault, error);
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

}  // namespace
}  // namespace popbridge::protocol::uidl
