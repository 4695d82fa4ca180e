// Abuse control through the real binary to the real Dovecot: the failed-login throttle keyed by
// IP and by user, the exclusive maildrop and max_sessions_per_account ([IN-USE]) in local-account
// and pass-through mode, and RFC 2449 LOGIN-DELAY.
//
// Client sockets are bound to 127.0.0.21 and up (Linux routes all of 127/8 to loopback), so
// popbridge sees several client addresses. A throttle's delay is behaviour, asserted with wide
// margins and by ordering (a throttled login answers after an unthrottled one that started
// later), never as a performance figure.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/password.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"
#include "tests/support/text_match.h"

namespace popbridge::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kUserA[] = "abuse-a";
constexpr char kUserB[] = "abuse-b";
constexpr char kDevicePassword[] = "device-Pa55-abuse";

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class AbuseControlTest : public ::testing::Test {
 protected:
  static DovecotFixture& dovecot() {
    static DovecotFixture& seeded = []() -> DovecotFixture& {
      DovecotFixture& shared = DovecotFixture::shared();
      shared.addUser(kUserA, "abuse-A-Secret");
      shared.addUser(kUserB, "abuse-B-Secret");
      shared.seedMaildir(kUserA, {simpleMessage(1, 300)});
      shared.seedMaildir(kUserB, {simpleMessage(2, 400)});
      return shared;
    }();
    return seeded;
  }
  static std::string password(const char* user) { return dovecot().user(user).password; }

  // Two local accounts, "dev1" and "dev2", both mapped to upstream user A.
  static std::string localAccounts() {
    DovecotFixture& d = dovecot();
    const std::string dir = d.dir() + "/abuse-secrets";
    ::mkdir(dir.c_str(), 0700);
    const std::string file = dir + "/" + kUserA;
    std::ofstream(file) << password(kUserA) << "\n";
    const std::string hash = config::hashPassword(kDevicePassword);
    std::string extra;
    for (const char* device : {"dev1", "dev2"}) {
      extra += std::string("[[account]]\nuser = \"") + device + "\"\npassword_hash = \"" + hash +
               "\"\nupstream_user = \"" + kUserA + "\"\nupstream_password_file = \"" + file +
               "\"\n";
    }
    return extra;
  }

  // USER/PASS on a fresh connection from `ip`; the PASS answer.
  static std::string login(std::unique_ptr<Pop3TestClient>& pop, std::uint16_t port,
                           const std::string& user, const std::string& pass,
                           const std::string& ip = "127.0.0.1") {
    pop = std::make_unique<Pop3TestClient>(port, false, "", ip);
    pop->setTimeout(30000);
    EXPECT_TRUE(startsWith(pop->command("USER " + user), "+OK"));
    return pop->command("PASS " + pass);
  }
};

// A flood of failed logins from one IP is slowed more and more, while another IP is served at
// once; the throttled login is late, never refused.
TEST_F(AbuseControlTest, FailedLoginsFromOneIpSlowItWhileAnotherIpIsServedAtOnce) {
  PopbridgeProcess::Options options;
  options.server =
      "login_throttle_after = 2\nlogin_throttle_max_delay = \"8s\"\n"
      "login_throttle_user_after = 0\n";
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret("wrong-Guess-flood");
  std::vector<double> took;
  for (int i = 0; i < 6; ++i) {
    std::unique_ptr<Pop3TestClient> pop;
    auto start = Clock::now();
    EXPECT_TRUE(startsWith(login(pop, proxy.port(), kUserA, "wrong-Guess-flood", "127.0.0.21"),
                           "-ERR [AUTH]"));
    took.push_back(secondsSince(start));
  }
  std::printf("[ figures ] failed logins from one IP took");
  for (double t : took) std::printf(" %.2f", t);
  std::printf(" s\n");
  // Failures 1 and 2 wait only auth_failure_delay (200 ms); from the third on the check itself
  // waits, 200 ms doubled per failure: the sixth at least 1.6 s (a timer never fires early).
  EXPECT_GE(took.back(), 1.6) << "the delay grows";

  // The seventh would wait 3.2 s before it is even checked; a login from another IP that starts
  // after it is answered first.
  Pop3TestClient throttled(proxy.port(), false, "", "127.0.0.21");
  throttled.setTimeout(30000);
  ASSERT_TRUE(startsWith(throttled.command(std::string("USER ") + kUserA), "+OK"));
  auto throttledStart = Clock::now();
  throttled.sendRaw("PASS " + password(kUserA) + "\r\n");
  std::this_thread::sleep_for(100ms);
  std::unique_ptr<Pop3TestClient> other;
  auto otherStart = Clock::now();
  EXPECT_TRUE(
      startsWith(login(other, proxy.port(), kUserB, password(kUserB), "127.0.0.22"), "+OK"));
  const double otherTook = secondsSince(otherStart);
  EXPECT_FALSE(throttled.connection().closedByPeer(0));
  EXPECT_EQ(throttled.connection().bufferedBytes(), 0u)
      << "the other IP, which asked later, was answered first";
  EXPECT_TRUE(startsWith(other->command("QUIT"), "+OK"));
  EXPECT_TRUE(startsWith(throttled.readLine(), "+OK")) << "a delay, not a refusal";
  const double throttledTook = secondsSince(throttledStart);
  EXPECT_GE(throttledTook, 2.0);
  std::printf("[ figures ] throttled login %.2f s; other IP %.2f s\n", throttledTook, otherTook);
  throttled.command("QUIT");
  proxy.stop();
  const std::string log = proxy.log();
  for (const char* delay : {"200", "400", "800", "1600", "3200"}) {
    EXPECT_EQ(countOf(log, std::string("failed or abandoned logins from 127.0.0.21; checking in ") +
                               delay + " ms"),
              1u)
        << delay << "\n"
        << log;
  }
  EXPECT_EQ(countOf(log, "login throttled"), 5u) << "127.0.0.22 was never throttled\n" << log;
}

// Failures for user A spread over several IPs slow A (from any IP), not B; A's correct login
// still goes through, and clears A's count.
TEST_F(AbuseControlTest, FailuresForOneUserFromManyIpsSlowThatUserOnly) {
  PopbridgeProcess::Options options;
  options.server =
      "login_throttle_after = 0\nlogin_throttle_user_after = 2\n"
      "login_throttle_max_delay = \"8s\"\n";
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret("wrong-Guess-user");
  for (int i = 0; i < 6; ++i) {
    std::unique_ptr<Pop3TestClient> pop;
    const std::string ip = "127.0.0." + std::to_string(31 + i);
    // One name however it is spelt: the count is not escaped by changing case.
    const std::string name = i % 2 == 0 ? "ABUSE-A" : kUserA;
    EXPECT_TRUE(startsWith(login(pop, proxy.port(), name, "wrong-Guess-user", ip), "-ERR [AUTH]"));
  }
  // A, from an address that never failed: 3.2 s before the check.
  Pop3TestClient alice(proxy.port(), false, "", "127.0.0.40");
  alice.setTimeout(30000);
  ASSERT_TRUE(startsWith(alice.command(std::string("USER ") + kUserA), "+OK"));
  auto aliceStart = Clock::now();
  alice.sendRaw("PASS " + password(kUserA) + "\r\n");
  std::this_thread::sleep_for(100ms);
  // B, from an address that did fail for A: not slowed.
  std::unique_ptr<Pop3TestClient> bob;
  auto bobStart = Clock::now();
  EXPECT_TRUE(startsWith(login(bob, proxy.port(), kUserB, password(kUserB), "127.0.0.31"), "+OK"));
  const double bobTook = secondsSince(bobStart);
  EXPECT_FALSE(alice.connection().closedByPeer(0));
  EXPECT_EQ(alice.connection().bufferedBytes(), 0u)
      << "the other user, who asked later, was answered first";
  bob->command("QUIT");
  EXPECT_TRUE(startsWith(alice.readLine(), "+OK")) << "a delay, never a lockout";
  const double aliceTook = secondsSince(aliceStart);
  EXPECT_GE(aliceTook, 2.0);
  std::printf("[ figures ] throttled user %.2f s; other user %.2f s\n", aliceTook, bobTook);
  EXPECT_TRUE(startsWith(alice.command("QUIT"), "+OK"));

  // The success cleared A's count.
  std::unique_ptr<Pop3TestClient> cleared;
  EXPECT_TRUE(
      startsWith(login(cleared, proxy.port(), kUserA, password(kUserA), "127.0.0.42"), "+OK"));
  cleared->command("QUIT");
  proxy.stop();
  const std::string log = proxy.log();
  // Failures 3 to 6 and A's correct login waited; B and A's login after its success did not.
  for (const char* delay : {"200", "400", "800", "1600", "3200"}) {
    EXPECT_EQ(countOf(log, std::string("failed or abandoned logins for this user; checking in ") +
                               delay + " ms"),
              1u)
        << delay << "\n"
        << log;
  }
  EXPECT_EQ(countOf(log, "login throttled"), 5u) << log;
}

// Local accounts: two devices mapped to one upstream account share its maildrop. The second
// gets [IN-USE] only with the right password, nothing goes upstream for it, it may retry on the
// same connection once the first is gone, and a dropped connection frees the maildrop too.
TEST_F(AbuseControlTest, ASecondSessionForALocalAccountsMaildropIsInUse) {
  PopbridgeProcess::Options options;
  options.server = "login_throttle_after = 0\nlogin_throttle_user_after = 0\n";
  options.extra = localAccounts();
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret(kDevicePassword);

  std::unique_ptr<Pop3TestClient> first;
  ASSERT_TRUE(startsWith(login(first, proxy.port(), "dev1", kDevicePassword), "+OK"));
  std::unique_ptr<Pop3TestClient> second;
  EXPECT_EQ(login(second, proxy.port(), "dev2", "wrong-Device-pw"),
            "-ERR [AUTH] Authentication failed.")
      << "no hint of the open session without the password";
  EXPECT_EQ(second->command("PASS " + std::string(kDevicePassword)),
            "-ERR No user name given; send USER first.");
  ASSERT_TRUE(startsWith(second->command("USER dev2"), "+OK"));
  EXPECT_EQ(second->command(std::string("PASS ") + kDevicePassword),
            "-ERR [IN-USE] Mailbox is in use by another session, try again later.");
  // Still in AUTHORIZATION: a transaction command is refused, the connection stays.
  EXPECT_TRUE(startsWith(second->command("STAT"), "-ERR Not logged in"));
  EXPECT_TRUE(startsWith(first->command("STAT"), "+OK 1 "));
  EXPECT_TRUE(startsWith(first->command("QUIT"), "+OK"));
  ASSERT_TRUE(startsWith(second->command("USER dev2"), "+OK"));
  EXPECT_TRUE(startsWith(second->command(std::string("PASS ") + kDevicePassword), "+OK"))
      << "the maildrop is free after QUIT";

  // A session that drops its connection without QUIT frees the maildrop as well.
  second->close();
  std::string reply;
  for (int i = 0; i < 50; ++i) {
    std::unique_ptr<Pop3TestClient> third;
    reply = login(third, proxy.port(), "dev1", kDevicePassword);
    if (startsWith(reply, "+OK")) {
      third->command("QUIT");
      break;
    }
    EXPECT_TRUE(startsWith(reply, "-ERR [IN-USE]")) << reply;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(startsWith(reply, "+OK")) << reply;
  proxy.stop();
  const std::string log = proxy.log();
  EXPECT_GE(countOf(log,
                    "login refused with [IN-USE]: maildrop in use (upstream account abuse-a, "
                    "folder \"INBOX\")"),
            1u)
      << log;
  // Every upstream connection (new or taken from the pool) belongs to a granted login: the
  // refusal sent nothing upstream.
  EXPECT_EQ(
      countOf(log, "connecting to upstream") + countOf(log, "reusing a pooled upstream connection"),
      countOf(log, "logged in; "))
      << log;
}

// Pass-through: the upstream's OK proves the login, then the claim is refused and popbridge
// logs out of the upstream before any SELECT.
TEST_F(AbuseControlTest, ASecondPassThroughSessionIsInUseAfterTheUpstreamAcceptedIt) {
  PopbridgeProcess::Options options;
  options.server = "login_throttle_after = 0\nlogin_throttle_user_after = 0\n";
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret("wrong-Pass-through");
  std::unique_ptr<Pop3TestClient> first;
  ASSERT_TRUE(startsWith(login(first, proxy.port(), kUserA, password(kUserA)), "+OK"));
  std::unique_ptr<Pop3TestClient> second;
  EXPECT_EQ(login(second, proxy.port(), kUserA, "wrong-Pass-through"),
            "-ERR [AUTH] Authentication failed.");
  ASSERT_TRUE(startsWith(second->command(std::string("USER ") + kUserA), "+OK"));
  EXPECT_EQ(second->command("PASS " + password(kUserA)),
            "-ERR [IN-USE] Mailbox is in use by another session, try again later.");
  // Another account is not affected.
  std::unique_ptr<Pop3TestClient> other;
  EXPECT_TRUE(startsWith(login(other, proxy.port(), kUserB, password(kUserB)), "+OK"));
  other->command("QUIT");
  EXPECT_TRUE(startsWith(first->command("QUIT"), "+OK"));
  ASSERT_TRUE(startsWith(second->command(std::string("USER ") + kUserA), "+OK"));
  EXPECT_TRUE(startsWith(second->command("PASS " + password(kUserA)), "+OK"));
  EXPECT_TRUE(startsWith(second->command("QUIT"), "+OK"));
  proxy.stop();
  const std::string log = proxy.log();
  EXPECT_EQ(countOf(log, "login refused with [IN-USE]: maildrop in use"), 1u) << log;
  // Two sessions of A and one of B opened a folder; the refused login did not.
  EXPECT_EQ(countOf(log, "logged in; "), 3u) << log;
}

// exclusive = false lets sessions share the maildrop; max_sessions_per_account still caps them.
TEST_F(AbuseControlTest, SharedMaildropsAreCappedByMaxSessionsPerAccount) {
  PopbridgeProcess::Options options;
  options.server = "max_sessions_per_account = 2\n";
  options.mailbox = "exclusive = false\n";
  options.extra = localAccounts();
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret(kDevicePassword);
  std::unique_ptr<Pop3TestClient> one, two, three;
  ASSERT_TRUE(startsWith(login(one, proxy.port(), "dev1", kDevicePassword), "+OK"));
  ASSERT_TRUE(startsWith(login(two, proxy.port(), "dev2", kDevicePassword), "+OK"))
      << "shared: both devices are served";
  EXPECT_EQ(login(three, proxy.port(), "dev1", kDevicePassword),
            "-ERR [IN-USE] Mailbox is in use by another session, try again later.");
  EXPECT_TRUE(startsWith(one->command("QUIT"), "+OK"));
  ASSERT_TRUE(startsWith(three->command("USER dev1"), "+OK"));
  EXPECT_TRUE(startsWith(three->command(std::string("PASS ") + kDevicePassword), "+OK"));
  two->command("QUIT");
  three->command("QUIT");
  proxy.stop();
  EXPECT_NE(proxy.log().find("login refused with [IN-USE]: account at max_sessions_per_account"),
            std::string::npos)
      << proxy.log();
}

// RFC 2449 LOGIN-DELAY: announced in CAPA, and a login within it refused after the password
// was checked; a wrong password still gets [AUTH].
TEST_F(AbuseControlTest, LoginDelayIsAnnouncedAndEnforcedAfterThePasswordCheck) {
  {
    PopbridgeProcess plain(dovecot(), {});
    Pop3TestClient pop(plain.port());
    EXPECT_EQ(pop.multiLine("CAPA").find("LOGIN-DELAY"), std::string::npos)
        << "off by default, and then not announced";
  }
  PopbridgeProcess::Options options;
  options.server =
      "login_delay = \"30s\"\nlogin_throttle_after = 0\nlogin_throttle_user_after = 0\n";
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret("wrong-Delay");
  std::unique_ptr<Pop3TestClient> first;
  {
    Pop3TestClient pop(proxy.port());
    EXPECT_NE(pop.multiLine("CAPA").find("\r\nLOGIN-DELAY 30\r\n"), std::string::npos);
  }
  ASSERT_TRUE(startsWith(login(first, proxy.port(), kUserB, password(kUserB)), "+OK"));
  EXPECT_NE(first->multiLine("CAPA").find("\r\nLOGIN-DELAY 30\r\n"), std::string::npos)
      << "announced in TRANSACTION too";
  EXPECT_TRUE(startsWith(first->command("QUIT"), "+OK"));

  std::unique_ptr<Pop3TestClient> soon;
  EXPECT_EQ(login(soon, proxy.port(), kUserB, "wrong-Delay"), "-ERR [AUTH] Authentication failed.")
      << "nothing about the last login without the password";
  ASSERT_TRUE(startsWith(soon->command(std::string("USER ") + kUserB), "+OK"));
  EXPECT_EQ(soon->command("PASS " + password(kUserB)),
            "-ERR [LOGIN-DELAY] Logged in too recently; wait before logging in again.");
  // Per user: A may log in.
  std::unique_ptr<Pop3TestClient> other;
  EXPECT_TRUE(startsWith(login(other, proxy.port(), kUserA, password(kUserA)), "+OK"));
  other->command("QUIT");
  proxy.stop();
  EXPECT_NE(proxy.log().find("login refused with [LOGIN-DELAY]"), std::string::npos) << proxy.log();
}

}  // namespace
}  // namespace popbridge::test
