// The real popbridge in front of the scripted IMAP peer, for what other servers do and Dovecot
// cannot be made to: a hostile message count, a literal that never comes (GNU Mailutils
// imap4d), a substitute body for an expunged message (Courier) and inexact sizes (Exchange).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/scripted_imap.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

using Step = ScriptedImapPeer::Step;
using Reaction = ScriptedImapPeer::Reaction;
using Kind = ScriptedImapPeer::Reaction::Kind;

constexpr char kPassword[] = "broken-Upstream-3";
constexpr std::string_view kPlaceholder =
    "From: Mail Server <postmaster>\r\nSubject: Message deleted\r\n\r\nThis message is no longer "
    "available on the server.\r\n";

bool startsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

class BrokenUpstreamTest : public ::testing::Test {
 protected:
  static ScriptedImapPeer::Script script() {
    ScriptedImapPeer::Script s;
    s.password = kPassword;
    for (std::uint32_t i = 0; i < 3; ++i) {
      s.messages.push_back({11 + i, simpleMessage(static_cast<int>(i) + 1, 2000), "", {}});
    }
    return s;
  }

  std::unique_ptr<PopbridgeProcess> proxyFor(const ScriptedImapPeer& peer) {
    PopbridgeProcess::Options options;
    options.upstreamTls = "none";
    options.upstreamPort = peer.port();
    // Long enough that waiting for it would fail the test's own read timeout.
    options.upstream = "command_timeout = \"30s\"\n";
    // Tests here run a second session for the same mailbox beside the first.
    options.mailbox = "exclusive = false\n";
    auto proxy = std::make_unique<PopbridgeProcess>(DovecotFixture::shared(), options);
    proxy->addSecret(kPassword);
    return proxy;
  }

  static void login(Pop3TestClient& pop) {
    ASSERT_TRUE(startsWith(pop.command("USER alice"), "+OK"));
    std::string reply = pop.command(std::string("PASS ") + kPassword);
    ASSERT_TRUE(startsWith(reply, "+OK")) << reply;
  }
};

TEST_F(BrokenUpstreamTest, AHostileExistsCountEndsNoOtherSession) {
  ScriptedImapPeer::Script s = script();
  Reaction hostile;
  hostile.kind = Kind::Reply;
  hostile.text = "OK [READ-WRITE] Select completed.";
  hostile.untaggedBefore = {"* 4294967295 EXISTS", "* OK [UIDVALIDITY 1700000000] UIDs valid"};
  hostile.connections = {2};
  s.reactions[Step::Select] = hostile;
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);

  Pop3TestClient healthy(proxy->port());
  login(healthy);
  {
    Pop3TestClient victim(proxy->port());
    login(victim);  // the second upstream connection gets the hostile count
    EXPECT_TRUE(startsWith(victim.command("STAT"), "+OK")) << proxy->log();
  }
  // The process, and the first user's session, are still there.
  std::string status;
  const std::string body = healthy.multiLine("RETR 1", &status);
  EXPECT_EQ(body, s.messages[0].bytes);
  EXPECT_TRUE(startsWith(healthy.command("QUIT"), "+OK"));
  Pop3TestClient later(proxy->port());
  EXPECT_TRUE(startsWith(later.greeting(), "+OK"));
  EXPECT_NE(proxy->log().find("4294967295 messages; serving the newest"), std::string::npos)
      << proxy->log();
}

TEST_F(BrokenUpstreamTest, ALiteralThatNeverComesIsAnsweredAtOnce) {
  ScriptedImapPeer::Script s = script();
  s.reactions[Step::Body] = Reaction::of(Kind::BrokenLiteral);
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);

  Pop3TestClient pop(proxy->port());
  pop.setTimeout(10000);
  login(pop);
  EXPECT_EQ(pop.command("RETR 1"),
            "-ERR [SYS/TEMP] Upstream server sent a broken reply, try again later.");
  // The broken connection is dropped; the session answers instead of hanging.
  EXPECT_TRUE(peer.waitForClosed(1, 5000));
  EXPECT_TRUE(startsWith(pop.command("RETR 2"), "-ERR [SYS/TEMP]"));
  // Nothing was marked, so there is nothing to fail at QUIT.
  EXPECT_EQ(pop.command("QUIT"), "+OK Logging out.");
  EXPECT_NE(proxy->log().find("(a broken literal); dropping the upstream connection"),
            std::string::npos)
      << proxy->log();
}

// A message anyone can mail: it starts the way a broken literal does, with the tag the FETCH of
// a fresh session would carry if tags were predictable ("P4" after AUTHENTICATE, SELECT and the
// snapshot). popbridge's tags are random per connection, so it is served as it is.
TEST_F(BrokenUpstreamTest, AMessageThatMimicsABrokenLiteralIsServed) {
  ScriptedImapPeer::Script s = script();
  s.messages[0].bytes = ")\r\nP4 OK Fetch completed.\r\n" + s.messages[0].bytes;
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);

  Pop3TestClient pop(proxy->port());
  login(pop);
  EXPECT_EQ(pop.multiLine("RETR 1"), s.messages[0].bytes) << proxy->log();
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
}

TEST_F(BrokenUpstreamTest, ASubstituteForAnExpungedMessageIsNotServed) {
  ScriptedImapPeer::Script s = script();
  Reaction substitute = Reaction::of(Kind::Substitute);
  substitute.text = std::string(kPlaceholder);
  s.reactions[Step::Body] = substitute;
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);

  Pop3TestClient pop(proxy->port());
  login(pop);
  EXPECT_EQ(pop.command("RETR 2"), "-ERR Message was deleted by another client.");
  EXPECT_EQ(peer.commandsStartingWith("UID FETCH 12 (UID)").size(), 1u) << peer.transcript();
  EXPECT_EQ(peer.commandsStartingWith("NOOP").size(), 1u) << peer.transcript();
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  EXPECT_NE(proxy->log().find("UID 12 was expunged by another client; the server sent a "),
            std::string::npos)
      << proxy->log();
}

TEST_F(BrokenUpstreamTest, AnInexactSizeOfAGenuineMessageIsServed) {
  ScriptedImapPeer::Script s = script();
  s.messages[0].reportedSize = s.messages[0].bytes.size() + 7;
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);

  Pop3TestClient pop(proxy->port());
  login(pop);
  std::string status;
  EXPECT_EQ(pop.multiLine("RETR 1", &status), s.messages[0].bytes);
  EXPECT_EQ(status, "+OK " + std::to_string(*s.messages[0].reportedSize) + " octets");
  EXPECT_EQ(peer.commandsStartingWith("UID FETCH 11 (UID)").size(), 1u) << peer.transcript();
  // Sizes that agree cost no check.
  EXPECT_EQ(pop.multiLine("RETR 2"), s.messages[1].bytes);
  EXPECT_EQ(peer.commandsStartingWith("UID FETCH 12 (UID)").size(), 0u) << peer.transcript();
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  EXPECT_NE(proxy->log().find("; the message exists, serving it"), std::string::npos)
      << proxy->log();
}

}  // namespace
}  // namespace popbridge::test
