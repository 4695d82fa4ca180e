// The metrics hooks of the sinks fire once per event, with the right counts.

#include "tests/protocol/bridge/session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

std::uint32_t deleted(const RecordingSink& sink, DeletePolicy policy) {
  return sink.deletedBy[static_cast<std::size_t>(policy)];
}

TEST_F(SessionTest, MetricsHooksCountLoginRetrAndDeletionsByPolicy) {
  login();
  EXPECT_EQ(sink_.loginsOk, 1);
  EXPECT_EQ(sink_.loginsFailed, 0);
  EXPECT_EQ(sink_.upstreamLogins, 1);
  client("RETR 1\r\n");
  serveBody(messages_[0].body, 1, 10);
  EXPECT_EQ(sink_.retrieved, 1);
  EXPECT_EQ(sink_.tops, 0);
  client("DELE 1\r\nDELE 2\r\nQUIT\r\n");
  answerUidValidityCheck();
  EXPECT_EQ(sink_.lastUpstream(), "P6 UID STORE 10:11 +FLAGS.SILENT (\\Deleted)\r\n");
  EXPECT_EQ(deleted(sink_, DeletePolicy::Flag), 0u);  // not before the server said OK
  tagged("OK Store completed");
  EXPECT_EQ(deleted(sink_, DeletePolicy::Flag), 2u);
  EXPECT_EQ(deleted(sink_, DeletePolicy::Expunge) + deleted(sink_, DeletePolicy::Move), 0u);
  EXPECT_EQ(sink_.deletionsRefused, 0u);
  EXPECT_EQ(sink_.uidValidityChanges, 0);
}

TEST_F(SessionTest, MetricsHooksCountTheEffectivePolicy) {
  options_.mailbox.onDelete = DeletePolicy::Move;
  login();
  client("DELE 2\r\nQUIT\r\n");
  answerUidValidityCheck();
  EXPECT_EQ(sink_.lastUpstream(), "P5 UID MOVE 11 Trash\r\n");
  tagged("OK Move completed");
  EXPECT_EQ(deleted(sink_, DeletePolicy::Move), 1u);
  EXPECT_EQ(deleted(sink_, DeletePolicy::Flag), 0u);
}

TEST_F(SessionTest, MetricsHooksCountARejectedLogin) {
  sink_.rejectLocal = true;
  create();
  client("USER alice\r\nPASS wrong\r\n");
  EXPECT_EQ(sink_.loginsFailed, 1);
  EXPECT_EQ(sink_.lastLoginCode, RespCode::Auth);
  EXPECT_EQ(sink_.loginsOk, 0);
  EXPECT_EQ(sink_.upstreamLogins, 0);
}

TEST_F(SessionTest, MetricsHooksCountAnUpstreamOutageAtLogin) {
  create();
  client("USER alice\r\nPASS s3cret pass\r\n");
  session_->onUpstreamFailed("connection refused");
  EXPECT_EQ(sink_.loginsFailed, 1);
  EXPECT_EQ(sink_.lastLoginCode, RespCode::SysTemp);
}

TEST_F(SessionTest, MetricsHooksCountRefusedDeletions) {
  login();
  client("DELE 1\r\nDELE 2\r\nQUIT\r\n");
  answerUidValidityCheck();
  ASSERT_EQ(sink_.lastUpstream(), "P5 UID STORE 10:11 +FLAGS.SILENT (\\Deleted)\r\n");
  tagged("NO [SERVERBUG] Internal error");
  EXPECT_EQ(sink_.deletionsRefused, 2u);
  EXPECT_EQ(deleted(sink_, DeletePolicy::Flag), 0u);
}

TEST_F(SessionTest, MetricsHooksCountAUidValidityChangeOnceAndItsRefusedDeletion) {
  login();
  client("DELE 1\r\n");
  upstream("* OK [UIDVALIDITY 999] changed\r\n");
  upstream("* OK [UIDVALIDITY 1000] changed again\r\n");
  EXPECT_EQ(sink_.uidValidityChanges, 1);
  client("QUIT\r\n");
  EXPECT_EQ(sink_.deletionsRefused, 1u);
}

TEST_F(SessionTest, MetricsHooksCountNothingForAQuitWithoutDele) {
  login();
  client("QUIT\r\n");
  tagged("OK Logout completed");
  EXPECT_EQ(sink_.deletionsRefused, 0u);
  for (std::uint32_t count : sink_.deletedBy) EXPECT_EQ(count, 0u);
}

}  // namespace
}  // namespace popbridge::protocol::session_test
