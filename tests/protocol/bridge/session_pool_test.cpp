// The maildrop's side of the upstream connection pool: what it hands over when a session ends
// cleanly (and when it must not), and how it adopts a pooled connection: NOOP instead of the
// login, then the usual SELECT; a failed check falls back to a fresh login.

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "protocol/base64.h"
#include "protocol/bridge/session.h"
#include "session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

class PoolingSink : public RecordingSink {
 public:
  std::optional<ImapResumeState> adoptPooledUpstream(
      const UpstreamCredentials& credentials) override {
    ++adoptCalls;
    adoptPassword = credentials.password;
    return std::exchange(offer, std::nullopt);
  }
  bool parkUpstream(const ImapResumeState& state, std::string_view unparsed) override {
    ++parkCalls;
    if (!acceptPark) return false;
    parked = state;
    parkedUnparsed = unparsed;
    return true;
  }
  void notePooledUpstreamStale() override { ++stale; }

  std::optional<ImapResumeState> offer;
  bool acceptPark = true;
  int adoptCalls = 0, parkCalls = 0, stale = 0;
  std::string adoptPassword;
  std::optional<ImapResumeState> parked;
  std::string parkedUnparsed;
};

class SessionPoolTest : public ::testing::Test {
 protected:
  void SetUp() override { options_.allowPlaintextAuth = true; }

  void create() {
    session_.emplace(options_, sink_);
    sink_.session = &*session_;
    session_->start();
    sink_.takeClient();
  }
  void upstream(std::string_view bytes) { session_->feedUpstream(bytes); }
  void tagged(std::string_view rest) {
    upstream(sink_.lastTag() + " " + std::string(rest) + "\r\n");
  }
  // SELECT and the snapshot of two messages, UIDs 10 and 11.
  void selectAndSnapshot() {
    ASSERT_NE(sink_.lastUpstream().find(" SELECT INBOX\r\n"), std::string::npos)
        << sink_.lastUpstream();
    upstream("* 2 EXISTS\r\n* OK [UIDVALIDITY 77] UIDs valid\r\n");
    tagged("OK [READ-WRITE] Select completed");
    ASSERT_NE(sink_.lastUpstream().find(" UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n"),
              std::string::npos);
    upstream(
        "* 1 FETCH (UID 10 RFC822.SIZE 5 FLAGS ())\r\n"
        "* 2 FETCH (UID 11 RFC822.SIZE 6 FLAGS ())\r\n");
    tagged("OK Fetch completed");
    const std::string client = sink_.takeClient();
    ASSERT_TRUE(client.ends_with("+OK Logged in.\r\n")) << client;
  }
  void answerUidValidityCheck() { session_test::answerUidValidityCheck(*session_, sink_, "77"); }
  // A fresh login to TRANSACTION.
  void login() {
    create();
    session_->feedClient("USER alice\r\nPASS s3cret\r\n");
    ASSERT_EQ(sink_.connects, 1);
    session_->onUpstreamConnected();
    upstream("* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN] ready.\r\n");
    tagged("OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS MOVE] Logged in");
    selectAndSnapshot();
  }

  SessionOptions options_;
  PoolingSink sink_;
  std::optional<Pop3Session> session_;
};

TEST_F(SessionPoolTest, QuitWithoutDeleParksInsteadOfLoggingOut) {
  login();
  const std::size_t sent = sink_.upstreamCommands.size();
  session_->feedClient("QUIT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out.\r\n");
  EXPECT_EQ(sink_.parkCalls, 1);
  ASSERT_TRUE(sink_.parked);
  EXPECT_EQ(sink_.parked->tagPrefix, "P");
  EXPECT_EQ(sink_.parked->nextTag, 4u);  // P1 login, P2 SELECT, P3 snapshot
  EXPECT_TRUE(sink_.parked->caps.uidPlus);
  EXPECT_TRUE(sink_.parked->literalPlus);
  EXPECT_EQ(sink_.upstreamCommands.size(), sent);  // no LOGOUT
  // The claim went back before the connection was offered (it counts against the cap itself).
  EXPECT_GE(sink_.releases, 1);
}

TEST_F(SessionPoolTest, QuitAfterDeleParksOnceTheUpdateIsDone) {
  login();
  session_->feedClient("DELE 1\r\nQUIT\r\n");
  EXPECT_EQ(sink_.parkCalls, 0);
  answerUidValidityCheck();
  EXPECT_EQ(sink_.parkCalls, 0);
  EXPECT_EQ(sink_.lastUpstream(), "P5 UID STORE 10 +FLAGS.SILENT (\\Deleted)\r\n");
  // Unsolicited data in the same read as the reply goes with the connection.
  upstream("P5 OK Store completed\r\n* 2 EXISTS\r\n* 3 EXI");
  EXPECT_EQ(sink_.parkCalls, 1);
  EXPECT_EQ(sink_.parkedUnparsed, "* 2 EXISTS\r\n* 3 EXI");
  EXPECT_EQ(sink_.parked->nextTag, 6u);
}

TEST_F(SessionPoolTest, ARefusedParkLogsOut) {
  login();
  sink_.acceptPark = false;
  session_->feedClient("QUIT\r\n");
  EXPECT_EQ(sink_.parkCalls, 1);
  EXPECT_EQ(sink_.lastUpstream(), "P4 LOGOUT\r\n");
}

TEST_F(SessionPoolTest, AFailedUpdateIsNeverParked) {
  login();
  session_->feedClient("DELE 1\r\nQUIT\r\n");
  answerUidValidityCheck();
  ASSERT_EQ(sink_.lastUpstream(), "P5 UID STORE 10 +FLAGS.SILENT (\\Deleted)\r\n");
  tagged("NO [SERVERBUG] Disk full");
  EXPECT_EQ(sink_.parkCalls, 0);
  EXPECT_NE(sink_.lastUpstream().find("LOGOUT"), std::string::npos);
}

TEST_F(SessionPoolTest, AUidValidityChangeIsNeverParked) {
  login();
  upstream("* OK [UIDVALIDITY 78] changed\r\n");
  session_->feedClient("QUIT\r\n");
  EXPECT_EQ(sink_.parkCalls, 0);
  EXPECT_NE(sink_.lastUpstream().find("LOGOUT"), std::string::npos);
}

TEST_F(SessionPoolTest, AClientGoneMidRetrLeavesNothingToPark) {
  login();
  session_->feedClient("RETR 1\r\n");
  upstream("* 1 FETCH (UID 10 BODY[] {5}\r\nab");
  session_->onClientClosed("connection reset");
  EXPECT_EQ(sink_.parkCalls, 0);
  EXPECT_GE(sink_.upstreamCloses, 1);
}

TEST_F(SessionPoolTest, AClientGoneWhileIdleParks) {
  login();
  session_->onClientClosed("connection reset");
  EXPECT_EQ(sink_.parkCalls, 1);
}

TEST_F(SessionPoolTest, AnAdoptedConnectionIsCheckedWithNoopThenSelected) {
  ImapResumeState state;
  state.tagPrefix = "Q";
  state.nextTag = 8;
  state.caps.known = true;
  state.caps.uidPlus = true;
  sink_.offer = state;
  create();
  session_->feedClient("USER alice\r\nPASS s3cret\r\n");
  EXPECT_EQ(sink_.adoptCalls, 1);
  EXPECT_EQ(sink_.adoptPassword, "s3cret");  // the pool keys on it
  EXPECT_EQ(sink_.connects, 0);
  EXPECT_EQ(sink_.lastUpstream(), "Q8 NOOP\r\n");
  EXPECT_TRUE(session_->awaitingUpstream());
  EXPECT_TRUE(session_->awaitingGreeting());  // bounded by connect_timeout
  EXPECT_EQ(sink_.claims, 0);
  upstream("* 3 EXISTS\r\nQ8 OK NOOP completed\r\n");
  EXPECT_EQ(sink_.claims, 1);
  EXPECT_EQ(sink_.lastUpstream(), "Q9 SELECT INBOX\r\n");
  selectAndSnapshot();
  session_->feedClient("QUIT\r\n");
  ASSERT_TRUE(sink_.parked);
  EXPECT_EQ(sink_.parked->tagPrefix, "Q");
  EXPECT_EQ(sink_.parked->nextTag, 11u);
}

class SessionPoolCheckFails : public SessionPoolTest,
                              public ::testing::WithParamInterface<std::string> {};

TEST_P(SessionPoolCheckFails, FallsBackToAFreshLoginWithThePassword) {
  ImapResumeState state;
  state.tagPrefix = "Q";
  state.nextTag = 8;
  state.caps.known = true;
  sink_.offer = state;
  create();
  session_->feedClient("USER alice\r\nPASS s3cret\r\n");
  ASSERT_EQ(sink_.lastUpstream(), "Q8 NOOP\r\n");
  const std::string& how = GetParam();
  if (how == "no") {
    upstream("Q8 NO not now\r\n");
  } else if (how == "bye") {
    upstream("* BYE going away\r\n");
  } else if (how == "closed") {
    session_->onUpstreamClosed("connection reset by peer");
  } else {
    session_->onUpstreamTimeout();
  }
  EXPECT_EQ(sink_.stale, 1);
  EXPECT_GE(sink_.upstreamCloses, 1);
  ASSERT_EQ(sink_.connects, 1);
  EXPECT_EQ(sink_.takeClient(), "+OK Send your password.\r\n");  // and nothing of the failure
  session_->onUpstreamConnected();
  upstream("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready.\r\n");
  EXPECT_EQ(sink_.lastUpstream(),
            "Q9 AUTHENTICATE PLAIN " + base64Encode(std::string("\0alice\0s3cret", 13)) + "\r\n");
  tagged("OK [CAPABILITY IMAP4rev1 UIDPLUS] Logged in");
  selectAndSnapshot();
}

INSTANTIATE_TEST_SUITE_P(Table, SessionPoolCheckFails,
                         ::testing::Values("no", "bye", "closed", "timeout"));

}  // namespace
}  // namespace popbridge::protocol::session_test
