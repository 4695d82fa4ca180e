// Read-ahead ([upstream] read_ahead): while a client RETRs in order, the next message's
// UID FETCH goes upstream as soon as the previous one completed; the RETR that asks for it is
// answered from what came, and anything else first reads and drops that reply.

#include <string>

#include "tests/protocol/bridge/session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

class ReadAheadTest : public SessionTest {
 protected:
  void SetUp() override {
    SessionTest::SetUp();
    options_.readAheadLimit = 1024;
  }

  // The snapshot numbers messages 1, 2, 3 as UIDs 10, 11, 15 (UID 12 is \Deleted).
  const std::string& body(int msn) const { return messages_[msn == 3 ? 3 : msn - 1].body; }
  // The start of a FETCH response whose literal announces `size` octets (all of `content` by
  // default), and `content`.
  std::string literal(int msn, std::uint32_t uid, const std::string& content,
                      std::size_t size = 0) const {
    return "* " + std::to_string(msn) + " FETCH (UID " + std::to_string(uid) + " BODY[] {" +
           std::to_string(size != 0 ? size : content.size()) + "}\r\n" + content;
  }
  std::string okSize(int msn) const {
    return "+OK " + std::to_string(body(msn).size()) + " octets\r\n";
  }
  // Message 2 holds a line to dot-stuff.
  static std::string stuffed(std::string content) {
    if (std::size_t dot = content.find("\n.dot"); dot != std::string::npos) {
      content.insert(dot + 1, ".");
    }
    return content;
  }
  std::string retrReply(int msn) const {
    return "+OK " + std::to_string(body(msn).size()) + " octets\r\n" + stuffed(body(msn)) + ".\r\n";
  }
  // Exchange: RFC822.SIZE was 2 octets short of message 2's body.
  std::string inexact() const { return body(2).substr(0, body(2).size() - 2) + "!!\r\n"; }

  // LIST, then RETR 1 served: the read-ahead of message 2 is on its way.
  void listAndRetrFirst() {
    login();
    client("LIST\r\n");
    sink_.takeClient();
    client("RETR 1\r\n");
    ASSERT_EQ(sink_.lastUpstream(), "P4 UID FETCH 10 (BODY.PEEK[])\r\n");
    serveBody(body(1), 1, 10);
    ASSERT_EQ(sink_.takeClient(), retrReply(1));
    ASSERT_EQ(sink_.lastUpstream(), "P5 UID FETCH 11 (BODY.PEEK[])\r\n");
  }
};

TEST_F(ReadAheadTest, SequentialRetrsAreAnsweredFromTheReadAhead) {
  listAndRetrFirst();
  // The client has not asked: nothing reaches it, and no command timer runs for it.
  EXPECT_FALSE(session_->awaitingUpstream());
  serveBody(body(2), 2, 11);
  EXPECT_EQ(sink_.takeClient(), "");
  std::size_t before = upstreamCount();
  client("RETR 2\r\n");
  // Answered at once, dot-stuffed as ever, and message 3 is read ahead next.
  EXPECT_EQ(sink_.takeClient(), retrReply(2));
  EXPECT_EQ(upstreamCount(), before + 1);
  EXPECT_EQ(sink_.lastUpstream(), "P6 UID FETCH 15 (BODY.PEEK[])\r\n");
  serveBody(body(3), 3, 15);
  client("RETR 3\r\n");
  EXPECT_EQ(sink_.takeClient(), retrReply(3));
  EXPECT_EQ(upstreamCount(), before + 1);  // the last message: nothing follows
  EXPECT_EQ(session_->stats().retrieved, 3u);
  EXPECT_EQ(sink_.retrieved, 3);
  client("QUIT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out.\r\n");
}

TEST_F(ReadAheadTest, RetrAfterRetrWithoutListingReadsAheadFromTheSecond) {
  login();
  client("RETR 1\r\n");
  serveBody(body(1), 1, 10);
  EXPECT_EQ(sink_.lastUpstream(), "P4 UID FETCH 10 (BODY.PEEK[])\r\n");  // a single RETR: no guess
  client("RETR 2\r\n");
  serveBody(body(2), 2, 11);
  EXPECT_EQ(sink_.lastUpstream(), "P6 UID FETCH 15 (BODY.PEEK[])\r\n");
  EXPECT_EQ(sink_.takeClient(), retrReply(1) + retrReply(2));
}

TEST_F(ReadAheadTest, ARetrWhileTheReadAheadIsOnItsWayStreamsTheRestLive) {
  listAndRetrFirst();
  const std::string& b = body(2);
  upstream(literal(2, 11, b.substr(0, 10), b.size()));
  EXPECT_EQ(sink_.takeClient(), "");
  client("RETR 2\r\n");
  EXPECT_TRUE(session_->awaitingUpstream());  // now the client waits: the command timer runs
  EXPECT_EQ(sink_.takeClient(), okSize(2) + b.substr(0, 10));
  upstream(b.substr(10) + ")\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_.takeClient(), retrReply(2).substr(okSize(2).size() + 10));
  EXPECT_EQ(sink_.lastUpstream(), "P6 UID FETCH 15 (BODY.PEEK[])\r\n");
}

TEST_F(ReadAheadTest, AnotherRetrFirstDropsTheReadAheadThenGetsItsOwnMessage) {
  listAndRetrFirst();
  std::size_t before = upstreamCount();
  client("RETR 3\r\n");
  // One command at a time: RETR 3 waits for the read-ahead's reply, which is dropped.
  EXPECT_EQ(upstreamCount(), before);
  EXPECT_TRUE(session_->awaitingUpstream());
  serveBody(body(2), 2, 11);
  EXPECT_EQ(sink_.takeClient(), "");
  EXPECT_EQ(sink_.lastUpstream(), "P6 UID FETCH 15 (BODY.PEEK[])\r\n");
  serveBody(body(3), 3, 15);
  EXPECT_EQ(sink_.takeClient(), retrReply(3));
  EXPECT_EQ(upstreamCount(), before + 1);  // RETR 3 after RETR 1 is no order: no guess
  // A later RETR 2 is fetched anew.
  client("RETR 2\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P7 UID FETCH 11 (BODY.PEEK[])\r\n");
  serveBody(body(2), 2, 11);
  EXPECT_EQ(sink_.takeClient(), retrReply(2));
}

TEST_F(ReadAheadTest, AnotherRetrAfterACompleteReadAheadGoesUpstreamAtOnce) {
  listAndRetrFirst();
  serveBody(body(2), 2, 11);
  client("TOP 2 0\r\n");  // not RETR: the held message is dropped
  EXPECT_EQ(sink_.lastUpstream(), "P6 UID FETCH 11 (BODY.PEEK[HEADER])\r\n");
  serveBody("Subject: two\r\n\r\n", 2, 11, "BODY[HEADER]");
  EXPECT_EQ(sink_.takeClient(), "+OK Top of message follows.\r\nSubject: two\r\n\r\n.\r\n");
}

TEST_F(ReadAheadTest, QuitWhileAReadAheadRunsUpdatesOnlyAfterIt) {
  listAndRetrFirst();
  upstream(literal(2, 11, body(2).substr(0, 5), body(2).size()));
  std::size_t before = upstreamCount();
  client("DELE 1\r\nQUIT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Marked to be deleted.\r\n");
  EXPECT_EQ(upstreamCount(), before);  // the STORE waits for the read-ahead's reply
  EXPECT_TRUE(session_->awaitingUpstream());
  upstream(body(2).substr(5) + ")\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_.takeClient(), "");  // QUIT answers only once UPDATE is done
  answerUidValidityCheck();
  EXPECT_EQ(sink_.lastUpstream(), "P7 UID STORE 10 +FLAGS.SILENT (\\Deleted)\r\n");
  tagged("OK Store completed");
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out, 1 messages deleted.\r\n");
  EXPECT_TRUE(sink_.clientClosed);
}

TEST_F(ReadAheadTest, AFullReadAheadAsksToStopReadingUntilTheClientAsks) {
  // Message 2 is exactly the limit: read ahead, and full once all of it is in.
  options_.readAheadLimit = body(2).size();
  listAndRetrFirst();
  const std::size_t last = body(2).size() - 1;
  upstream(literal(2, 11, body(2).substr(0, last), body(2).size()));
  EXPECT_FALSE(session_->readAheadFull());
  upstream(body(2).substr(last));
  EXPECT_TRUE(session_->readAheadFull());
  client("NOOP\r\n");  // needs no upstream: still held
  EXPECT_EQ(sink_.takeClient(), "+OK\r\n");
  EXPECT_TRUE(session_->readAheadFull());
  client("RETR 2\r\n");
  EXPECT_FALSE(session_->readAheadFull());
  EXPECT_EQ(sink_.takeClient(), okSize(2) + stuffed(body(2)));
  upstream(")\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_.takeClient(), ".\r\n");
}

TEST_F(ReadAheadTest, AFullReadAheadIsReleasedByAnyCommandThatNeedsTheUpstream) {
  options_.readAheadLimit = body(2).size();
  listAndRetrFirst();
  upstream(literal(2, 11, body(2)));
  EXPECT_TRUE(session_->readAheadFull());
  client("RETR 1\r\n");
  EXPECT_FALSE(session_->readAheadFull());  // dropping from here on
  upstream(")\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_.lastUpstream(), "P6 UID FETCH 10 (BODY.PEEK[])\r\n");
  serveBody(body(1), 1, 10);
  EXPECT_EQ(sink_.takeClient(), retrReply(1));
}

TEST_F(ReadAheadTest, AMessageAboveTheLimitIsNotReadAhead) {
  options_.readAheadLimit = body(2).size() - 1;
  login();
  client("LIST\r\nRETR 1\r\n");
  serveBody(body(1), 1, 10);
  EXPECT_EQ(sink_.lastUpstream(), "P4 UID FETCH 10 (BODY.PEEK[])\r\n");
}

TEST_F(ReadAheadTest, NothingIsReadAheadWhenRetrMarksSeen) {
  // BODY[] would set \Seen on a message the client never asked for.
  options_.mailbox.markSeenOnRetr = true;
  login();
  client("LIST\r\nRETR 1\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P4 UID FETCH 10 (BODY[])\r\n");
  serveBody(body(1), 1, 10);
  EXPECT_EQ(sink_.lastUpstream(), "P4 UID FETCH 10 (BODY[])\r\n");
  client("RETR 2\r\n");
  serveBody(body(2), 2, 11);
  EXPECT_EQ(sink_.lastUpstream(), "P5 UID FETCH 11 (BODY[])\r\n");
}

TEST_F(ReadAheadTest, AnInexactSizeIsCheckedBeforeTheReadAheadIsServed) {
  listAndRetrFirst();
  const std::string b = inexact();
  upstream(literal(2, 11, b) + ")\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_.lastUpstream(), "P6 NOOP\r\n");
  tagged("OK NOOP completed");
  EXPECT_EQ(sink_.lastUpstream(), "P7 UID FETCH 11 (UID)\r\n");
  upstream("* 2 FETCH (UID 11)\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_.takeClient(), "");
  client("RETR 2\r\n");
  EXPECT_EQ(sink_.takeClient(), okSize(2) + stuffed(b) + ".\r\n");
  EXPECT_NE(sink_.logs.find("the message exists, serving it"), std::string::npos) << sink_.logs;
}

TEST_F(ReadAheadTest, ASubstituteReadAheadIsRefusedWhenTheClientAsks) {
  listAndRetrFirst();
  const std::string placeholder = "Subject: gone\r\n\r\nno longer available\r\n";
  upstream(literal(2, 11, placeholder) + ")\r\n");
  tagged("OK Fetch completed");
  tagged("OK NOOP completed");
  tagged("OK Fetch completed");  // the UID is not there
  client("RETR 2\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR Message was deleted by another client.\r\n");
  EXPECT_TRUE(session_->readyForCommand());
}

TEST_F(ReadAheadTest, TheCheckOfAnInexactSizeRunsLiveOnceTheClientAsks) {
  listAndRetrFirst();
  const std::string b = inexact();
  upstream(literal(2, 11, b) + ")\r\n");
  tagged("OK Fetch completed");
  client("RETR 2\r\n");  // during the NOOP: the body is still held
  EXPECT_EQ(sink_.takeClient(), "");
  tagged("OK NOOP completed");
  upstream("* 2 FETCH (UID 11)\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_.takeClient(), okSize(2) + stuffed(b) + ".\r\n");
}

TEST_F(ReadAheadTest, TheUpstreamLostDuringAReadAheadGivesTheNextRetrAnErrAndDeletesNothing) {
  listAndRetrFirst();
  upstream(literal(2, 11, body(2).substr(0, 12), body(2).size()));
  session_->onUpstreamClosed("connection reset");
  // The client is idle: it hears nothing yet, and the dead connection is closed.
  EXPECT_EQ(sink_.takeClient(), "");
  EXPECT_FALSE(sink_.clientClosed);
  EXPECT_EQ(sink_.upstreamCloses, 1);
  client("RETR 2\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR [SYS/TEMP] Upstream connection lost, try again later.\r\n");
  std::size_t before = upstreamCount();
  client("DELE 1\r\nQUIT\r\n");
  EXPECT_EQ(sink_.takeClient(),
            "+OK Marked to be deleted.\r\n-ERR [SYS/TEMP] Upstream connection lost; deletions may "
            "not have been applied.\r\n");
  EXPECT_EQ(upstreamCount(), before);
  EXPECT_EQ(sink_.deletionsRefused, 1u);
  EXPECT_TRUE(sink_.clientClosed);
}

TEST_F(ReadAheadTest, TheUpstreamLostWhileACommandWaitsForTheReadAheadAnswersThatCommand) {
  listAndRetrFirst();
  client("DELE 1\r\nQUIT\r\n");
  sink_.takeClient();
  session_->onUpstreamTimeout();  // the QUIT waits: its timer runs, and this is it firing
  EXPECT_EQ(sink_.takeClient(),
            "-ERR [SYS/TEMP] Upstream connection lost; deletions may not have been applied.\r\n");
  EXPECT_EQ(sink_.upstreamCommands.back(), "P5 UID FETCH 11 (BODY.PEEK[])\r\n");
  EXPECT_TRUE(sink_.clientClosed);
}

TEST_F(ReadAheadTest, AReadAheadNobodyWaitsForIgnoresTheCommandTimer) {
  listAndRetrFirst();
  session_->onUpstreamTimeout();  // a stray timer: the proxy runs none for a read-ahead
  EXPECT_FALSE(session_->closed());
  serveBody(body(2), 2, 11);
  client("RETR 2\r\n");
  EXPECT_EQ(sink_.takeClient(), retrReply(2));
}

TEST_F(ReadAheadTest, ABrokenReadAheadLiteralGivesTheRetrAnErr) {
  listAndRetrFirst();
  // The server's own end of the FETCH inside the announced literal (see BrokenBodyTest).
  upstream("* 2 FETCH (UID 11 BODY[] {35}\r\n)\r\nP5 OK Fetch completed\r\n");
  EXPECT_EQ(sink_.upstreamCloses, 1);
  EXPECT_EQ(sink_.takeClient(), "");
  client("RETR 2\r\n");
  EXPECT_EQ(sink_.takeClient(),
            "-ERR [SYS/TEMP] Upstream server sent a broken reply, try again later.\r\n");
  EXPECT_FALSE(sink_.clientClosed);
}

TEST_F(ReadAheadTest, TheUpstreamLostAfterTheClientClaimedTheReadAheadMidBodyIsACut) {
  listAndRetrFirst();
  upstream(literal(2, 11, body(2).substr(0, 10), body(2).size()));
  client("RETR 2\r\n");
  EXPECT_EQ(sink_.takeClient(), okSize(2) + body(2).substr(0, 10));
  session_->onUpstreamClosed("reset");
  EXPECT_TRUE(sink_.clientClosed);  // claimed mid-body: a cut, as for any RETR
}

}  // namespace
}  // namespace popbridge::protocol::session_test
