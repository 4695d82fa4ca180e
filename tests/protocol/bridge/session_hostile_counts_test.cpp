// Counts and sizes from a hostile or broken upstream: none may size memory
// beyond what configuration or the bytes that arrived allow, and none may
// wrap a total around.
#include <gtest/gtest.h>

#include <limits>

#include "tests/protocol/bridge/session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

class HostileCountsTest : public SessionTest {
 protected:
  // USER/PASS and the upstream login, up to the answer to SELECT.
  void loginUntilSelect() { loginUpstream(); }
};

TEST_F(HostileCountsTest, AHugeExistsCountAllocatesOnlyWhatArrives) {
  loginUntilSelect();
  upstream("* 4294967295 EXISTS\r\n* OK [UIDVALIDITY 7] UIDs valid\r\n");
  tagged("OK [READ-WRITE] Select completed");
  // With max_messages unset, more than a snapshot holds is served newest first.
  EXPECT_EQ(sink_.lastUpstream(), sink_.lastTag() + " FETCH 4290772992:* (UID RFC822.SIZE FLAGS)\r\n");
  EXPECT_NE(sink_.logs.find("4294967295 messages; serving the newest 4194304"), std::string::npos)
      << sink_.logs;
  upstream("* 4294967294 FETCH (UID 7 RFC822.SIZE 10 FLAGS ())\r\n"
           "* 4294967295 FETCH (UID 9 RFC822.SIZE 20 FLAGS ())\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_.takeClient(), "+OK Logged in.\r\n");
  client("STAT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK 2 30\r\n");
}

TEST_F(HostileCountsTest, MoreFetchResponsesThanMessagesEndTheLogin) {
  loginUntilSelect();
  upstream("* 2 EXISTS\r\n* OK [UIDVALIDITY 7] UIDs valid\r\n");
  tagged("OK [READ-WRITE] Select completed");
  // A server that never stops listing: the session must not grow with it.
  std::string flood;
  for (std::uint32_t uid = 1; uid <= 3000; ++uid) {
    flood += "* 1 FETCH (UID " + std::to_string(uid) + " RFC822.SIZE 10 FLAGS ())\r\n";
  }
  upstream(flood);
  EXPECT_EQ(sink_.takeClient(), "-ERR [SYS/TEMP] Upstream server unavailable, try again later.\r\n");
  EXPECT_NE(sink_.logs.find("more FETCH responses than it has messages (2)"), std::string::npos)
      << sink_.logs;
}

TEST_F(HostileCountsTest, HugeSizesDoNotWrapTheTotals) {
  loginUntilSelect();
  upstream("* 2 EXISTS\r\n* OK [UIDVALIDITY 7] UIDs valid\r\n");
  tagged("OK [READ-WRITE] Select completed");
  upstream("* 1 FETCH (UID 1 RFC822.SIZE 18446744073709551615 FLAGS ())\r\n"
           "* 2 FETCH (UID 2 RFC822.SIZE 2 FLAGS ())\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_.takeClient(), "+OK Logged in.\r\n");
  client("STAT\r\nRSET\r\n");
  EXPECT_EQ(sink_.takeClient(),
            "+OK 2 18446744073709551615\r\n+OK maildrop has 2 messages (18446744073709551615 "
            "octets)\r\n");
}

}  // namespace
}  // namespace popbridge::protocol::session_test
