// Bodies a server gets wrong: a literal it never sends (GNU Mailutils imap4d
// answers with its own completion inside the announced literal), and a
// substitute for a message another client expunged (Courier's "This message
// is no longer available"), which must not pass for the real one, while
// Exchange's inexact RFC822.SIZE must not refuse a genuine message.
#include <gtest/gtest.h>

#include "tests/protocol/bridge/session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

constexpr std::string_view kPlaceholder =
    "Subject: Message deleted\r\n\r\nThis message is no longer available on the server.\r\n";

class BrokenBodyTest : public SessionTest {
 protected:
  // The existence check that follows a body of unexpected size: NOOP, then
  // UID FETCH of the UID alone. `present` answers whether it still exists.
  void answerExistenceCheck(std::uint32_t uid, std::uint32_t seq, bool present,
                            std::string_view noopUntagged = "") {
    ASSERT_EQ(sink_.lastUpstream(), sink_.lastTag() + " NOOP\r\n");
    upstream(noopUntagged);
    tagged("OK NOOP completed");
    ASSERT_EQ(sink_.lastUpstream(),
              sink_.lastTag() + " UID FETCH " + std::to_string(uid) + " (UID)\r\n");
    if (present) upstream("* " + std::to_string(seq) + " FETCH (UID " + std::to_string(uid) + ")\r\n");
    tagged("OK Fetch completed");
  }
};

TEST_F(BrokenBodyTest, ALiteralThatNeverComesGivesSysTempAtOnce) {
  login();
  client("RETR 1\r\n");
  const std::string tag = sink_.lastTag();
  const std::size_t closes = sink_.upstreamCloses;
  // What imap4d sends instead of 23 octets: its own end of the command.
  upstream("* 1 FETCH (UID 10 BODY[] {23}\r\n)\r\n" + tag + " OK UID FETCH Completed\r\n");
  EXPECT_EQ(sink_.takeClient(),
            "-ERR [SYS/TEMP] Upstream server sent a broken reply, try again later.\r\n");
  EXPECT_EQ(sink_.upstreamCloses, closes + 1);  // that connection is not used again
  EXPECT_NE(sink_.logs.find("broken literal"), std::string::npos) << sink_.logs;
  EXPECT_FALSE(session_->closed());
  // Later commands answer at once instead of waiting on a dead upstream.
  client("RETR 2\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR [SYS/TEMP] Upstream connection lost, try again later.\r\n");
  // Nothing was marked: QUIT has nothing it could fail to apply.
  client("QUIT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out.\r\n");
}

TEST_F(BrokenBodyTest, TheOkWaitsForTheFirstBytesOfTheLiteral) {
  login();
  client("RETR 1\r\n");
  upstream("* 1 FETCH (UID 10 BODY[] {23}\r\n");
  EXPECT_EQ(sink_.takeClient(), "");
  upstream(")");
  EXPECT_EQ(sink_.takeClient(), "");
  // A stall now still allows an honest -ERR: nothing was promised yet.
  session_->onUpstreamTimeout();
  EXPECT_EQ(sink_.takeClient(), "-ERR [SYS/TEMP] Upstream connection lost, try again later.\r\n");
}

// Each body starts like a broken literal but is not one: another tag, or too
// short to hold ours. All are served byte for byte.
class LookalikeBodyTest : public BrokenBodyTest,
                          public ::testing::WithParamInterface<std::string> {};

TEST_P(LookalikeBodyTest, IsServed) {
  const std::string body = GetParam();
  messages_ = {{10, body}};
  login();
  client("RETR 1\r\n");
  upstream("* 1 FETCH (UID 10 BODY[] {" + std::to_string(body.size()) + "}\r\n" + body + ")\r\n");
  tagged("OK Fetch completed");
  std::string out = sink_.takeClient();
  EXPECT_EQ(out.rfind("+OK " + std::to_string(body.size()) + " octets\r\n", 0), 0u) << out;
  EXPECT_NE(out.find(body), std::string::npos) << out;
  EXPECT_TRUE(session_->readyForCommand());
}

INSTANTIATE_TEST_SUITE_P(Bodies, LookalikeBodyTest,
                         ::testing::Values(")\r\nP1 OK UID FETCH Completed\r\n", ")\r\nP",
                                           ")"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return "length_" + std::to_string(info.param.size());
                         });

TEST_F(BrokenBodyTest, ABrokenLiteralInATopWindowCutsTheConnection) {
  login();
  client("TOP 3 10\r\n");
  serveBody("Subject: three\r\nX: y\r\n\r\n", 4, 15, "BODY[HEADER]");
  const std::string tag = sink_.lastTag();
  upstream("* 4 FETCH (UID 15 BODY[TEXT]<0> {100}\r\n)\r\n" + tag + " OK Fetch completed\r\n");
  EXPECT_TRUE(session_->closed());
  EXPECT_EQ(sink_.takeClient(), "+OK Top of message follows.\r\nSubject: three\r\nX: y\r\n\r\n");
}

TEST_F(BrokenBodyTest, ASubstituteForAnExpungedMessageIsRefused) {
  login();
  client("RETR 1\r\n");
  // Courier: the placeholder instead of message 1's 23 octets, then tagged OK.
  upstream("* 1 FETCH (UID 10 BODY[] {" + std::to_string(kPlaceholder.size()) + "}\r\n" +
           std::string(kPlaceholder) + ")\r\n");
  tagged("OK FETCH completed.");
  EXPECT_EQ(sink_.takeClient(), "");  // nothing goes out before the check
  answerExistenceCheck(10, 1, false, "* 1 EXPUNGE\r\n");
  // The same answer as for Dovecot's EXPUNGEISSUED.
  EXPECT_EQ(sink_.takeClient(), "-ERR Message was deleted by another client.\r\n");
  EXPECT_NE(sink_.logs.find("substitute body"), std::string::npos) << sink_.logs;
  // DELE of the real message stays possible and goes by UID.
  client("DELE 1\r\nQUIT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Marked to be deleted.\r\n");
  answerUidValidityCheck();
  EXPECT_EQ(sink_.lastUpstream(), sink_.lastTag() + " UID STORE 10 +FLAGS.SILENT (\\Deleted)\r\n");
}

TEST_F(BrokenBodyTest, AnInexactSizeOfAMessageThatExistsIsServed) {
  login();
  client("RETR 1\r\n");
  // Exchange: RFC822.SIZE said 23, the body is 25 octets.
  const std::string body = "Subject: one\r\n\r\nfirst!!\r\n";
  upstream("* 1 FETCH (UID 10 BODY[] {" + std::to_string(body.size()) + "}\r\n" + body + ")\r\n");
  tagged("OK FETCH completed.");
  EXPECT_EQ(sink_.takeClient(), "");
  answerExistenceCheck(10, 1, true);
  EXPECT_EQ(sink_.takeClient(), "+OK 23 octets\r\n" + body + ".\r\n");
  EXPECT_NE(sink_.logs.find("the message exists, serving it"), std::string::npos) << sink_.logs;
  EXPECT_TRUE(session_->readyForCommand());
}

TEST_F(BrokenBodyTest, AnInexactSizeTooLargeToHoldIsFetchedAgain) {
  const std::string body = "Subject: big\r\n\r\n" + std::string(100 * 1024, 'x') + "\r\n";
  messages_ = {{10, "Subject: small\r\n\r\n"}};  // RFC822.SIZE far from the truth
  login();
  client("RETR 1\r\n");
  const std::string literal =
      "* 1 FETCH (UID 10 BODY[] {" + std::to_string(body.size()) + "}\r\n" + body + ")\r\n";
  upstream(literal);
  tagged("OK FETCH completed.");
  answerExistenceCheck(10, 1, true);
  // Too much to have kept: the same FETCH again, served whatever its size.
  EXPECT_EQ(sink_.lastUpstream(), sink_.lastTag() + " UID FETCH 10 (BODY.PEEK[])\r\n");
  EXPECT_EQ(sink_.takeClient(), "");
  upstream(literal);
  tagged("OK FETCH completed.");
  std::string out = sink_.takeClient();
  EXPECT_EQ(out.rfind("+OK 18 octets\r\nSubject: big\r\n", 0), 0u) << out.substr(0, 80);
  EXPECT_EQ(out.size(), std::string("+OK 18 octets\r\n").size() + body.size() + 3);
  EXPECT_TRUE(session_->readyForCommand());
}

// A failure anywhere in the check is no proof either way: -ERR [SYS/TEMP], never the held body
// and never "deleted". `failAt` is the step whose tagged reply is NO.
class FailedCheckTest : public BrokenBodyTest, public ::testing::WithParamInterface<int> {};

TEST_P(FailedCheckTest, GivesSysTemp) {
  login();
  client("RETR 1\r\n");
  upstream("* 1 FETCH (UID 10 BODY[] {" + std::to_string(kPlaceholder.size()) + "}\r\n" +
           std::string(kPlaceholder) + ")\r\n");
  tagged(GetParam() == 0 ? "NO [SERVERBUG] Internal error" : "OK FETCH completed.");
  if (GetParam() >= 1) tagged(GetParam() == 1 ? "BAD NOOP refused" : "OK NOOP completed");
  if (GetParam() >= 2) tagged("NO [SERVERBUG] Search failed");
  EXPECT_EQ(sink_.takeClient(),
            "-ERR [SYS/TEMP] Upstream could not fetch the message, try again later.\r\n");
  EXPECT_TRUE(session_->readyForCommand());
}

std::string failedStepName(const ::testing::TestParamInfo<int>& info) {
  constexpr const char* kNames[] = {"Fetch", "Noop", "UidFetch"};
  return kNames[info.param];
}

INSTANTIATE_TEST_SUITE_P(Steps, FailedCheckTest, ::testing::Values(0, 1, 2), failedStepName);

TEST_F(BrokenBodyTest, ASubstituteAnsweredWithExpungeIssuedNeedsNoCheck) {
  login();
  client("RETR 1\r\n");
  upstream("* 1 FETCH (UID 10 BODY[] {" + std::to_string(kPlaceholder.size()) + "}\r\n" +
           std::string(kPlaceholder) + ")\r\n");
  tagged("NO [EXPUNGEISSUED] Some messages were expunged");
  EXPECT_EQ(sink_.takeClient(), "-ERR Message was deleted by another client.\r\n");
}

}  // namespace
}  // namespace popbridge::protocol::session_test
