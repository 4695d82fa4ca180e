// Startup and readiness: popbridge installs its SIGTERM/SIGINT handling before any port accepts
// a connection, logs "ready" and sends READY=1 to $NOTIFY_SOCKET only once every listener
// accepts, and shuts down cleanly however early it is told to stop.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "proxy/readiness.h"
#include "tests/support/client_runner.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// Waits up to 15 s; the exit status, -1 for a signal or a timeout (then the child is killed).
int waitForExit(pid_t pid, std::string& how) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      how = "still running after 15 s";
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFSIGNALED(status)) {
    how = std::string("killed by signal ") + std::to_string(WTERMSIG(status));
    return -1;
  }
  how = "exit status " + std::to_string(WEXITSTATUS(status));
  return WEXITSTATUS(status);
}

class StartupTest : public ::testing::Test {
 protected:
  static DovecotFixture& dovecot() { return DovecotFixture::shared(); }
};

// What the old helper did (stop as soon as the port connects) killed popbridge now and then: it
// listened before it had a SIGTERM handler. Stopped right after READY=1, it must always log the
// shutdown and exit 0, with one or two workers and listeners.
TEST_F(StartupTest, SigtermRightAfterReadyAlwaysShutsDownCleanly) {
  constexpr int kRounds = 30;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    PopbridgeProcess::Options options;
    if (round % 2 == 1) {
      options.server = "workers = 2\n";
      options.listeners.push_back(PopbridgeProcess::Listener{});
    }
    PopbridgeProcess proxy(dovecot(), options);
    const int status = proxy.stop();
    const std::string log = proxy.log();
    ASSERT_EQ(status, 0) << log;
    EXPECT_TRUE(contains(log, " ready\n")) << log;
    EXPECT_TRUE(contains(log, "received SIGTERM; shutting down")) << log;
    EXPECT_TRUE(contains(log, "popbridge stopped")) << log;
    ASSERT_EQ(proxy.notifications().size(), 2u);
    EXPECT_EQ(proxy.notifications()[0], "READY=1");
    EXPECT_EQ(proxy.notifications()[1], "STOPPING=1");
  }
}

// READY=1 (here on an abstract socket name) means every listener accepts connections: one
// connect attempt each, with no retry, must get the POP3 greeting, and the log already has every
// "listening on" line followed by "ready".
TEST_F(StartupTest, ReadyArrivesOnlyOnceEveryPortAcceptsConnections) {
  PopbridgeProcess::Options options;
  options.server = "workers = 2\n";
  options.listeners.push_back(PopbridgeProcess::Listener{});
  options.notifySocket = "@popbridge-startup-test-" + std::to_string(::getpid());
  PopbridgeProcess proxy(dovecot(), options);
  ASSERT_EQ(proxy.notifications().size(), 1u);
  EXPECT_EQ(proxy.notifications()[0], "READY=1");
  for (std::size_t i = 0; i < 2; ++i) {
    try {
      Pop3TestClient pop(proxy.port(i));
      EXPECT_EQ(pop.greeting().rfind("+OK", 0), 0u) << pop.greeting();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "port " << proxy.port(i) << " after READY=1: " << e.what() << "\n"
                    << proxy.log();
    }
  }
  const std::string log = proxy.log();
  const auto ready = log.find(" ready\n");
  ASSERT_NE(ready, std::string::npos) << log;
  for (std::size_t i = 0; i < 2; ++i) {
    const auto listening = log.find("listening on 127.0.0.1:" + std::to_string(proxy.port(i)));
    ASSERT_NE(listening, std::string::npos) << log;
    EXPECT_LT(listening, ready) << log;
  }
  EXPECT_EQ(proxy.stop(), 0) << proxy.log();
  ASSERT_EQ(proxy.notifications().size(), 2u);
  EXPECT_EQ(proxy.notifications()[1], "STOPPING=1");
}

// A SIGTERM that arrives while popbridge is still starting (here: pending from before exec,
// which is what main()'s own blocking turns an early one into) is handled once the handlers
// exist: a logged, clean shutdown with exit 0, never death by the default action.
TEST_F(StartupTest, SigtermPendingBeforeTheHandlersExistShutsDownCleanly) {
  PopbridgeProcess reference(dovecot(), {});  // for a valid config file
  ASSERT_EQ(reference.stop(), 0) << reference.log();
  TempDir dir("popbridge-startup");
  const std::string logPath = dir.path() + "/popbridge.log";
  for (int round = 0; round < 10; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    // An empty NOTIFY_SOCKET: none, even when the tests themselves run under a service manager.
    const pid_t pid = spawnPopbridge(reference.configPath(), logPath, {"NOTIFY_SOCKET="},
                                     /*blockStopSignals=*/true);
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    std::string how;
    const int status = waitForExit(pid, how);
    const std::string log = readWholeFile(logPath);
    ASSERT_EQ(status, 0) << how << "\n" << log;
    EXPECT_TRUE(contains(log, "received SIGTERM; shutting down")) << log;
    EXPECT_TRUE(contains(log, "popbridge stopped")) << log;
  }
}

TEST(ReadinessNotifierTest, SendsDatagramsToPathAndAbstractSockets) {
  TempDir dir("popbridge-notify");
  NotifySocket path(dir.path() + "/notify.sock");
  NotifySocket abstract("@popbridge-notify-test-" + std::to_string(::getpid()));
  for (NotifySocket* socket : {&path, &abstract}) {
    proxy::ReadinessNotifier notifier(socket->name());
    ASSERT_TRUE(notifier.enabled()) << socket->name() << ": " << notifier.error();
    EXPECT_EQ(notifier.notify("READY=1"), 0);
    EXPECT_EQ(socket->receive(std::chrono::seconds(5)), "READY=1") << socket->name();
  }
}

TEST(ReadinessNotifierTest, NoSocketNameMeansNothingToDo) {
  proxy::ReadinessNotifier notifier("");
  EXPECT_FALSE(notifier.enabled());
  EXPECT_TRUE(notifier.error().empty());
  EXPECT_EQ(notifier.notify("READY=1"), 0);
}

TEST(ReadinessNotifierTest, UnusableNamesAreReportedNotFatal) {
  for (std::string name : {std::string("relative/notify.sock"), "/" + std::string(200, 'x')}) {
    proxy::ReadinessNotifier notifier(name);
    EXPECT_FALSE(notifier.enabled()) << name;
    EXPECT_FALSE(notifier.error().empty()) << name;
    EXPECT_EQ(notifier.notify("READY=1"), 0) << name;
  }
  // A socket that nobody listens on: the send fails and says why.
  proxy::ReadinessNotifier missing("/nonexistent-popbridge-dir/notify.sock");
  ASSERT_TRUE(missing.enabled());
  EXPECT_NE(missing.notify("READY=1"), 0);
}

}  // namespace
}  // namespace popbridge::test
