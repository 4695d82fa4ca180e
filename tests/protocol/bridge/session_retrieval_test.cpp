// Whole POP3 sessions against scripted IMAP server bytes: RETR and TOP
// (partial fetch), messages that vanish, and the DELE policies at QUIT.

#include <ostream>
#include <string>
#include <vector>

#include "tests/protocol/bridge/session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

TEST_F(SessionTest, TopZeroFetchesOnlyTheHeader) {
  login();
  client("TOP 3 0\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P4 UID FETCH 15 (BODY.PEEK[HEADER])\r\n");
  serveBody("Subject: three\r\nX: y\r\n\r\n", 4, 15, "BODY[HEADER]");
  EXPECT_EQ(sink_.takeClient(),
            "+OK Top of message follows.\r\nSubject: three\r\nX: y\r\n\r\n.\r\n");
}

// TOP n k>0 reads the header, then only windows of the text (the issue's
// "TOP by partial fetch": the one wire change of the session split).
TEST_F(SessionTest, TopWithLinesLimitsTheBody) {
  login();
  client("TOP 3 2\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P4 UID FETCH 15 (BODY.PEEK[HEADER])\r\n");
  serveBody("Subject: three\r\nX: y\r\n\r\n", 4, 15, "BODY[HEADER]");
  EXPECT_EQ(sink_.lastUpstream(), "P5 UID FETCH 15 (BODY.PEEK[TEXT]<0.65536>)\r\n");
  serveBody("l1\r\nl2\r\nl3\r\n", 4, 15, "BODY[TEXT]<0>");
  EXPECT_EQ(sink_.takeClient(),
            "+OK Top of message follows.\r\nSubject: three\r\nX: y\r\n\r\nl1\r\nl2\r\n.\r\n");
  EXPECT_EQ(session_->stats().retrieved, 0u);
  EXPECT_TRUE(session_->readyForCommand());
}

TEST_F(SessionTest, TopReadsFurtherWindowsOnlyUntilItHasItsLines) {
  login();
  client("TOP 3 3\r\n");
  serveBody("Subject: three\r\nX: y\r\n\r\n", 4, 15, "BODY[HEADER]");
  // A first window of one long line: no line complete yet, so a second,
  // twice as large window follows from where the first ended.
  std::string longLine(65536, 'a');
  serveBody(longLine, 4, 15, "BODY[TEXT]<0>");
  EXPECT_EQ(sink_.lastUpstream(), "P6 UID FETCH 15 (BODY.PEEK[TEXT]<65536.131072>)\r\n");
  std::string rest = "\r\nb\r\n.c\r\nd\r\n" + std::string(200000, 'e');
  std::size_t before = upstreamCount();
  serveBody(rest.substr(0, 131072), 4, 15, "BODY[TEXT]<65536>");
  EXPECT_EQ(upstreamCount(), before);  // three lines are out: nothing more is read
  EXPECT_EQ(sink_.takeClient(), "+OK Top of message follows.\r\nSubject: three\r\nX: y\r\n\r\n" +
                                    longLine + "\r\nb\r\n..c\r\n.\r\n");
  EXPECT_TRUE(session_->readyForCommand());
}

TEST_F(SessionTest, TopStopsAtTheEndOfAShortBodyWithoutCrlf) {
  login();
  client("TOP 3 10\r\n");
  serveBody("Subject: three\r\nX: y\r\n\r\n", 4, 15, "BODY[HEADER]");
  std::size_t before = upstreamCount();
  serveBody("l1\r\nlast", 4, 15, "BODY[TEXT]<0>");
  EXPECT_EQ(upstreamCount(), before);  // a short window is the end of the body
  EXPECT_EQ(sink_.takeClient(),
            "+OK Top of message follows.\r\nSubject: three\r\nX: y\r\n\r\nl1\r\nlast\r\n.\r\n");
}

TEST_F(SessionTest, TopWindowFailureCutsTheConnection) {
  login();
  client("TOP 3 10\r\n");
  serveBody("Subject: three\r\nX: y\r\n\r\n", 4, 15, "BODY[HEADER]");
  tagged("NO [SERVERBUG] Internal error");
  EXPECT_TRUE(session_->closed());
  // The "+OK" and the header went out; no "-ERR" and no terminator may follow.
  EXPECT_EQ(sink_.takeClient(), "+OK Top of message follows.\r\nSubject: three\r\nX: y\r\n\r\n");
}

TEST_F(SessionTest, RetrOfMessageExpungedElsewhereGivesErr) {
  login();
  client("RETR 1\r\n");
  upstream("* 1 EXPUNGE\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_.takeClient(), "-ERR Message was deleted by another client.\r\n");
  EXPECT_TRUE(session_->readyForCommand());
  // Numbering stays frozen: message 2 is still UID 11.
  client("RETR 2\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P5 UID FETCH 11 (BODY.PEEK[])\r\n");
}

TEST_F(SessionTest, DovecotExpungeIssuedGivesErrNotAnEmptyMessage) {
  login();
  client("RETR 2\r\n");
  // What Dovecot sends for a message another session expunged before ours synced.
  upstream("* 2 FETCH (UID 11 BODY[] \"\")\r\n");
  tagged("NO [EXPUNGEISSUED] Some of the requested messages no longer exist");
  EXPECT_EQ(sink_.takeClient(), "-ERR Message was deleted by another client.\r\n");
}

TEST_F(SessionTest, FetchNoWithoutBodyGivesSysTemp) {
  login();
  client("RETR 2\r\n");
  tagged("NO [SERVERBUG] Internal error");
  EXPECT_EQ(sink_.takeClient(),
            "-ERR [SYS/TEMP] Upstream could not fetch the message, try again later.\r\n");
}

TEST_F(SessionTest, UpstreamDeathMidBodyClosesClientWithoutTerminator) {
  login();
  client("RETR 1\r\n");
  upstream("* 1 FETCH (UID 10 BODY[] {" + std::to_string(messages_[0].body.size()) +
           "}\r\nSubject: partial\r\n");
  EXPECT_TRUE(session_->streamingBody());
  session_->onUpstreamClosed("connection reset");
  std::string out = sink_.takeClient();
  EXPECT_EQ(out,
            "+OK " + std::to_string(messages_[0].body.size()) + " octets\r\nSubject: partial\r\n");
  EXPECT_TRUE(sink_.clientClosed);
  EXPECT_TRUE(session_->closed());
}

TEST_F(SessionTest, ByeMidBodyClosesClient) {
  login();
  client("RETR 1\r\n");
  upstream("* 1 FETCH (UID 10 BODY[] {" + std::to_string(messages_[0].body.size()) +
           "}\r\nSubject: pa");
  session_->onUpstreamTimeout();
  EXPECT_TRUE(sink_.clientClosed);
  EXPECT_EQ(sink_.takeClient().find("-ERR"), std::string::npos);
}

TEST_F(SessionTest, UpstreamTimeoutBeforeBodyGivesSysTemp) {
  login();
  client("RETR 1\r\n");
  session_->onUpstreamTimeout();
  EXPECT_EQ(sink_.takeClient(), "-ERR [SYS/TEMP] Upstream connection lost, try again later.\r\n");
  EXPECT_TRUE(sink_.clientClosed);
}

struct PolicyCase {
  DeletePolicy policy;
  std::string_view postLoginCaps;
  std::vector<std::string> expected;  // update commands, without tags
  std::string_view select = "SELECT";
};

// ctest shows the printed parameter in each test name.
void PrintTo(const PolicyCase& c, std::ostream* os) {
  *os << toString(c.policy) << " with " << c.postLoginCaps;
}

class PolicyTest : public SessionTest, public ::testing::WithParamInterface<PolicyCase> {};

TEST_P(PolicyTest, QuitAppliesPolicyToMarkedUidsOnly) {
  const PolicyCase& c = GetParam();
  options_.mailbox.onDelete = c.policy;
  expectedSelect_ = "P2 " + std::string(c.select) + " INBOX\r\n";
  login(c.postLoginCaps);
  client("DELE 1\r\nDELE 3\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Marked to be deleted.\r\n+OK Marked to be deleted.\r\n");
  client("DELE 1\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR Message is deleted.\r\n");
  client("RETR 1\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR Message is deleted.\r\n");
  client("STAT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK 1 " + std::to_string(messages_[1].body.size()) + "\r\n");
  std::size_t before = upstreamCount();
  client("QUIT\r\n");
  if (c.policy != DeletePolicy::Keep) {
    EXPECT_EQ(sink_.takeClient(), "");
    answerUidValidityCheck();
  }
  for (const std::string& expected : c.expected) {
    ASSERT_GT(upstreamCount(), before);
    std::string command = sink_.lastUpstream();
    EXPECT_EQ(command.substr(command.find(' ') + 1), expected + "\r\n");
    EXPECT_EQ(sink_.takeClient(), "");  // QUIT answers only once UPDATE is done
    tagged("OK done");
  }
  std::string last = sink_.lastUpstream();
  EXPECT_EQ(last.substr(last.find(' ') + 1), "LOGOUT\r\n");
  EXPECT_EQ(sink_.takeClient(), c.policy == DeletePolicy::Keep
                                    ? "+OK Logging out.\r\n"
                                    : "+OK Logging out, 2 messages deleted.\r\n");
  EXPECT_TRUE(sink_.clientClosed);
}

INSTANTIATE_TEST_SUITE_P(
    Policies, PolicyTest,
    ::testing::Values(
        PolicyCase{
            DeletePolicy::Flag, kPostLoginCaps, {"UID STORE 10,15 +FLAGS.SILENT (\\Deleted)"}},
        PolicyCase{DeletePolicy::Expunge,
                   kPostLoginCaps,
                   {"UID STORE 10,15 +FLAGS.SILENT (\\Deleted)", "UID EXPUNGE 10,15"}},
        // Without UIDPLUS a bare EXPUNGE would be the only way: flag instead.
        PolicyCase{
            DeletePolicy::Expunge, "IMAP4rev1 MOVE", {"UID STORE 10,15 +FLAGS.SILENT (\\Deleted)"}},
        PolicyCase{DeletePolicy::Move, kPostLoginCaps, {"UID MOVE 10,15 Trash"}},
        PolicyCase{DeletePolicy::Move,
                   "IMAP4rev1 UIDPLUS",
                   {"UID COPY 10,15 Trash", "UID STORE 10,15 +FLAGS.SILENT (\\Deleted)",
                    "UID EXPUNGE 10,15"}},
        PolicyCase{DeletePolicy::Move,
                   "IMAP4rev1",
                   {"UID COPY 10,15 Trash", "UID STORE 10,15 +FLAGS.SILENT (\\Deleted)"}},
        PolicyCase{DeletePolicy::Seen, kPostLoginCaps, {"UID STORE 10,15 +FLAGS.SILENT (\\Seen)"}},
        PolicyCase{DeletePolicy::Keep, kPostLoginCaps, {}, "EXAMINE"}),
    [](const ::testing::TestParamInfo<PolicyCase>& info) {
      return std::string(toString(info.param.policy)) + "_" + std::to_string(info.index);
    });

TEST_F(SessionTest, RsetClearsMarks) {
  login();
  client("DELE 2\r\nRSET\r\n");
  sink_.takeClient();
  client("QUIT\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P4 LOGOUT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out.\r\n");
}

TEST_F(SessionTest, DroppedConnectionAfterDeleAppliesNothing) {
  login();
  client("DELE 1\r\nDELE 2\r\n");
  std::size_t before = upstreamCount();
  session_->onClientClosed("client reset");
  EXPECT_EQ(upstreamCount(), before);  // no STORE, no EXPUNGE, not even LOGOUT
  EXPECT_EQ(sink_.upstream.find("STORE"), std::string::npos);
  EXPECT_TRUE(session_->closed());
  EXPECT_EQ(session_->stats().deleted, 0u);
}

TEST_F(SessionTest, ShutdownAppliesNothing) {
  login();
  client("DELE 1\r\n");
  sink_.takeClient();
  session_->abort("server shutting down");
  EXPECT_EQ(sink_.takeClient(), "-ERR [SYS/TEMP] Server shutting down.\r\n");
  EXPECT_EQ(sink_.upstream.find("STORE"), std::string::npos);
}

// SIGTERM's drain: a session in TRANSACTION is left alone until its deadline, which then ends it
// with -ERR [SYS/TEMP] and sends the upstream no STORE, MOVE or EXPUNGE.
TEST_F(SessionTest, DrainDeadlineAppliesNothingUpstream) {
  login();
  client("DELE 1\r\nDELE 2\r\n");
  sink_.takeClient();
  std::size_t before = upstreamCount();
  session_->drain();
  EXPECT_EQ(sink_.takeClient(), "");
  EXPECT_FALSE(session_->closed());
  session_->drainDeadline();
  EXPECT_EQ(sink_.takeClient(), "-ERR [SYS/TEMP] Server shutting down.\r\n");
  EXPECT_TRUE(session_->closed());
  EXPECT_TRUE(sink_.clientClosed);
  for (std::size_t i = before; i < sink_.upstreamCommands.size(); ++i) {
    const std::string& command = sink_.upstreamCommands[i];
    EXPECT_EQ(command.find("STORE"), std::string::npos) << command;
    EXPECT_EQ(command.find("EXPUNGE"), std::string::npos) << command;
    EXPECT_EQ(command.find("MOVE"), std::string::npos) << command;
  }
  EXPECT_EQ(session_->stats().deleted, 0u);
}

TEST_F(SessionTest, DrainBeforeLoginEndsTheUpstreamLoginInFlight) {
  create();
  sink_.takeClient();
  client("USER alice\r\nPASS s3cret pass\r\n");
  sink_.takeClient();
  ASSERT_EQ(sink_.connects, 1);
  session_->drain();
  EXPECT_EQ(sink_.takeClient(), "-ERR [SYS/TEMP] Server shutting down, try again later.\r\n");
  EXPECT_TRUE(session_->closed());
}

TEST_F(SessionTest, StoreFailureAtQuitReportsErrAndLogsUids) {
  login();
  client("DELE 2\r\nQUIT\r\n");
  sink_.takeClient();
  answerUidValidityCheck();
  ASSERT_EQ(sink_.lastUpstream(), "P5 UID STORE 11 +FLAGS.SILENT (\\Deleted)\r\n");
  tagged("NO [SERVERBUG] Internal error");
  EXPECT_EQ(sink_.takeClient(),
            "-ERR [SYS/TEMP] Deleting messages failed on the server; they were not removed.\r\n");
  EXPECT_NE(sink_.logs.find("not applied to UIDs 11"), std::string::npos) << sink_.logs;
  EXPECT_TRUE(sink_.clientClosed);
}

TEST_F(SessionTest, UidValidityChangeAbortsDeletions) {
  login();
  client("DELE 1\r\n");
  upstream("* OK [UIDVALIDITY 999] changed\r\n");
  client("RETR 2\r\n");
  EXPECT_EQ(
      sink_.takeClient(),
      "+OK Marked to be deleted.\r\n-ERR [SYS/TEMP] Mailbox changed on the server (UIDVALIDITY); "
      "log in again.\r\n");
  client("QUIT\r\n");
  EXPECT_EQ(sink_.upstream.find("STORE"), std::string::npos);
  EXPECT_EQ(sink_.takeClient().rfind("-ERR [SYS/TEMP] Mailbox changed", 0), 0u);
}

}  // namespace
}  // namespace popbridge::protocol::session_test
