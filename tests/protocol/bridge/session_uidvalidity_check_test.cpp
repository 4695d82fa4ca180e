// QUIT re-checks UIDVALIDITY with STATUS before it deletes anything (RFC 1939 UPDATE by UID is
// only safe while the UIDs still name the messages the client saw): the STATUS goes first and
// only when there is something to delete; a server that refuses STATUS or leaves the item out
// cannot say, so the deletions go on with a warning; a changed UIDVALIDITY deletes nothing.

#include <string>

#include "tests/protocol/bridge/session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

constexpr std::string_view kStoreUid10 = "UID STORE 10 +FLAGS.SILENT (\\Deleted)\r\n";

class UidValidityCheckTest : public SessionTest {
 protected:
  // DELE 1, then QUIT: up to the STATUS, which must be the first command after QUIT.
  void deleteFirstAndQuit() {
    login();
    client("DELE 1\r\n");
    EXPECT_EQ(sink_.takeClient(), "+OK Marked to be deleted.\r\n");
    const std::size_t before = upstreamCount();
    client("QUIT\r\n");
    ASSERT_EQ(upstreamCount(), before + 1);
    ASSERT_EQ(sink_.lastUpstream(), "P4 STATUS INBOX (UIDVALIDITY)\r\n");
    EXPECT_EQ(sink_.takeClient(), "");  // QUIT answers only once UPDATE is done
  }

  // The STATUS answered: the deletion goes on, and QUIT ends as it would without the check.
  void expectStoreThenLogout() {
    ASSERT_EQ(sink_.lastUpstream(), "P5 " + std::string(kStoreUid10));
    EXPECT_EQ(sink_.takeClient(), "");
    tagged("OK Store completed");
    EXPECT_EQ(sink_.lastUpstream(), "P6 LOGOUT\r\n");
    EXPECT_EQ(sink_.takeClient(), "+OK Logging out, 1 messages deleted.\r\n");
    EXPECT_EQ(sink_.deletedBy[static_cast<std::size_t>(DeletePolicy::Flag)], 1u);
    EXPECT_EQ(sink_.uidValidityChanges, 0);
  }

  // A changed UIDVALIDITY at QUIT: nothing deleted, the maildrop released, the change counted.
  void expectNothingDeleted(int releasesBefore) {
    EXPECT_EQ(sink_.takeClient(),
              "-ERR [SYS/TEMP] Mailbox changed on the server (UIDVALIDITY); no messages were "
              "deleted.\r\n");
    EXPECT_EQ(sink_.upstream.find("UID STORE"), std::string::npos) << sink_.upstream;
    EXPECT_EQ(sink_.upstream.find("EXPUNGE"), std::string::npos) << sink_.upstream;
    EXPECT_GT(sink_.releases, releasesBefore);
    EXPECT_EQ(sink_.uidValidityChanges, 1);
    for (std::uint32_t count : sink_.deletedBy) EXPECT_EQ(count, 0u);
    EXPECT_NE(sink_.logs.find("UIDVALIDITY changed from 1234 to 999 before QUIT; not applying "
                              "deletions of UIDs 10"),
              std::string::npos)
        << sink_.logs;
    EXPECT_TRUE(sink_.clientClosed);
  }
};

TEST_F(UidValidityCheckTest, QuitWithDeletionsAsksStatusFirst) {
  deleteFirstAndQuit();
  answerUidValidityCheck();
  expectStoreThenLogout();
}

TEST_F(UidValidityCheckTest, QuitWithoutDeleAsksNoStatus) {
  login();
  client("QUIT\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P4 LOGOUT\r\n");
  EXPECT_EQ(sink_.upstream.find("STATUS"), std::string::npos) << sink_.upstream;
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out.\r\n");
}

TEST_F(UidValidityCheckTest, QuitAfterRsetAsksNoStatus) {
  login();
  client("DELE 1\r\nRSET\r\n");
  sink_.takeClient();
  client("QUIT\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P4 LOGOUT\r\n");
  EXPECT_EQ(sink_.upstream.find("STATUS"), std::string::npos) << sink_.upstream;
}

TEST_F(UidValidityCheckTest, KeepAsksNoStatus) {
  options_.mailbox.onDelete = DeletePolicy::Keep;
  expectedSelect_ = "P2 EXAMINE INBOX\r\n";
  login();
  client("DELE 1\r\nDELE 2\r\n");
  sink_.takeClient();
  client("QUIT\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P4 LOGOUT\r\n");
  EXPECT_EQ(sink_.upstream.find("STATUS"), std::string::npos) << sink_.upstream;
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out.\r\n");
}

TEST_F(UidValidityCheckTest, TheStatusNamesTheServedFolder) {
  options_.mailbox.folder = "Archiv/M\xc3\xbcll";
  expectedSelect_ = "P2 SELECT Archiv/M&APw-ll\r\n";
  login();
  client("DELE 1\r\nQUIT\r\n");
  sink_.takeClient();
  answerUidValidityCheck({}, "Archiv/M&APw-ll");
  expectStoreThenLogout();
}

TEST_F(UidValidityCheckTest, ARefusedStatusStillAppliesTheDeletions) {
  deleteFirstAndQuit();
  tagged("NO [CANNOT] STATUS on the selected mailbox");
  EXPECT_NE(sink_.logs.find("QUIT: STATUS did not confirm UIDVALIDITY"), std::string::npos)
      << sink_.logs;
  EXPECT_NE(sink_.logs.find("applying deletions by UID"), std::string::npos) << sink_.logs;
  expectStoreThenLogout();
}

TEST_F(UidValidityCheckTest, ABadStatusStillAppliesTheDeletions) {
  deleteFirstAndQuit();
  tagged("BAD Unknown command");
  EXPECT_NE(sink_.logs.find("QUIT: STATUS did not confirm UIDVALIDITY"), std::string::npos)
      << sink_.logs;
  expectStoreThenLogout();
}

TEST_F(UidValidityCheckTest, AStatusWithoutUidValidityStillAppliesTheDeletions) {
  deleteFirstAndQuit();
  upstream("* STATUS INBOX (MESSAGES 4)\r\n");
  tagged("OK Status completed");
  EXPECT_NE(sink_.logs.find("QUIT: STATUS did not confirm UIDVALIDITY (no value)"),
            std::string::npos)
      << sink_.logs;
  expectStoreThenLogout();
}

// Only the served mailbox's UIDVALIDITY counts: another one's, changed or not, says nothing.
TEST_F(UidValidityCheckTest, AStatusOfAnotherMailboxIsIgnored) {
  deleteFirstAndQuit();
  upstream("* STATUS Trash (UIDVALIDITY 999)\r\n");
  tagged("OK Status completed");
  EXPECT_NE(sink_.logs.find("QUIT: STATUS did not confirm UIDVALIDITY (no value)"),
            std::string::npos)
      << sink_.logs;
  expectStoreThenLogout();
}

TEST_F(UidValidityCheckTest, AChangedUidValidityDeletesNothing) {
  deleteFirstAndQuit();
  const int releases = sink_.releases;
  answerUidValidityCheck("999");
  expectNothingDeleted(releases);
}

TEST_F(UidValidityCheckTest, AChangedUidValidityInLowerCaseInboxDeletesNothing) {
  deleteFirstAndQuit();
  const int releases = sink_.releases;
  upstream("* STATUS inbox (MESSAGES 4 UIDVALIDITY 999)\r\n");
  tagged("OK Status completed");
  expectNothingDeleted(releases);
}

TEST_F(UidValidityCheckTest, TheSessionsUidValidityConfirmsWithoutAWarning) {
  deleteFirstAndQuit();
  answerUidValidityCheck();
  EXPECT_EQ(sink_.logs.find("STATUS did not confirm"), std::string::npos) << sink_.logs;
  expectStoreThenLogout();
}

TEST_F(UidValidityCheckTest, TheServedMailboxsStatusCountsNotAnothers) {
  deleteFirstAndQuit();
  // Were the other mailbox's line taken, its 999 would come last and refuse the deletion.
  upstream("* STATUS INBOX (UIDVALIDITY 1234)\r\n* STATUS Trash (UIDVALIDITY 999)\r\n");
  tagged("OK Status completed");
  EXPECT_EQ(sink_.logs.find("STATUS did not confirm"), std::string::npos) << sink_.logs;
  expectStoreThenLogout();
}

// The untagged OK [UIDVALIDITY] that announces a change outweighs a STATUS answered with the
// old value (or refused) in the same exchange: nothing is stored.
TEST_F(UidValidityCheckTest, AChangeAnnouncedWithTheStatusAnswerDeletesNothing) {
  deleteFirstAndQuit();
  upstream("* OK [UIDVALIDITY 999] UIDs reset\r\n* STATUS INBOX (UIDVALIDITY 1234)\r\n");
  tagged("OK Status completed");
  EXPECT_EQ(sink_.takeClient(),
            "-ERR [SYS/TEMP] Mailbox changed on the server (UIDVALIDITY); no messages were "
            "deleted.\r\n");
  EXPECT_EQ(sink_.upstream.find("UID STORE"), std::string::npos) << sink_.upstream;
  EXPECT_EQ(sink_.uidValidityChanges, 1);
  EXPECT_NE(sink_.logs.find("UIDVALIDITY changed during the session; not applying deletions"),
            std::string::npos)
      << sink_.logs;
}

TEST_F(UidValidityCheckTest, AChangeAnnouncedWithARefusedStatusDeletesNothing) {
  deleteFirstAndQuit();
  upstream("* OK [UIDVALIDITY 999] UIDs reset\r\n");
  tagged("NO [CANNOT] STATUS on the selected mailbox");
  EXPECT_EQ(sink_.takeClient().rfind("-ERR [SYS/TEMP] Mailbox changed on the server", 0), 0u);
  EXPECT_EQ(sink_.upstream.find("UID STORE"), std::string::npos) << sink_.upstream;
}

}  // namespace
}  // namespace popbridge::protocol::session_test
