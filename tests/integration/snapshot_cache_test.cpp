// Incremental snapshots end to end: polls through the real popbridge see exactly what a full
// listing shows after other clients appended, reflagged and expunged messages, or after the
// UIDVALIDITY changed; against a scripted CONDSTORE peer (to see which commands went upstream)
// and against a real Dovecot (compared with snapshot_cache = false).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/scripted_imap.h"
#include "tests/support/test_clients.h"
#include "tests/support/text_match.h"

namespace popbridge::test {
namespace {

constexpr char kPassword[] = "snapshot-Cache-7";
constexpr char kCondstoreCaps[] = "IMAP4rev1 LITERAL+ SASL-IR UIDPLUS MOVE CONDSTORE AUTH=PLAIN";

// What one poll of a printer shows: STAT, UIDL and LIST.
struct Poll {
  std::string stat, uidl, list;
  bool operator==(const Poll&) const = default;
};

void PrintTo(const Poll& p, std::ostream* os) {
  *os << p.stat << "\n" << p.uidl << p.list;
}

Poll poll(std::uint16_t port, const std::string& user, const std::string& password) {
  Pop3TestClient pop(port);
  Poll p;
  EXPECT_TRUE(startsWith(pop.command("USER " + user), "+OK"));
  std::string reply = pop.command("PASS " + password);
  EXPECT_TRUE(startsWith(reply, "+OK")) << reply;
  if (!startsWith(reply, "+OK")) return p;
  p.stat = pop.command("STAT");
  p.uidl = pop.multiLine("UIDL");
  p.list = pop.multiLine("LIST");
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  return p;
}

std::string uidl(std::uint32_t uid, std::uint32_t uidValidity) {
  char id[17];
  std::snprintf(id, sizeof id, "%08x%08x", uid, uidValidity);
  return id;
}

std::size_t count(const std::vector<std::string>& commands, std::string_view prefix) {
  return static_cast<std::size_t>(
      std::count_if(commands.begin(), commands.end(),
                    [&](const std::string& c) { return startsWith(c, prefix); }));
}

class SnapshotCacheFaultTest : public ::testing::Test {
 protected:
  static ScriptedImapPeer::Script script() {
    ScriptedImapPeer::Script s;
    s.password = kPassword;
    s.capabilities = kCondstoreCaps;
    s.uidValidity = 1700000000;
    s.highestModSeq = 10;
    for (std::uint32_t i = 0; i < 3; ++i) {
      s.messages.push_back(
          {11 + i, simpleMessage(static_cast<int>(i) + 1, 500 + 100 * i), "", {}, i + 1});
    }
    return s;
  }

  std::unique_ptr<PopbridgeProcess> proxyFor(const ScriptedImapPeer& peer) {
    PopbridgeProcess::Options options;
    options.upstreamTls = "none";
    options.upstreamPort = peer.port();
    // Each poll on a connection of its own, so that the commands counted are the cache's alone
    // (a pooled connection's re-SELECT refreshes the same way; upstream_pool_test covers it).
    // snapshot_cache explicitly: .ci/test's fast-paths-off run only turns off unset keys.
    options.upstream = "pool_idle = \"0s\"\nsnapshot_cache = true\n";
    auto proxy = std::make_unique<PopbridgeProcess>(DovecotFixture::shared(), options);
    proxy->addSecret(kPassword);
    return proxy;
  }

  static std::string expectedUidl(const std::vector<ScriptedImapPeer::Message>& messages,
                                  std::uint32_t uidValidity) {
    std::string out;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      out += std::to_string(i + 1) + " " + uidl(messages[i].uid, uidValidity) + "\r\n";
    }
    return out;
  }
  static std::string expectedStat(const std::vector<ScriptedImapPeer::Message>& messages) {
    std::size_t octets = 0;
    for (const auto& m : messages) octets += m.bytes.size();
    return "+OK " + std::to_string(messages.size()) + " " + std::to_string(octets);
  }
};

TEST_F(SnapshotCacheFaultTest, AnExpungeByAnotherClientBetweenTwoPolls) {
  ScriptedImapPeer::Script s = script();
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);

  Poll first = poll(proxy->port(), "alice", kPassword);
  EXPECT_EQ(first.stat, expectedStat(s.messages));
  EXPECT_EQ(first.uidl, expectedUidl(s.messages, s.uidValidity));

  // Another client expunges UID 12; the mailbox's HIGHESTMODSEQ moves on.
  std::vector<ScriptedImapPeer::Message> left = {s.messages[0], s.messages[2]};
  peer.setMailbox(left, s.uidValidity, 11);
  Poll second = poll(proxy->port(), "alice", kPassword);
  EXPECT_EQ(second.stat, expectedStat(left)) << peer.transcript();
  EXPECT_EQ(second.uidl, expectedUidl(left, s.uidValidity));
  EXPECT_EQ(second.list, "1 " + std::to_string(left[0].bytes.size()) + "\r\n2 " +
                             std::to_string(left[1].bytes.size()) + "\r\n");

  // The second poll asked for the changes and, seeing one message fewer, for the UIDs present;
  // it never listed the whole mailbox again.
  std::vector<std::string> commands = peer.commands();
  EXPECT_EQ(count(commands, "SELECT INBOX (CONDSTORE)"), 2u) << peer.transcript();
  EXPECT_EQ(count(commands, "UID FETCH 1:* (RFC822.SIZE FLAGS)"), 1u) << peer.transcript();
  EXPECT_EQ(count(commands, "UID FETCH 1:* (UID RFC822.SIZE FLAGS) (CHANGEDSINCE 10)"), 1u)
      << peer.transcript();
  EXPECT_EQ(count(commands, "UID FETCH 1:13 (UID)"), 1u) << peer.transcript();

  // A third poll of the unchanged mailbox sends nothing after SELECT but LOGOUT.
  // Every earlier connection has logged out and closed, so what follows is the third poll's.
  ASSERT_TRUE(peer.waitForClosed(2, 5000));
  std::size_t before = peer.commands().size();
  Poll third = poll(proxy->port(), "alice", kPassword);
  EXPECT_EQ(third, second);
  ASSERT_TRUE(peer.waitForClosed(3, 5000));
  commands = peer.commands();
  std::vector<std::string> warm(commands.begin() + static_cast<std::ptrdiff_t>(before),
                                commands.end());
  EXPECT_EQ(count(warm, "UID FETCH"), 0u) << peer.transcript();
  EXPECT_EQ(warm,
            (std::vector<std::string>{"AUTHENTICATE PLAIN", "SELECT INBOX (CONDSTORE)", "LOGOUT"}))
      << peer.transcript();
  EXPECT_EQ(count(warm, "FETCH"), 0u) << peer.transcript();
}

TEST_F(SnapshotCacheFaultTest, AUidValidityChangeBetweenTwoPolls) {
  ScriptedImapPeer::Script s = script();
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);

  Poll first = poll(proxy->port(), "alice", kPassword);
  EXPECT_EQ(first.uidl, expectedUidl(s.messages, s.uidValidity));

  // The folder was rebuilt: new UIDVALIDITY, UIDs start again at 1, and HIGHESTMODSEQ happens
  // to be the cached one.
  std::vector<ScriptedImapPeer::Message> rebuilt = {{1, simpleMessage(7, 900), "", {}, 1},
                                                    {2, simpleMessage(8, 300), "", {}, 1}};
  peer.setMailbox(rebuilt, s.uidValidity + 1, 10);
  Poll second = poll(proxy->port(), "alice", kPassword);
  EXPECT_EQ(second.stat, expectedStat(rebuilt)) << peer.transcript();
  EXPECT_EQ(second.uidl, expectedUidl(rebuilt, s.uidValidity + 1));
  EXPECT_EQ(count(peer.commands(), "UID FETCH 1:* (RFC822.SIZE FLAGS)"), 2u) << peer.transcript();
  EXPECT_EQ(count(peer.commands(), "UID FETCH 1:* (UID RFC822.SIZE FLAGS) (CHANGEDSINCE"), 0u)
      << peer.transcript();
}

// Without CONDSTORE (Courier, Exchange): new UIDs, the \Deleted set and, when the counts say
// so, the UIDs present; never the whole mailbox again, and the same as without the cache.
TEST_F(SnapshotCacheFaultTest, WithoutCondstoreAnExpungeAndFlagChangesBetweenPolls) {
  ScriptedImapPeer::Script s = script();
  s.capabilities = "IMAP4rev1 LITERAL+ SASL-IR UIDPLUS MOVE AUTH=PLAIN";
  s.highestModSeq = 0;
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);
  PopbridgeProcess::Options plainOptions;
  plainOptions.upstreamTls = "none";
  plainOptions.upstreamPort = peer.port();
  plainOptions.upstream = "pool_idle = \"0s\"\nsnapshot_cache = false\n";
  PopbridgeProcess plain(DovecotFixture::shared(), plainOptions);
  plain.addSecret(kPassword);

  Poll first = poll(proxy->port(), "alice", kPassword);
  EXPECT_EQ(first.stat, expectedStat(s.messages));
  ASSERT_TRUE(peer.waitForClosed(1, 5000));

  // Another client expunges UID 12, flags 13 \Deleted and appends 14.
  std::vector<ScriptedImapPeer::Message> now = {
      s.messages[0], s.messages[2], {14, simpleMessage(9, 700), "", {}, 1}};
  now[1].flags = "\\Deleted";
  peer.setMailbox(now, s.uidValidity, 0);
  std::size_t before = peer.commands().size();
  Poll second = poll(proxy->port(), "alice", kPassword);
  ASSERT_TRUE(peer.waitForClosed(2, 5000));
  std::vector<std::string> commands = peer.commands();
  std::vector<std::string> warm(commands.begin() + static_cast<std::ptrdiff_t>(before),
                                commands.end());
  EXPECT_EQ(warm,
            (std::vector<std::string>{"AUTHENTICATE PLAIN", "SELECT INBOX",
                                      "UID FETCH 14:* (UID RFC822.SIZE FLAGS)",
                                      "UID SEARCH DELETED", "UID FETCH 1:14 (UID)", "LOGOUT"}))
      << peer.transcript();
  Poll reference = poll(plain.port(), "alice", kPassword);
  EXPECT_EQ(second, reference);
  EXPECT_EQ(second.stat, expectedStat({now[0], now[2]}));
  EXPECT_EQ(second.uidl,
            "1 " + uidl(11, s.uidValidity) + "\r\n2 " + uidl(14, s.uidValidity) + "\r\n");

  // Another client clears the flag of 13: only the SEARCH can tell.
  now[1].flags = "";
  peer.setMailbox(now, s.uidValidity, 0);
  ASSERT_TRUE(peer.waitForClosed(3, 5000));
  before = peer.commands().size();
  Poll third = poll(proxy->port(), "alice", kPassword);
  ASSERT_TRUE(peer.waitForClosed(4, 5000));
  commands = peer.commands();
  warm.assign(commands.begin() + static_cast<std::ptrdiff_t>(before), commands.end());
  EXPECT_EQ(count(warm, "UID FETCH 1:* (RFC822.SIZE FLAGS)"), 0u) << peer.transcript();
  EXPECT_EQ(count(warm, "UID SEARCH DELETED"), 1u) << peer.transcript();
  EXPECT_EQ(third, poll(plain.port(), "alice", kPassword));
  EXPECT_EQ(third.stat, expectedStat(now));
  EXPECT_NE(proxy->log().find("(snapshot cache)"), std::string::npos) << proxy->log();
}

// --- Real Dovecot ----------------------------------------------------------------------------

class SnapshotCacheDovecotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DovecotFixture& dovecot = DovecotFixture::shared();
    user_ = dovecot.addUser("snapcache");
    for (int i = 0; i < 6; ++i) {
      uids_.push_back(dovecot.appendMessage(user_.name, simpleMessage(i + 1, 300 + 50 * i),
                                            i == 4 ? "\\Deleted" : ""));
    }
  }

  std::unique_ptr<PopbridgeProcess> proxy(bool cached) {
    PopbridgeProcess::Options options;
    options.upstream = cached ? "snapshot_cache = true\n" : "snapshot_cache = false\n";
    options.mailbox = "exclusive = false\n";
    return std::make_unique<PopbridgeProcess>(DovecotFixture::shared(), options);
  }

  DovecotUser user_;
  std::vector<std::uint32_t> uids_;
};

TEST_F(SnapshotCacheDovecotTest, PollsSeeAppendsFlagChangesAndExpungesExactly) {
  auto cached = proxy(true);
  auto plain = proxy(false);
  Poll first = poll(cached->port(), user_.name, user_.password);
  EXPECT_EQ(first, poll(plain->port(), user_.name, user_.password));
  EXPECT_EQ(first.stat.rfind("+OK 5 ", 0), 0u) << first.stat;  // the \Deleted one is not served

  {
    // Another client: two appends, one expunge, one message flagged \Deleted and one unflagged.
    ImapTestClient imap(DovecotFixture::shared().imapPort());
    imap.login(user_.name, user_.password);
    imap.select();
    imap.append("INBOX", simpleMessage(20, 1234));
    imap.append("INBOX", simpleMessage(21, 77));
    imap.store(uids_[1], "+FLAGS (\\Deleted)");
    imap.command("UID EXPUNGE " + std::to_string(uids_[1]));
    imap.store(uids_[2], "+FLAGS (\\Deleted)");
    imap.store(uids_[4], "-FLAGS (\\Deleted)");
    imap.logout();
  }
  Poll second = poll(cached->port(), user_.name, user_.password);
  Poll reference = poll(plain->port(), user_.name, user_.password);
  EXPECT_EQ(second, reference);
  // 6 - 1 expunged - 1 flagged + 2 appended = 6 served.
  EXPECT_EQ(second.stat.rfind("+OK 6 ", 0), 0u) << second.stat;
  EXPECT_EQ(second.uidl.find(" " + uidl(uids_[1], 0).substr(0, 8)), std::string::npos);

  // Unchanged: the same again.
  EXPECT_EQ(poll(cached->port(), user_.name, user_.password), reference);

  // This session's own deletions (on_delete = flag): the next poll no longer shows them.
  {
    Pop3TestClient pop(cached->port());
    pop.command("USER " + user_.name);
    ASSERT_TRUE(startsWith(pop.command("PASS " + user_.password), "+OK"));
    EXPECT_TRUE(startsWith(pop.command("DELE 1"), "+OK"));
    EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  }
  Poll after = poll(cached->port(), user_.name, user_.password);
  EXPECT_EQ(after, poll(plain->port(), user_.name, user_.password));
  EXPECT_EQ(after.stat.rfind("+OK 5 ", 0), 0u) << after.stat;
  EXPECT_NE(cached->log().find("(snapshot cache)"), std::string::npos) << cached->log();
  EXPECT_EQ(plain->log().find("(snapshot cache)"), std::string::npos) << plain->log();
}

}  // namespace
}  // namespace popbridge::test
