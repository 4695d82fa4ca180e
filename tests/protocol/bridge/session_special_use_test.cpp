// on_delete = "move" with a special-use move_to ("\Trash"): the folder is found with LIST after
// the login and before SELECT, its name goes back exactly as the server sent it, and when no
// folder can be found the session flags instead of moving.

#include <string>
#include <vector>

#include "tests/protocol/bridge/session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

constexpr std::string_view kSpecialUseCaps =
    "IMAP4rev1 SASL-IR LITERAL+ UIDPLUS MOVE SPECIAL-USE LIST-EXTENDED";

class SpecialUseTest : public SessionTest {
 protected:
  void SetUp() override {
    SessionTest::SetUp();
    options_.mailbox.onDelete = DeletePolicy::Move;
    options_.mailbox.moveTo = "\\Trash";
  }

  // From the answer to LIST: SELECT and the snapshot, to TRANSACTION.
  void finishLogin() {
    ASSERT_EQ(sink_.lastUpstream(), "P3 SELECT INBOX\r\n");
    upstream("* " + std::to_string(messages_.size()) +
             " EXISTS\r\n* OK [UIDVALIDITY 1234] UIDs valid\r\n");
    tagged("OK [READ-WRITE] Select completed");
    ASSERT_EQ(sink_.lastUpstream(), "P4 UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n");
    upstream(snapshotFetch());
    tagged("OK Fetch completed");
    ASSERT_EQ(sink_.takeClient(), "+OK Logged in.\r\n");
  }

  // DELE 1 and 3, then QUIT: the UPDATE commands, each answered OK, up to LOGOUT.
  std::vector<std::string> deleteAndQuit() {
    client("DELE 1\r\nDELE 3\r\n");
    sink_.takeClient();
    std::vector<std::string> sent;
    client("QUIT\r\n");
    answerUidValidityCheck();
    for (int i = 0; i < 5; ++i) {
      std::string command = sink_.lastUpstream();
      command = command.substr(command.find(' ') + 1);
      if (command == "LOGOUT\r\n") break;
      sent.push_back(command);
      tagged("OK done");
    }
    EXPECT_EQ(sink_.takeClient(), "+OK Logging out, 2 messages deleted.\r\n");
    return sent;
  }

  void expectFlagFallback(std::string_view why) {
    EXPECT_NE(sink_.logs.find("move_to \\Trash: " + std::string(why) +
                              "; on_delete=move falls back to flag for this session"),
              std::string::npos)
        << sink_.logs;
    finishLogin();
    EXPECT_EQ(deleteAndQuit(),
              std::vector<std::string>{"UID STORE 10,15 +FLAGS.SILENT (\\Deleted)\r\n"});
    EXPECT_EQ(sink_.upstream.find("MOVE"), std::string::npos);
    EXPECT_EQ(sink_.upstream.find("COPY"), std::string::npos);
  }
};

TEST_F(SpecialUseTest, ResolvedWithTheSpecialUseSelectionOption) {
  loginUpstream(kSpecialUseCaps);
  // RFC 6154's form when the server advertises SPECIAL-USE; nothing is selected yet.
  EXPECT_EQ(sink_.lastUpstream(), "P2 LIST (SPECIAL-USE) \"\" \"*\"\r\n");
  upstream(
      "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"
      "* LIST (\\HasNoChildren \\trash) \"/\" Papierkorb\r\n"
      "* LIST (\\HasNoChildren \\Trash) \"/\" \"Second Trash\"\r\n");
  tagged("OK List completed");
  EXPECT_NE(sink_.logs.find("move_to \\Trash is folder \"Papierkorb\""), std::string::npos)
      << sink_.logs;
  finishLogin();
  EXPECT_EQ(deleteAndQuit(), std::vector<std::string>{"UID MOVE 10,15 Papierkorb\r\n"});
}

TEST_F(SpecialUseTest, ResolvedWithAPlainListAndCopiedWithoutMove) {
  // No SPECIAL-USE: its selection option would be refused, so a plain LIST, whose attributes
  // many servers fill in anyway. LIST-EXTENDED alone does not know the option.
  loginUpstream("IMAP4rev1 UIDPLUS LIST-EXTENDED");
  EXPECT_EQ(sink_.lastUpstream(), "P2 LIST \"\" \"*\"\r\n");
  upstream(
      "* LIST (\\HasChildren) \".\" INBOX\r\n"
      "* LIST (\\Noselect \\Trash) \".\" \"INBOX.Old\"\r\n"
      "* LIST (\\NonExistent \\Trash) \".\" \"INBOX.Gone\"\r\n"
      "* LIST (\\HasNoChildren \\Trash) \".\" \"INBOX.M&APw-ll\"\r\n");
  tagged("OK List completed");
  finishLogin();
  // The modified UTF-7 name goes back as the server spelled it, never encoded twice.
  EXPECT_EQ(deleteAndQuit(),
            (std::vector<std::string>{"UID COPY 10,15 INBOX.M&APw-ll\r\n",
                                      "UID STORE 10,15 +FLAGS.SILENT (\\Deleted)\r\n",
                                      "UID EXPUNGE 10,15\r\n"}));
}

TEST_F(SpecialUseTest, ANameThatNeedsALiteralIsSentAsOne) {
  // A UTF-8 name (UTF8=ACCEPT) arrives as a literal and can only go back as one; without
  // LITERAL+ it is a synchronizing literal, sent after the server's "+".
  const std::string name = "\xd0\x9a\xd0\xbe\xd1\x80\xd0\xb7\xd0\xb8\xd0\xbd\xd0\xb0";  // Корзина
  loginUpstream("IMAP4rev1 MOVE SPECIAL-USE");
  upstream("* LIST (\\Trash) \"/\" {" + std::to_string(name.size()) + "}\r\n" + name + "\r\n");
  tagged("OK List completed");
  finishLogin();
  client("DELE 2\r\nQUIT\r\n");
  sink_.takeClient();
  answerUidValidityCheck();
  EXPECT_EQ(sink_.lastUpstream(), "P6 UID MOVE 11 {14}\r\n");
  upstream("+ OK\r\n");
  EXPECT_EQ(sink_.lastUpstream(), name + "\r\n");
  upstream("P6 OK Move completed\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P7 LOGOUT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out, 1 messages deleted.\r\n");
}

TEST_F(SpecialUseTest, NoFolderWithTheAttributeFallsBackToFlag) {
  loginUpstream(kSpecialUseCaps);
  upstream("* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n* LIST (\\Junk) \"/\" Spam\r\n");
  tagged("OK List completed");
  expectFlagFallback("no folder has that attribute");
}

TEST_F(SpecialUseTest, ARefusedListFallsBackToFlag) {
  loginUpstream(kSpecialUseCaps);
  tagged("NO [SERVERBUG] Internal error");
  expectFlagFallback("LIST failed: [SERVERBUG] Internal error");
}

TEST_F(SpecialUseTest, TheServedFolderItselfFallsBackToFlag) {
  loginUpstream(kSpecialUseCaps);
  upstream("* LIST (\\Trash) \"/\" inbox\r\n");
  tagged("OK List completed");
  expectFlagFallback("it is the served folder itself, so moving would never remove a message");
}

TEST_F(SpecialUseTest, AHostileListKeepsOnlyTheFirstMatch) {
  loginUpstream(kSpecialUseCaps);
  // Thousands of folders, oversized literal names (skipped unread, beyond the parser's inline
  // limit) and thousands of further matches: only the first match is kept.
  const std::string huge(100 * 1024, 'x');
  std::string flood;
  for (int i = 0; i < 3000; ++i)
    flood += "* LIST (\\HasNoChildren) \"/\" \"Folder " + std::to_string(i) + "\"\r\n";
  for (int i = 0; i < 20; ++i)
    flood += "* LIST (\\Trash) \"/\" {" + std::to_string(huge.size()) + "}\r\n" + huge + "\r\n";
  flood += "* LIST (\\Trash) \"/\" First\r\n";
  for (int i = 0; i < 3000; ++i)
    flood += "* LIST (\\Trash) \"/\" \"Later " + std::to_string(i) + "\"\r\n";
  upstream(flood);
  tagged("OK List completed");
  finishLogin();
  EXPECT_EQ(deleteAndQuit(), std::vector<std::string>{"UID MOVE 10,15 First\r\n"});
}

TEST_F(SpecialUseTest, AListLineBeyondTheLineLimitEndsTheLogin) {
  loginUpstream(kSpecialUseCaps);
  upstream("* LIST (\\Trash) \"/\" \"" + std::string(128 * 1024, 'x'));
  EXPECT_EQ(sink_.takeClient(),
            "-ERR [SYS/TEMP] Upstream server unavailable, try again later.\r\n");
  EXPECT_EQ(sink_.upstream.find("MOVE"), std::string::npos);
}

TEST_F(SpecialUseTest, AFolderNameIsUsedAsItIsWithoutList) {
  options_.mailbox.moveTo = "Trash";
  expectedSelect_ = "P2 SELECT INBOX\r\n";
  login(kSpecialUseCaps);
  EXPECT_EQ(sink_.upstream.find("LIST"), std::string::npos);
  EXPECT_EQ(deleteAndQuit(), std::vector<std::string>{"UID MOVE 10,15 Trash\r\n"});
}

}  // namespace
}  // namespace popbridge::protocol::session_test
