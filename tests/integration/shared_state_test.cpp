// Replicas sharing one Redis ([state] redis): two popbridge processes in front of the real
// Dovecot and a real redis-server on loopback. RFC 1939's exclusive maildrop holds across them;
// a Redis that goes away mid-session leaves logins and reads working and makes QUIT fail closed
// with nothing deleted; a killed replica's lease expires; a replica whose lease was taken over
// while it was paused applies nothing.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_clients.h"
#include "tests/support/text_match.h"

namespace popbridge::test {
namespace {

using namespace std::chrono_literals;

class SharedStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 1; i <= 3; ++i) messages_.push_back(simpleMessage(i));
    dovecot_.seedMaildir("alice", messages_);
  }
  const DovecotUser& alice() const { return dovecot_.user("alice"); }

  PopbridgeProcess::Options options(const RedisServer& redis, const std::string& state = "") {
    PopbridgeProcess::Options o;
    // Refused logins ([IN-USE]) are retried below; no throttle may slow them.
    o.server = "login_throttle_after = 0\nlogin_throttle_user_after = 0\n";
    // A Redis answer later than this fails the command and leaves the client down for a
    // second: 1s, so that a loaded machine does not make a lease lapse (lease_ttl 4s below).
    o.extra = "[state]\nredis = \"" + redis.url() + "\"\nredis_timeout = \"1s\"\n" + state;
    return o;
  }
  // USER/PASS for alice; the PASS answer.
  std::string login(std::unique_ptr<Pop3TestClient>& client, std::uint16_t port) {
    client = std::make_unique<Pop3TestClient>(port);
    const std::string user = client->command("USER alice");
    if (!startsWith(user, "+OK")) return user;
    return client->command("PASS " + alice().password);
  }
  // Logs in until granted (another session's lease must expire first); the last answer.
  std::string loginWhenFree(std::unique_ptr<Pop3TestClient>& client, std::uint16_t port) {
    std::string reply;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      reply = login(client, port);
      if (!startsWith(reply, "-ERR [IN-USE]")) return reply;
      std::this_thread::sleep_for(200ms);
    }
    return reply;
  }
  ImapTestClient imap() {
    ImapTestClient client(dovecot_.imapPort());
    client.login("alice", alice().password);
    client.select("INBOX");
    return client;
  }
  // Nothing was deleted: every seeded message is there, none flagged \Deleted.
  void expectNothingDeleted() {
    ImapTestClient client = imap();
    const std::vector<std::uint32_t> uids = client.uids();
    ASSERT_EQ(uids.size(), messages_.size());
    for (std::uint32_t uid : uids) {
      EXPECT_FALSE(hasFlag(client.flags(uid), "\\Deleted")) << "UID " << uid;
    }
  }

  DovecotFixture dovecot_;
  std::vector<std::string> messages_;
};

TEST_F(SharedStateTest, TheSecondReplicaGetsInUse) {
  RedisServer redis;
  PopbridgeProcess a(dovecot_, options(redis));
  PopbridgeProcess b(dovecot_, options(redis));
  std::unique_ptr<Pop3TestClient> first, second;
  ASSERT_TRUE(startsWith(login(first, a.port()), "+OK"));
  EXPECT_EQ(login(second, b.port()),
            "-ERR [IN-USE] Mailbox is in use by another session, try again later.");
  EXPECT_TRUE(startsWith(first->command("QUIT"), "+OK"));
  // QUIT gave the lease back at once: no wait for its expiry.
  EXPECT_TRUE(startsWith(second->command("USER alice"), "+OK"));
  EXPECT_TRUE(startsWith(second->command("PASS " + alice().password), "+OK"));
  EXPECT_TRUE(startsWith(second->command("DELE 1"), "+OK"));
  EXPECT_EQ(second->command("QUIT"), "+OK Logging out, 1 messages deleted.");
  EXPECT_TRUE(hasFlag(imap().flags(imap().uids()[0]), "\\Deleted"));
  b.stop();
  EXPECT_NE(b.log().find("maildrop in use on another replica"), std::string::npos) << b.log();
}

TEST_F(SharedStateTest, TheSecondReplicaGetsInUseOverTlsWithAuth) {
  if (!RedisServer::supportsTls()) GTEST_SKIP() << "this redis-server has no TLS";
  const std::string password = "Redis-pw-never-logged";
  RedisServer redis({.password = password, .tls = true});
  const std::string state = "redis_ca_file = \"" + redis.caFile() + "\"\nredis_password_file = \"" +
                            redis.dir() + "/password\"\n";
  {
    std::FILE* file = std::fopen((redis.dir() + "/password").c_str(), "w");
    ASSERT_NE(file, nullptr);
    std::fputs((password + "\n").c_str(), file);
    std::fclose(file);
  }
  PopbridgeProcess a(dovecot_, options(redis, state));
  PopbridgeProcess b(dovecot_, options(redis, state));
  a.addSecret(password);
  b.addSecret(password);
  std::unique_ptr<Pop3TestClient> first, second;
  ASSERT_TRUE(startsWith(login(first, a.port()), "+OK"));
  EXPECT_EQ(login(second, b.port()),
            "-ERR [IN-USE] Mailbox is in use by another session, try again later.");
  EXPECT_TRUE(startsWith(first->command("QUIT"), "+OK"));
  // The lease is in the TLS Redis, under the default prefix.
  EXPECT_EQ(redis.command({"GET", "popbridge:fence:5:alice:INBOX"}), "1");
}

TEST_F(SharedStateTest, WithoutRedisReadsGoOnAndQuitDeletesNothing) {
  RedisServer redis;
  PopbridgeProcess a(dovecot_, options(redis));
  std::unique_ptr<Pop3TestClient> client;
  ASSERT_TRUE(startsWith(login(client, a.port()), "+OK"));
  EXPECT_TRUE(startsWith(client->command("DELE 1"), "+OK"));
  redis.kill();
  // Reads do not need Redis.
  EXPECT_EQ(client->multiLine("RETR 2"), messages_[1]);
  EXPECT_TRUE(startsWith(client->command("DELE 3"), "+OK"));
  EXPECT_EQ(client->command("QUIT"),
            "-ERR [SYS/TEMP] Cannot confirm exclusive access to the mailbox; no messages were "
            "deleted.");
  expectNothingDeleted();

  // A login while Redis is down works too, and reads; its QUIT deletes nothing either.
  std::unique_ptr<Pop3TestClient> later;
  ASSERT_TRUE(startsWith(login(later, a.port()), "+OK"));
  EXPECT_EQ(later->multiLine("RETR 1"), messages_[0]);
  EXPECT_TRUE(startsWith(later->command("DELE 1"), "+OK"));
  EXPECT_TRUE(startsWith(later->command("QUIT"), "-ERR [SYS/TEMP]"));
  expectNothingDeleted();
  a.stop();
  const std::string log = a.log();
  EXPECT_NE(log.find("QUIT refused with [SYS/TEMP]: the maildrop lease could not be confirmed"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("QUIT applies no deletion without its lease"), std::string::npos) << log;
}

TEST_F(SharedStateTest, AKilledReplicasLeaseExpires) {
  RedisServer redis;
  PopbridgeProcess a(dovecot_, options(redis, "lease_ttl = \"4s\"\n"));
  PopbridgeProcess b(dovecot_, options(redis, "lease_ttl = \"4s\"\n"));
  std::unique_ptr<Pop3TestClient> first, second;
  ASSERT_TRUE(startsWith(login(first, a.port()), "+OK"));
  // Renewals keep it held past its ttl while the session lives.
  std::this_thread::sleep_for(5s);
  EXPECT_TRUE(startsWith(login(second, b.port()), "-ERR [IN-USE]"));
  a.signal(SIGKILL);
  a.waitForExit(10s);
  // No release comes from a killed process: the lease runs out.
  EXPECT_TRUE(startsWith(loginWhenFree(second, b.port()), "+OK"));
  EXPECT_TRUE(startsWith(second->command("DELE 1"), "+OK"));
  EXPECT_EQ(second->command("QUIT"), "+OK Logging out, 1 messages deleted.");
}

TEST_F(SharedStateTest, ASessionWhoseLeaseWasTakenOverAppliesNothing) {
  RedisServer redis;
  PopbridgeProcess a(dovecot_, options(redis, "lease_ttl = \"4s\"\n"));
  PopbridgeProcess b(dovecot_, options(redis, "lease_ttl = \"4s\"\n"));
  std::unique_ptr<Pop3TestClient> first, second;
  ASSERT_TRUE(startsWith(login(first, a.port()), "+OK"));
  EXPECT_TRUE(startsWith(first->command("DELE 1"), "+OK"));
  // Replica A stalls (a long GC pause, a frozen VM): its lease is not renewed and B takes over.
  a.signal(SIGSTOP);
  EXPECT_TRUE(startsWith(loginWhenFree(second, b.port()), "+OK"));
  a.signal(SIGCONT);
  EXPECT_TRUE(startsWith(first->command("QUIT"), "-ERR [SYS/TEMP]"));
  expectNothingDeleted();
  EXPECT_TRUE(startsWith(second->command("QUIT"), "+OK"));
  a.stop();
  // Which line says why depends on what A's Redis connection made of its stall: a renewal that
  // found the lease gone ("lost"), or a connection that timed out while stopped and so could
  // not confirm it. Either way QUIT was refused, and the log says so.
  const std::string log = a.log();
  EXPECT_TRUE(log.find("maildrop lease lost") != std::string::npos ||
              log.find("QUIT refused with [SYS/TEMP]: the maildrop lease could not be confirmed") !=
                  std::string::npos)
      << log;
}

// A guesser that moves to another replica meets the delay its failures earned on the first.
TEST_F(SharedStateTest, FailedLoginsCountAcrossReplicas) {
  RedisServer redis;
  PopbridgeProcess::Options o = options(redis);
  // The fixture's auth_failure_delay (200ms) is the throttle's first delay.
  o.server = "login_throttle_after = 2\nlogin_throttle_user_after = 0\n";
  PopbridgeProcess a(dovecot_, o);
  PopbridgeProcess b(dovecot_, o);
  a.addSecret("wrong-Password-1");
  for (int i = 0; i < 2; ++i) {
    Pop3TestClient client(a.port());
    ASSERT_TRUE(startsWith(client.command("USER alice"), "+OK"));
    EXPECT_TRUE(startsWith(client.command("PASS wrong-Password-1"), "-ERR [AUTH]"));
  }
  EXPECT_EQ(redis.command({"GET", "popbridge:fail:ip:127.0.0.1"}), "2");
  std::unique_ptr<Pop3TestClient> client;
  EXPECT_TRUE(startsWith(login(client, b.port()), "+OK")) << "delayed, not refused";
  EXPECT_TRUE(startsWith(client->command("QUIT"), "+OK"));
  // The success forgave the address across the cluster.
  EXPECT_EQ(redis.command({"EXISTS", "popbridge:fail:ip:127.0.0.1"}), "0");
  b.stop();
  EXPECT_NE(b.log().find("login throttled: 2 failed or abandoned logins from 127.0.0.1"),
            std::string::npos)
      << b.log();
}

}  // namespace
}  // namespace popbridge::test
