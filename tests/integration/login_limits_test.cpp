// Issue 11, items 3 and 4, against the real binary: a flood of bad logins buys a bounded number
// of password checks, failed or abandoned logins from one IP slow down its next ones, and a
// client that does not log in is disconnected after login_timeout whatever it sends.
//
// Nothing here asserts a duration: the log says what popbridge decided, and the figures printed
// are for reading.

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

constexpr char kUser[] = "limits";

class LoginLimitsTest : public ::testing::Test {
 protected:
  // A user of its own, added once per process.
  static DovecotFixture& dovecot() {
    static DovecotFixture& seeded = []() -> DovecotFixture& {
      DovecotFixture& shared = DovecotFixture::shared();
      shared.addUser(kUser, "limits-Secret-11");
      shared.seedMaildir(kUser, {simpleMessage(1, 300), simpleMessage(2, 400)});
      return shared;
    }();
    return seeded;
  }
  static std::string password() { return dovecot().user(kUser).password; }
};

// (a) N clients send USER/PASS with a wrong password and hang up at once, against local
// [[account]]s with one check slot and two queue places. A legitimate login made meanwhile
// succeeds, the flood is refused or skipped, and few checks actually run.
TEST_F(LoginLimitsTest, PasswordCheckFloodIsBoundedAndALegitimateLoginGetsThrough) {
  constexpr std::size_t kFlood = 400;
  DovecotFixture& d = dovecot();
  const std::string secretsDir = d.dir() + "/limits-secrets";
  ::mkdir(secretsDir.c_str(), 0700);
  const std::string upstreamFile = secretsDir + "/" + kUser;
  {
    std::ofstream out(upstreamFile);
    out << password() << "\n";
  }
  const std::string devicePassword = "printer-Pa55-11";
  PopbridgeProcess::Options options;
  options.server =
      // Two loops share the slots: a check ending on one starts a waiter on the other.
      "workers = 2\nmax_connections_per_ip = 0\n"
      "max_password_checks = 1\npassword_check_queue = 2\n"
      // The per-IP throttle would hold every flood login back first; here the slots are tested.
      "login_throttle_after = 0\n";
  options.extra = "[[account]]\nuser = \"printer\"\npassword_hash = \"" +
                  config::hashPassword(devicePassword) + "\"\nupstream_user = \"" + kUser +
                  "\"\nupstream_password_file = \"" + upstreamFile + "\"\n";
  PopbridgeProcess proxy(d, options);
  proxy.addSecret(devicePassword);
  const double cpuBefore = cpuSecondsOf(proxy.pid());
  const MemoryUsage memoryBefore = memoryOf(proxy.pid());

  std::vector<std::unique_ptr<Pop3TestClient>> flood;
  for (std::size_t i = 0; i < kFlood; ++i) {
    flood.push_back(std::make_unique<Pop3TestClient>(proxy.port()));
    ASSERT_TRUE(startsWith(flood.back()->command("USER printer"), "+OK"));
  }
  for (auto& client : flood) client->sendRaw("PASS wrong-guess\r\n");
  for (auto& client : flood) client->close();

  // A device that meets "-ERR [SYS/TEMP]" retries shortly, as POP3 clients do.
  auto start = Clock::now();
  std::string reply;
  int attempts = 0;
  for (; attempts < 20; ++attempts) {
    Pop3TestClient pop(proxy.port());
    pop.setTimeout(10000);
    pop.command("USER printer");
    reply = pop.command("PASS " + devicePassword);
    if (!startsWith(reply, "-ERR [SYS/TEMP]")) {
      if (startsWith(reply, "+OK")) {
        EXPECT_TRUE(startsWith(pop.command("STAT"), "+OK 2 "));
      }
      pop.command("QUIT");
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(startsWith(reply, "+OK")) << reply;
  std::printf("[ figures ] legitimate login after %d busy answer(s), %.3f s after the flood\n",
              attempts, std::chrono::duration<double>(Clock::now() - start).count());

  // Let every flood session end before reading the log and the figures.
  std::this_thread::sleep_for(1500ms);
  const double cpu = cpuSecondsOf(proxy.pid()) - cpuBefore;
  const MemoryUsage memory = memoryOf(proxy.pid());
  std::printf(
      "[ figures ] %zu-connection flood: popbridge CPU %.2f s, RSS %ld KiB (start %ld "
      "KiB), peak %ld KiB\n",
      kFlood, cpu, memory.rssKiB, memoryBefore.rssKiB, memory.peakKiB);
  proxy.stop();
  const std::string log = proxy.log();
  const std::size_t refused = countOf(log, "password check refused");
  const std::size_t skipped = countOf(log, "queued password check skipped");
  const std::size_t checks = countOf(log, "password check started");
  std::printf("[ figures ] checks run %zu, refused %zu, skipped %zu (of %zu + %d)\n", checks,
              refused, skipped, kFlood, attempts + 1);
  EXPECT_GE(refused, kFlood / 2) << "the flood was not refused";
  EXPECT_GE(checks, 1u) << "the legitimate login is checked";
  EXPECT_LE(checks, kFlood / 10) << "too many checks ran";
  // What is neither refused nor run was queued and skipped when its client had gone.
  EXPECT_GE(refused + skipped + checks, kFlood);
  std::remove(upstreamFile.c_str());
  ::rmdir(secretsDir.c_str());
}

// (b) Pass-through logins (no [[account]]s, so each costs the upstream a LOGIN): clients that
// give up before the answer count against their IP, and once there were login_throttle_after of
// them, the next login from that IP waits before it is even tried (auth_failure_delay, which
// PopbridgeProcess sets to 200ms).
TEST_F(LoginLimitsTest, AbandonedLoginsThrottleTheNextLoginFromTheSameIp) {
  PopbridgeProcess::Options options;
  options.server = "login_throttle_after = 2\nlogin_throttle_max_delay = \"2s\"\n";
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret("wrong-Guess-b");
  for (int i = 0; i < 2; ++i) {
    Pop3TestClient pop(proxy.port());
    pop.command(std::string("USER ") + kUser);
    // Hangs up long before the failure delay could answer.
    pop.sendRaw("PASS wrong-Guess-b\r\n");
    pop.close();
  }
  // The hang-ups are seen (or the upstream's refusals came first) before the next login.
  for (const auto deadline = std::chrono::steady_clock::now() + 10s;
       countOf(proxy.log(), "login abandoned") + countOf(proxy.log(), "login failed (") < 2 &&
       std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(20ms);
  }
  Pop3TestClient pop(proxy.port());
  pop.setTimeout(15000);
  pop.command(std::string("USER ") + kUser);
  EXPECT_TRUE(startsWith(pop.command("PASS " + password()), "+OK"))
      << "a throttled login is late, not refused";
  pop.command("QUIT");
  proxy.stop();
  const std::string log = proxy.log();
  // The upstream (Dovecot without a failure delay) may still win the race against a hang-up.
  std::printf("[ figures ] abandoned %zu, failed %zu\n", countOf(log, "login abandoned"),
              countOf(log, "login failed ("));
  EXPECT_EQ(countOf(log, "login abandoned") + countOf(log, "login failed ("), 2u) << log;
  EXPECT_NE(log.find("login throttled: 2 failed or abandoned logins from 127.0.0.1; checking in "
                     "200 ms"),
            std::string::npos)
      << log;
}

// The same throttle for local accounts, counting real failures across connections.
TEST_F(LoginLimitsTest, FailedLocalLoginsThrottleTheNextLoginFromTheSameIp) {
  const std::string devicePassword = "scanner-Pa55-11";
  PopbridgeProcess::Options options;
  options.server = "login_throttle_after = 1\nlogin_throttle_max_delay = \"4s\"\n";
  // Never read here (no login succeeds), but an account needs one to load.
  DovecotFixture& d = dovecot();
  const std::string file = d.dir() + "/limits-unused-secret";
  {
    std::ofstream out(file);
    out << "unused\n";
  }
  options.extra = "[[account]]\nuser = \"scanner\"\npassword_hash = \"" +
                  config::hashPassword(devicePassword) + "\"\nupstream_user = \"" + kUser +
                  "\"\nupstream_password_file = \"" + file + "\"\n";
  PopbridgeProcess proxy(d, options);
  proxy.addSecret(devicePassword);
  for (int i = 0; i < 2; ++i) {
    Pop3TestClient pop(proxy.port());
    pop.setTimeout(15000);
    pop.command("USER scanner");
    EXPECT_TRUE(startsWith(pop.command("PASS wrong-Guess-c"), "-ERR [AUTH]"));
  }
  proxy.stop();
  const std::string log = proxy.log();
  EXPECT_NE(log.find("login throttled: 1 failed or abandoned logins from 127.0.0.1; checking in "
                     "200 ms"),
            std::string::npos)
      << log;
  std::remove(file.c_str());
}

// (c) login_timeout: CAPA every half second does not keep an unauthenticated client connected;
// a client that logged in is not affected.
TEST_F(LoginLimitsTest, LoginTimeoutClosesAClientThatNeverLogsIn) {
  PopbridgeProcess::Options options;
  // Long enough for the other client's login (a fresh Dovecot process, SELECT, the snapshot) on
  // a loaded machine; its timer runs from accept to the end of the login too.
  options.server = "login_timeout = \"4s\"\n";
  PopbridgeProcess proxy(dovecot(), options);

  Pop3TestClient loggedIn(proxy.port());
  loggedIn.command(std::string("USER ") + kUser);
  ASSERT_TRUE(startsWith(loggedIn.command("PASS " + password()), "+OK"));

  Pop3TestClient chatty(proxy.port());
  chatty.setTimeout(5000);
  std::string status;
  for (int i = 0; i < 20; ++i) {
    status = chatty.command("CAPA");
    if (!startsWith(status, "+OK")) break;
    chatty.readMultiLineBody();
    EXPECT_TRUE(startsWith(loggedIn.command("NOOP"), "+OK"));
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_EQ(status, "-ERR Login timeout, closing connection.");
  EXPECT_TRUE(chatty.closedByPeer(5000));
  EXPECT_NO_THROW(loggedIn.multiLine("LIST"));
  EXPECT_TRUE(startsWith(loggedIn.command("QUIT"), "+OK"));
  proxy.stop();
  const std::string log = proxy.log();
  EXPECT_EQ(countOf(log, "login timeout: not logged in after 4s, closing"), 1u) << log;
}

}  // namespace
}  // namespace popbridge::test
