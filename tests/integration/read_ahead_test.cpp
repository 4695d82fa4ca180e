// Read-ahead ([upstream] read_ahead) through the popbridge binary: sequential and pipelined
// downloads stay byte-exact against Dovecot with it on and off. Faults during a read-ahead (an
// upstream that drops, a client that does not take what was read) are in faults_test.cpp.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"
#include "tests/support/text_match.h"

namespace popbridge::test {
namespace {

// What RETR delivers: the message, and a CRLF when its last line had none (RFC 1939 ends the
// reply with CRLF "." CRLF).
std::string asServed(const std::string& message) {
  return message.ends_with("\r\n") ? message : message + "\r\n";
}

class ReadAheadDovecotTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    // Small and large, dot lines, bare LF, 8-bit, no final newline, and one above the default
    // write_high_watermark (256 KiB), which is never read ahead.
    messages_ = {simpleMessage(1),
                 dotLinesMessage(),
                 bareLfMessage(),
                 eightBitMessage(),
                 mimeAttachmentMessage(60000),
                 noFinalNewlineMessage(),
                 bigMessage(400000),
                 simpleMessage(8, 3000),
                 emptyBodyMessage(),
                 mimeAttachmentMessage(200000),
                 simpleMessage(11, 50000)};
    dovecot_.seedMaildir("alice", messages_);
    ImapTestClient imap(dovecot_.imapPort());
    imap.login("alice", password());
    imap.select();
    uids_ = imap.uids();
    for (auto uid : uids_) bodies_.push_back(imap.body(uid));
  }
  std::string password() const { return dovecot_.user("alice").password; }
  PopbridgeProcess::Options options() const {
    PopbridgeProcess::Options o;
    o.upstream = GetParam() ? "read_ahead = true\n" : "read_ahead = false\n";
    return o;
  }
  void login(Pop3TestClient& pop) {
    ASSERT_TRUE(startsWith(pop.command("USER alice"), "+OK"));
    std::string reply = pop.command("PASS " + password());
    ASSERT_TRUE(startsWith(reply, "+OK")) << reply;
  }

  DovecotFixture dovecot_;
  std::vector<std::string> messages_;
  std::vector<std::uint32_t> uids_;
  std::vector<std::string> bodies_;
};

TEST_P(ReadAheadDovecotTest, SequentialRetrsAreByteExact) {
  PopbridgeProcess proxy(dovecot_, options());
  Pop3TestClient pop(proxy.port());
  login(pop);
  pop.multiLine("LIST");
  for (std::size_t i = 0; i < uids_.size(); ++i) {
    std::string status;
    EXPECT_EQ(pop.multiLine("RETR " + std::to_string(i + 1), &status), asServed(bodies_[i]))
        << "message " << i + 1;
    EXPECT_EQ(status, "+OK " + std::to_string(bodies_[i].size()) + " octets");
  }
  // Out of order after the run, then a TOP: each answers for its own message.
  EXPECT_EQ(pop.multiLine("RETR 3"), asServed(bodies_[2]));
  EXPECT_EQ(pop.multiLine("RETR 4"), asServed(bodies_[3]));
  EXPECT_EQ(pop.multiLine("RETR 2"), asServed(bodies_[1]));
  const std::string& first = bodies_[0];
  EXPECT_EQ(pop.multiLine("TOP 1 0"), first.substr(0, first.find("\r\n\r\n") + 4));
  EXPECT_TRUE(startsWith(pop.command("DELE 5"), "+OK"));
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  EXPECT_TRUE(pop.closedByPeer());
  ImapTestClient imap(dovecot_.imapPort());
  imap.login("alice", password());
  imap.select();
  for (std::size_t i = 0; i < uids_.size(); ++i) {
    std::vector<std::string> flags = imap.flags(uids_[i]);
    EXPECT_EQ(hasFlag(flags, "\\Deleted"), i == 4) << "message " << i + 1;
    EXPECT_FALSE(hasFlag(flags, "\\Seen")) << "message " << i + 1 << ": read ahead with PEEK";
  }
}

TEST_P(ReadAheadDovecotTest, PipelinedRetrsAreByteExact) {
  PopbridgeProcess proxy(dovecot_, options());
  Pop3TestClient pop(proxy.port());
  login(pop);
  std::string commands = "UIDL\r\n";
  for (std::size_t i = 0; i < uids_.size(); ++i)
    commands += "RETR " + std::to_string(i + 1) + "\r\n";
  pop.sendRaw(commands + "QUIT\r\n");
  EXPECT_TRUE(startsWith(pop.readLine(), "+OK"));
  pop.readMultiLineBody();
  for (std::size_t i = 0; i < uids_.size(); ++i) {
    EXPECT_EQ(pop.readLine(), "+OK " + std::to_string(bodies_[i].size()) + " octets");
    EXPECT_EQ(pop.readMultiLineBody(), asServed(bodies_[i])) << "message " << i + 1;
  }
  EXPECT_TRUE(startsWith(pop.readLine(), "+OK"));
}

INSTANTIATE_TEST_SUITE_P(ReadAhead, ReadAheadDovecotTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "On" : "Off"; });

}  // namespace
}  // namespace popbridge::test
