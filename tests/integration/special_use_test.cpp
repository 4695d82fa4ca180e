// on_delete = "move" with move_to = "\\Trash" against a real Dovecot: the folder is whatever
// Dovecot marks \Trash, here "Papierkorb", and without such a folder the session flags instead.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

DovecotFixture::Options withPapierkorb() {
  DovecotFixture::Options options;
  options.enablePop3 = false;
  options.specialUse = {{"Papierkorb", "\\Trash"}};
  return options;
}

class SpecialUseMoveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 1; i <= 3; ++i) messages_.push_back(simpleMessage(i));
    dovecot_.seedMaildir("alice", messages_);
  }
  const std::string& password() const { return dovecot_.user("alice").password; }
  ImapTestClient imap(std::string_view folder = "INBOX") {
    ImapTestClient client(dovecot_.imapPort());
    client.login("alice", password());
    client.select(folder);
    return client;
  }
  // USER/PASS, DELE 2, QUIT through popbridge with on_delete = "move" and this move_to.
  std::string deleteSecondMessage(std::string_view moveTo) {
    PopbridgeProcess::Options options;
    options.onDelete = "move";
    options.mailbox = "move_to = \"" + std::string(moveTo) + "\"";
    PopbridgeProcess proxy(dovecot_, options);
    Pop3TestClient pop(proxy.port());
    EXPECT_EQ(pop.command("USER alice").rfind("+OK", 0), 0u);
    EXPECT_EQ(pop.command("PASS " + password()).rfind("+OK", 0), 0u);
    EXPECT_EQ(pop.command("DELE 2").rfind("+OK", 0), 0u);
    EXPECT_EQ(pop.command("QUIT"), "+OK Logging out, 1 messages deleted.");
    EXPECT_TRUE(pop.closedByPeer());
    return proxy.log();
  }

  DovecotFixture dovecot_{withPapierkorb()};
  std::vector<std::string> messages_;
};

TEST_F(SpecialUseMoveTest, TrashIsTheFolderDovecotMarksTrash) {
  const std::string log = deleteSecondMessage("\\\\Trash");
  EXPECT_NE(log.find("move_to \\Trash is folder \"Papierkorb\""), std::string::npos) << log;
  auto inbox = imap();
  auto left = inbox.uids();
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(inbox.body(left[0]), messages_[0]);
  EXPECT_EQ(inbox.body(left[1]), messages_[2]);
  auto trash = imap("Papierkorb");
  auto moved = trash.uids();
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(trash.body(moved[0]), messages_[1]);
}

TEST_F(SpecialUseMoveTest, NoArchiveFolderFlagsInstead) {
  const std::string log = deleteSecondMessage("\\\\Archive");
  EXPECT_NE(log.find("move_to \\Archive: no folder has that attribute; on_delete=move falls back "
                     "to flag for this session"),
            std::string::npos)
      << log;
  auto inbox = imap();
  auto uids = inbox.uids();
  ASSERT_EQ(uids.size(), 3u) << "nothing may be expunged or moved";
  auto flags = inbox.flags(uids[1]);
  EXPECT_NE(std::find(flags.begin(), flags.end(), "\\Deleted"), flags.end());
  EXPECT_EQ(inbox.body(uids[1]), messages_[1]);
  EXPECT_EQ(imap("Papierkorb").uids().size(), 0u);
}

}  // namespace
}  // namespace popbridge::test
