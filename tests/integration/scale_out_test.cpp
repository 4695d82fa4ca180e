// Scale-out against real parts: Debian's haproxy in TCP mode sends PROXY v2 to two popbridge
// replicas and checks each one's /readyz; the replicas share one real redis-server ([state]
// redis) and serve the test's Dovecot. A replica killed mid-session loses nothing: the client
// comes back through haproxy to the other replica once the dead one's maildrop lease has
// expired, and sees the same maildrop with the DELE never applied. Sessions for one mailbox on
// the two replicas still exclude each other. (Redis going away mid-session is in
// shared_state_test.cpp.)

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/haproxy.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_clients.h"
#include "tests/support/text_match.h"

namespace popbridge::test {
namespace {

using namespace std::chrono_literals;

constexpr char kInUse[] = "-ERR [IN-USE] Mailbox is in use by another session, try again later.";

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// One popbridge replica behind haproxy: a PROXY-protocol listener trusting haproxy's loopback
// source, the shared Redis, and a metrics listener for haproxy's /readyz check.
struct Replica {
  std::uint16_t metricsPort = freeLoopbackPort();
  std::unique_ptr<PopbridgeProcess> process;
};

class ScaleOutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 1; i <= 3; ++i) messages_.push_back(simpleMessage(i));
    dovecot_.seedMaildir("alice", messages_);
    char pattern[] = "/tmp/popbridge-scaleout-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    for (Replica& replica : replicas_) {
      PopbridgeProcess::Options o;
      PopbridgeProcess::Listener listener;
      listener.extra = "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]\n";
      o.listeners = {listener};
      // Refused logins ([IN-USE]) are retried below; no throttle may slow them.
      o.server = "login_throttle_after = 0\nlogin_throttle_user_after = 0\n";
      // A short lease_ttl: the dead replica's lease runs out within the test. Not shorter: one
      // late Redis answer on a loaded machine must not let a live session's lease lapse.
      o.extra = "[state]\nredis = \"" + redis_.url() +
                "\"\nredis_timeout = \"1s\"\nlease_ttl = \"4s\"\n"
                "[metrics]\naddress = \"127.0.0.1:" +
                std::to_string(replica.metricsPort) + "\"\nreadyz_cache = \"0s\"\n";
      replica.process = std::make_unique<PopbridgeProcess>(dovecot_, o);
    }
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  const DovecotUser& alice() const { return dovecot_.user("alice"); }

  // The server line of replica `i`: PROXY v2, checked on its metrics port's /readyz often
  // enough that a killed replica leaves the rotation at the first failed check.
  std::string server(std::size_t i) const {
    return "127.0.0.1:" + std::to_string(replicas_[i].process->port()) +
           " send-proxy-v2 check port " + std::to_string(replicas_[i].metricsPort) +
           " inter 300ms fall 1 rise 1";
  }
  // Frontend 0 balances over both replicas, frontend 1 reaches only replica 0, frontend 2 only
  // replica 1. A connection to a replica that is gone is dispatched again to the other one.
  std::unique_ptr<Haproxy> startHaproxy() {
    const std::string check = "  option httpchk GET /readyz\n  http-check expect status 200\n";
    return std::make_unique<Haproxy>(
        dir_,
        std::vector<HaproxyBackend>{{{server(0), server(1)}, "  balance roundrobin\n" + check},
                                    {{server(0)}, check},
                                    {{server(1)}, check}},
        "  retries 3\n  option redispatch 1\n");
  }

  // USER/PASS for alice through `port`; the PASS answer, or what came instead.
  std::string login(std::unique_ptr<Pop3TestClient>& client, std::uint16_t port) {
    try {
      client = std::make_unique<Pop3TestClient>(port);
      if (!startsWith(client->greeting(), "+OK")) return "greeting: " + client->greeting();
      const std::string user = client->command("USER alice");
      if (!startsWith(user, "+OK")) return user;
      return client->command("PASS " + alice().password);
    } catch (const std::exception& e) {
      // haproxy closes a connection it could not place while a replica is going away.
      return std::string("failed: ") + e.what();
    }
  }
  // Logs in until granted (the dead replica's lease must expire first); the last answer.
  std::string loginWhenFree(std::unique_ptr<Pop3TestClient>& client, std::uint16_t port) {
    std::string reply;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      reply = login(client, port);
      if (startsWith(reply, "+OK")) return reply;
      std::this_thread::sleep_for(200ms);
    }
    return reply;
  }
  // The replica whose log shows alice's login, waiting for its log to be written.
  int servingReplica() {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      for (int i = 0; i < 2; ++i) {
        if (contains(replicas_[i].process->log(), "user=alice logged in")) return i;
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }
  ImapTestClient imap() {
    ImapTestClient client(dovecot_.imapPort());
    client.login("alice", alice().password);
    client.select("INBOX");
    return client;
  }
  // Every seeded message is there; those in `deleted` (1-based positions) are flagged
  // \Deleted, no other one.
  void expectDeleted(const std::vector<std::size_t>& deleted) {
    ImapTestClient client = imap();
    const std::vector<std::uint32_t> uids = client.uids();
    ASSERT_EQ(uids.size(), messages_.size());
    for (std::size_t i = 0; i < uids.size(); ++i) {
      bool expected = false;
      for (std::size_t position : deleted) expected = expected || position == i + 1;
      EXPECT_EQ(hasFlag(client.flags(uids[i]), "\\Deleted"), expected) << "UID " << uids[i];
    }
  }

  DovecotFixture dovecot_;
  RedisServer redis_;
  std::vector<std::string> messages_;
  std::string dir_;
  Replica replicas_[2];
};

TEST_F(ScaleOutTest, AKilledReplicasClientResumesOnTheOtherWithNothingLost) {
  auto haproxy = startHaproxy();
  std::unique_ptr<Pop3TestClient> first;
  ASSERT_TRUE(startsWith(login(first, haproxy->port(0)), "+OK"));
  const std::string uidl = first->multiLine("UIDL");
  EXPECT_EQ(first->multiLine("RETR 1"), messages_[0]);
  EXPECT_TRUE(startsWith(first->command("DELE 1"), "+OK"));
  const int victim = servingReplica();
  ASSERT_GE(victim, 0) << replicas_[0].process->log() << replicas_[1].process->log();
  const int survivor = 1 - victim;
  EXPECT_TRUE(contains(replicas_[victim].process->log(), "via PROXY v2 TCP4 from 127.0.0.1"))
      << replicas_[victim].process->log();

  // Killed before QUIT: no release of the lease, no deletion.
  replicas_[victim].process->signal(SIGKILL);
  replicas_[victim].process->waitForExit(10s);
  EXPECT_TRUE(first->closedByPeer(10000)) << "haproxy ends the client's side too";
  // Its /readyz check fails from now on; the survivor's keeps passing.
  const std::string victimDown = "Server b0/s" + std::to_string(victim) + " is DOWN";
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!contains(haproxy->log(), victimDown) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(contains(haproxy->log(), victimDown)) << haproxy->log();
  expectDeleted({});

  // Back through haproxy: refused ([IN-USE]) until the lease expires, then served by the other.
  std::unique_ptr<Pop3TestClient> second;
  ASSERT_TRUE(startsWith(loginWhenFree(second, haproxy->port(0)), "+OK"))
      << replicas_[survivor].process->log() << haproxy->log();
  EXPECT_TRUE(contains(replicas_[survivor].process->log(), "user=alice logged in"))
      << replicas_[survivor].process->log();
  EXPECT_TRUE(startsWith(second->command("STAT"), "+OK 3 ")) << "the DELE was never applied";
  EXPECT_EQ(second->multiLine("UIDL"), uidl);
  EXPECT_EQ(second->multiLine("RETR 1"), messages_[0]);
  EXPECT_TRUE(startsWith(second->command("DELE 1"), "+OK"));
  expectDeleted({});
  EXPECT_EQ(second->command("QUIT"), "+OK Logging out, 1 messages deleted.");
  expectDeleted({1});
  EXPECT_FALSE(contains(haproxy->log(), "Server b0/s" + std::to_string(survivor) + " is DOWN"))
      << haproxy->log();
}

TEST_F(ScaleOutTest, SessionsOnBothReplicasExcludeEachOther) {
  auto haproxy = startHaproxy();
  std::unique_ptr<Pop3TestClient> first, second, third;
  ASSERT_TRUE(startsWith(login(first, haproxy->port(1)), "+OK"));
  EXPECT_EQ(login(second, haproxy->port(2)), kInUse);
  // Through the balancing frontend too, whichever replica it picks.
  EXPECT_EQ(login(third, haproxy->port(0)), kInUse);
  EXPECT_TRUE(startsWith(first->command("DELE 2"), "+OK"));
  EXPECT_EQ(first->command("QUIT"), "+OK Logging out, 1 messages deleted.");
  // QUIT gave the lease back at once: the other replica serves the next session.
  EXPECT_TRUE(startsWith(login(second, haproxy->port(2)), "+OK"));
  EXPECT_TRUE(startsWith(second->command("STAT"), "+OK 2 "));
  EXPECT_TRUE(startsWith(second->command("QUIT"), "+OK"));
  expectDeleted({2});
  replicas_[1].process->stop();
  const std::string log = replicas_[1].process->log();
  EXPECT_TRUE(contains(log, "maildrop in use on another replica")) << log;
  EXPECT_TRUE(contains(log, "via PROXY v2 TCP4 from 127.0.0.1")) << log;
}

}  // namespace
}  // namespace popbridge::test
