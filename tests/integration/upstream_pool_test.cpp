// The upstream connection pool ([upstream] pool_idle) through the real binary: a real Dovecot
// for reuse, wrong passwords, deletions and a password changed upstream; the scripted IMAP peer
// for a pooled connection that dies while idle and for a client that leaves mid-RETR.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/scripted_imap.h"
#include "tests/support/test_clients.h"
#include "tests/support/text_match.h"

namespace popbridge::test {
namespace {

// Set in every test here: .ci/test's ASan run turns the fast paths off where a test leaves a key
// unset (POPBRIDGE_TEST_FAST_PATHS=off), and these tests are about the pool itself.
constexpr const char* kPoolOn = "pool_idle = \"60s\"\n";
PopbridgeProcess::Options poolOn() {
  PopbridgeProcess::Options options;
  options.upstream = kPoolOn;
  return options;
}

using namespace std::chrono_literals;
using Step = ScriptedImapPeer::Step;
using Reaction = ScriptedImapPeer::Reaction;
using Kind = ScriptedImapPeer::Reaction::Kind;

constexpr char kScriptedPassword[] = "scripted-Pool-9";

std::size_t count(const std::string& text, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// Waits (bounded) until the proxy's log holds `needle` `times` times.
bool waitForLog(const PopbridgeProcess& proxy, std::string_view needle, std::size_t times = 1,
                std::chrono::milliseconds timeout = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (count(proxy.log(), needle) < times) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// A password changed upstream: the user's passwd-file rewritten the way DovecotFixture writes
// it (renamed into place, so Dovecot never reads half a line).
void changePassword(const DovecotFixture& d, const std::string& user, const std::string& password) {
  const std::string from = d.dir() + "/users.d/.new-" + user;
  const std::string to = d.dir() + "/users.d/" + user;
  {
    std::ofstream out(from, std::ios::trunc);
    out << user << ":{PLAIN}" << password << "::::::\n";
  }
  ASSERT_EQ(std::rename(from.c_str(), to.c_str()), 0);
}

constexpr std::string_view kFresh = "connecting to upstream";
constexpr std::string_view kReused = "reusing a pooled upstream connection";
constexpr std::string_view kPooled = "upstream connection kept in the pool";

class UpstreamPoolTest : public ::testing::Test {
 protected:
  DovecotFixture& dovecot() { return DovecotFixture::shared(); }

  // Logs in, returns STAT's reply (or the failed login's reply).
  static std::string loginAndStat(Pop3TestClient& pop, const std::string& user,
                                  const std::string& password) {
    std::string reply = pop.command("USER " + user);
    if (!startsWith(reply, "+OK")) return reply;
    reply = pop.command("PASS " + password);
    if (!startsWith(reply, "+OK")) return reply;
    return pop.command("STAT");
  }
  // A poll whose STAT starts with `stat`, then `dele` (if any) and QUIT: its connection is
  // pooled.
  static void pollAndPool(PopbridgeProcess& proxy, const std::string& user,
                          const std::string& password, std::string_view stat,
                          std::string_view dele = "") {
    const std::size_t pooled = count(proxy.log(), kPooled);
    {
      Pop3TestClient pop(proxy.port());
      const std::string reply = loginAndStat(pop, user, password);
      EXPECT_TRUE(startsWith(reply, stat)) << reply;
      if (!dele.empty()) {
        EXPECT_TRUE(startsWith(pop.command(dele), "+OK"));
      }
      EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
    }
    ASSERT_TRUE(waitForLog(proxy, kPooled, pooled + 1)) << proxy.log();
  }
};

TEST_F(UpstreamPoolTest, TheSecondPollReusesTheFirstPollsLogin) {
  DovecotFixture& d = dovecot();
  const std::string password = d.addUser("pool-reuse").password;
  d.seedMaildir("pool-reuse", {simpleMessage(1), simpleMessage(2)});
  PopbridgeProcess proxy(d, poolOn());
  proxy.addSecret(password);
  for (int poll = 0; poll < 2; ++poll) {
    Pop3TestClient pop(proxy.port());
    const std::string stat = loginAndStat(pop, "pool-reuse", password);
    EXPECT_TRUE(startsWith(stat, "+OK 2 ")) << stat;
    EXPECT_FALSE(pop.multiLine("RETR 2").empty());
    EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
    ASSERT_TRUE(waitForLog(proxy, kPooled, static_cast<std::size_t>(poll) + 1)) << proxy.log();
  }
  const std::string log = proxy.log();
  EXPECT_EQ(count(log, kFresh), 1u) << log;  // one TCP connect, one LOGIN
  EXPECT_EQ(count(log, kReused), 1u) << log;
}

TEST_F(UpstreamPoolTest, AWrongPasswordFailsWhileAPooledConnectionExists) {
  DovecotFixture& d = dovecot();
  const std::string password = d.addUser("pool-wrong").password;
  d.seedMaildir("pool-wrong", {simpleMessage(1)});
  PopbridgeProcess::Options options;
  options.upstream = kPoolOn;
  PopbridgeProcess proxy(d, options);
  proxy.addSecret(password);
  pollAndPool(proxy, "pool-wrong", password, "+OK 1 ");
  {
    Pop3TestClient pop(proxy.port());
    const std::string reply = loginAndStat(pop, "pool-wrong", password + "x");
    EXPECT_TRUE(startsWith(reply, "-ERR")) << reply;
  }
  // The right password still finds the pooled connection: the failed login did not take it.
  Pop3TestClient pop(proxy.port());
  EXPECT_TRUE(startsWith(loginAndStat(pop, "pool-wrong", password), "+OK 1 "));
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  EXPECT_EQ(count(proxy.log(), kReused), 1u) << proxy.log();
}

TEST_F(UpstreamPoolTest, AfterDeleAndQuitTheNextSessionOnThePooledConnectionSeesTheMailbox) {
  DovecotFixture& d = dovecot();
  const std::string password = d.addUser("pool-dele").password;
  d.seedMaildir("pool-dele", {simpleMessage(1), simpleMessage(2), simpleMessage(3)});
  std::vector<std::uint32_t> uids;
  {
    ImapTestClient imap(d.imapPort());
    imap.login("pool-dele", password);
    imap.select();
    uids = imap.uids();
  }
  ASSERT_EQ(uids.size(), 3u);
  PopbridgeProcess::Options options;
  options.upstream = kPoolOn;
  options.onDelete = "expunge";
  PopbridgeProcess proxy(d, options);
  proxy.addSecret(password);
  pollAndPool(proxy, "pool-dele", password, "+OK 3 ", "DELE 2");
  // Meanwhile another client adds a message: the re-SELECT must see it.
  d.appendMessage("pool-dele", simpleMessage(4));
  Pop3TestClient pop(proxy.port());
  EXPECT_TRUE(startsWith(loginAndStat(pop, "pool-dele", password), "+OK 3 "));
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  EXPECT_EQ(count(proxy.log(), kReused), 1u) << proxy.log();
  ImapTestClient imap(d.imapPort());
  imap.login("pool-dele", password);
  imap.select();
  const std::vector<std::uint32_t> now = imap.uids();
  ASSERT_EQ(now.size(), 3u);
  EXPECT_EQ(now[0], uids[0]);
  EXPECT_EQ(now[1], uids[2]);
}

TEST_F(UpstreamPoolTest, APasswordChangedUpstreamWorksUntilPoolIdleRunsOutThenFails) {
  DovecotFixture& d = dovecot();
  const std::string oldPassword = d.addUser("pool-change").password;
  const std::string newPassword = "pool-change-New-2";
  d.seedMaildir("pool-change", {simpleMessage(1)});
  PopbridgeProcess::Options options;
  options.upstream = kPoolOn;
  options.upstream = "pool_idle = \"5s\"\n";
  PopbridgeProcess proxy(d, options);
  proxy.addSecret(oldPassword);
  proxy.addSecret(newPassword);
  pollAndPool(proxy, "pool-change", oldPassword, "+OK 1 ");
  changePassword(d, "pool-change", newPassword);
  // Dovecot rereads the passwd-file within about a second: wait until it takes the new one.
  bool changed = false;
  for (int i = 0; i < 100 && !changed; ++i) {
    try {
      ImapTestClient imap(d.imapPort());
      imap.login("pool-change", newPassword);
      changed = true;
    } catch (const std::exception&) {
      std::this_thread::sleep_for(50ms);
    }
  }
  ASSERT_TRUE(changed);
  // The pooled connection cannot notice (the window config/README.md documents)...
  {
    Pop3TestClient pop(proxy.port());
    const std::string reply = loginAndStat(pop, "pool-change", oldPassword);
    if (count(proxy.log(), "pool_idle ran out") == 0) {
      EXPECT_TRUE(startsWith(reply, "+OK 1 ")) << reply;
    }
    pop.command("QUIT");
  }
  // ...but once pool_idle ran out, the old password fails.
  ASSERT_TRUE(waitForLog(proxy, "pool_idle ran out")) << proxy.log();
  {
    Pop3TestClient pop(proxy.port());
    const std::string reply = loginAndStat(pop, "pool-change", oldPassword);
    EXPECT_TRUE(startsWith(reply, "-ERR")) << reply;
  }
  Pop3TestClient pop(proxy.port());
  EXPECT_TRUE(startsWith(loginAndStat(pop, "pool-change", newPassword), "+OK 1 "));
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
}

TEST_F(UpstreamPoolTest, PoolIdleZeroTurnsPoolingOff) {
  DovecotFixture& d = dovecot();
  const std::string password = d.addUser("pool-off").password;
  PopbridgeProcess::Options options;
  options.upstream = kPoolOn;
  options.upstream = "pool_idle = \"0s\"\n";
  PopbridgeProcess proxy(d, options);
  for (int poll = 0; poll < 2; ++poll) {
    Pop3TestClient pop(proxy.port());
    EXPECT_TRUE(startsWith(loginAndStat(pop, "pool-off", password), "+OK 0 "));
    EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  }
  ASSERT_TRUE(waitForLog(proxy, "session end", 2)) << proxy.log();
  EXPECT_EQ(count(proxy.log(), kFresh), 2u) << proxy.log();
  EXPECT_EQ(count(proxy.log(), kPooled), 0u) << proxy.log();
}

TEST_F(UpstreamPoolTest, AReloadNeverHandsAnOldConfigurationsConnectionToANewSession) {
  DovecotFixture& d = dovecot();
  const std::string password = d.addUser("pool-reload").password;
  PopbridgeProcess proxy(d, poolOn());
  pollAndPool(proxy, "pool-reload", password, "+OK 0 ");
  proxy.signal(SIGHUP);
  ASSERT_TRUE(waitForLog(proxy, "configuration reloaded")) << proxy.log();
  pollAndPool(proxy, "pool-reload", password, "+OK 0 ");
  EXPECT_EQ(count(proxy.log(), kFresh), 2u) << proxy.log();
  EXPECT_EQ(count(proxy.log(), kReused), 0u) << proxy.log();
}

// --- scripted faults ---------------------------------------------------------------------------

class UpstreamPoolFaultsTest : public UpstreamPoolTest {
 protected:
  static ScriptedImapPeer::Script script() {
    ScriptedImapPeer::Script s;
    s.password = kScriptedPassword;
    for (std::uint32_t i = 0; i < 3; ++i) {
      s.messages.push_back({11 + i, simpleMessage(static_cast<int>(i) + 1, 3000), "", {}});
    }
    return s;
  }
  std::unique_ptr<PopbridgeProcess> proxyFor(const ScriptedImapPeer& peer) {
    PopbridgeProcess::Options options;
    options.upstream = kPoolOn;
    options.upstreamTls = "none";
    options.upstreamPort = peer.port();
    auto proxy = std::make_unique<PopbridgeProcess>(dovecot(), options);
    proxy->addSecret(kScriptedPassword);
    return proxy;
  }
  static void poll(PopbridgeProcess& proxy) {
    Pop3TestClient pop(proxy.port());
    EXPECT_TRUE(startsWith(loginAndStat(pop, "alice", kScriptedPassword), "+OK 3 "));
    EXPECT_FALSE(pop.multiLine("RETR 1").empty());
    EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  }
};

TEST_F(UpstreamPoolFaultsTest, APooledConnectionThatDiesUnnoticedIsReplacedTransparently) {
  // The server drops the pooled connection without a word, and popbridge learns it only from
  // the NOOP check: the device must see nothing of it.
  ScriptedImapPeer::Script s = script();
  Reaction close = Reaction::of(Kind::Close);
  close.connections = {1};
  s.reactions[Step::Noop] = close;
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);
  poll(*proxy);
  ASSERT_TRUE(waitForLog(*proxy, kPooled)) << proxy->log();
  poll(*proxy);
  EXPECT_EQ(peer.accepted(), 2);
  EXPECT_EQ(peer.commandsStartingWith("NOOP").size(), 1u) << peer.transcript();
  EXPECT_NE(proxy->log().find("pooled upstream connection unusable"), std::string::npos);
}

TEST_F(UpstreamPoolFaultsTest, APooledConnectionTheServerEndsWhileIdleIsDroppedAndReplaced) {
  ScriptedImapPeer peer(script());
  auto proxy = proxyFor(peer);
  poll(*proxy);
  ASSERT_TRUE(waitForLog(*proxy, kPooled)) << proxy->log();
  peer.push("* BYE Idle for too long\r\n");
  ASSERT_TRUE(waitForLog(*proxy, "pooled upstream connection dropped")) << proxy->log();
  poll(*proxy);
  EXPECT_EQ(peer.accepted(), 2);
  EXPECT_EQ(count(proxy->log(), kReused), 0u) << proxy->log();
}

TEST_F(UpstreamPoolFaultsTest, ADrainLogsOutOfPooledConnections) {
  ScriptedImapPeer peer(script());
  auto proxy = proxyFor(peer);
  poll(*proxy);
  ASSERT_TRUE(waitForLog(*proxy, kPooled)) << proxy->log();
  EXPECT_TRUE(peer.commandsStartingWith("LOGOUT").empty()) << peer.transcript();
  EXPECT_EQ(proxy->stop(), 0);
  EXPECT_TRUE(peer.waitForClosed(1, 5000));
  EXPECT_EQ(peer.commandsStartingWith("LOGOUT").size(), 1u) << peer.transcript();
}

TEST_F(UpstreamPoolFaultsTest, AClientThatLeavesMidRetrLeavesNothingPooled) {
  // The server stops in the middle of the literal, so the RETR is still running when the client
  // leaves however much of the body the kernel's buffers took in meanwhile.
  ScriptedImapPeer::Script s = script();
  s.messages[0].bytes = bigMessage(4 * 1024 * 1024);
  Reaction stall = Reaction::of(Kind::StallMidLiteral);
  stall.literalBytes = 1024 * 1024;
  s.reactions[Step::Body] = stall;
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);
  {
    auto pop = std::make_unique<Pop3TestClient>(proxy->port());
    EXPECT_TRUE(startsWith(loginAndStat(*pop, "alice", kScriptedPassword), "+OK 3 "));
    pop->sendRaw("RETR 1\r\n");
    pop->connection().readExact(100000, "the start of the body");
    pop.reset();  // unread data: RST mid-literal
  }
  ASSERT_TRUE(peer.waitForClosed(1, 10000)) << "the upstream connection was kept\n" << proxy->log();
  Pop3TestClient pop(proxy->port());
  EXPECT_TRUE(startsWith(loginAndStat(pop, "alice", kScriptedPassword), "+OK 3 "));
  EXPECT_EQ(peer.accepted(), 2);
  EXPECT_EQ(count(proxy->log(), kPooled), 0u) << proxy->log();
  EXPECT_EQ(count(proxy->log(), kReused), 0u) << proxy->log();
}

}  // namespace
}  // namespace popbridge::test
