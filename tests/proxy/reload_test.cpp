// What a reload (SIGHUP) prepares off the worker loops: the plan from a loaded file (errors,
// restart-only settings, new listener sockets) and the log's summary of changes; and the shared
// limits that take new values without losing their counts.

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "proxy/config_snapshot.h"
#include "proxy/login_guard.h"
#include "proxy/server.h"
#include "tests/support/test_clients.h"

namespace popbridge::proxy {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kBase =
    "[server]\nworkers = 1\n"
    "[[listener]]\naddress = \"127.0.0.1:1110\"\ntls = \"none\"\nallow_plaintext_auth = true\n"
    "[upstream]\nhost = \"127.0.0.1\"\ntls = \"none\"\n"
    "[mailbox]\non_delete = \"flag\"\n";

config::LoadResult load(std::string_view text) {
  return config::loadConfigString(text, "t.toml", {});
}

ConfigSnapshot running(std::string_view text = kBase) {
  auto result = load(text);
  EXPECT_TRUE(result.ok());
  ConfigSnapshot snapshot;
  snapshot.config = std::move(*result.config);
  auto tls = std::make_unique<TlsContexts>();
  tls->listeners.resize(snapshot.config.listeners.size());
  snapshot.tls = std::move(tls);
  return snapshot;
}

std::string replaced(std::string text, std::string_view from, std::string_view to) {
  auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(ReloadPlan, FileErrorsAreReportedWithTheirPositionsAndNothingIsBuilt) {
  auto now = running();
  std::string text = replaced(std::string(kBase), "\"flag\"", "\"shred\"");
  text = replaced(text, "workers = 1", "workers = 1\nidle_timeout = \"soon\"");
  auto plan = planReload(now, load(text), 1);
  ASSERT_EQ(plan.errors.size(), 2u);
  for (const auto& error : plan.errors) EXPECT_EQ(error.rfind("t.toml:", 0), 0u) << error;
  EXPECT_FALSE(plan.snapshot);
}

TEST(ReloadPlan, WorkersAndLogFormatNeedARestartAndKeepTheirValues) {
  auto now = running();
  std::string text =
      replaced(std::string(kBase), "workers = 1", "workers = 4\nlog_format = \"json\"");
  auto plan = planReload(now, load(text), 1);
  ASSERT_TRUE(plan.errors.empty()) << plan.errors.front();
  ASSERT_TRUE(plan.snapshot);
  EXPECT_EQ(plan.snapshot->config.server.workers, 1u);
  EXPECT_EQ(plan.snapshot->config.server.logFormat, config::LogFormat::Text);
  EXPECT_EQ(plan.snapshot->generation, now.generation + 1);
  ASSERT_EQ(plan.warnings.size(), 2u);
  EXPECT_NE(plan.warnings[0].find("server.workers: changed from 1 to 4, which needs a restart; "
                                  "keeping 1"),
            std::string::npos)
      << plan.warnings[0];
  EXPECT_NE(plan.warnings[1].find("server.log_format"), std::string::npos) << plan.warnings[1];
  EXPECT_EQ(plan.changes, "no setting changed; certificate, key and CA files re-read");
}

// The snapshot cache is one for the process, sized at start: a reload keeps its size.
TEST(ReloadPlan, SnapshotCacheSizeNeedsARestart) {
  auto now = running();
  std::string text = replaced(std::string(kBase), "[upstream]\n",
                              "[upstream]\nsnapshot_cache_max_messages = 1000\n");
  auto plan = planReload(now, load(text), 1);
  ASSERT_TRUE(plan.errors.empty()) << plan.errors.front();
  ASSERT_TRUE(plan.snapshot);
  EXPECT_EQ(plan.snapshot->config.upstream.snapshotCacheMaxMessages,
            now.config.upstream.snapshotCacheMaxMessages);
  ASSERT_EQ(plan.warnings.size(), 1u);
  EXPECT_NE(plan.warnings[0].find("upstream.snapshot_cache_max_messages: changed from 2000000 to "
                                  "1000, which needs a restart"),
            std::string::npos)
      << plan.warnings[0];
}

TEST(ReloadPlan, ChangedOAuth2IdentitiesRefuseTheReload) {
  const std::string identity =
      "[oauth2.m365]\nprovider = \"generic\"\ngrant = \"command\"\n"
      "token_command = [\"/bin/echo\", \"t\"]\ntoken_endpoint = \"https://t.example/token\"\n";
  auto now = running(std::string(kBase) + identity);
  auto plan = planReload(now, load(std::string(kBase) + replaced(identity, "\"t\"]", "\"u\"]")), 1);
  ASSERT_EQ(plan.errors.size(), 1u);
  EXPECT_NE(plan.errors[0].find("needs a restart"), std::string::npos) << plan.errors[0];
  EXPECT_FALSE(plan.snapshot);
  // Unchanged identities are no obstacle.
  plan = planReload(now, load(std::string(kBase) + identity), 1);
  EXPECT_TRUE(plan.errors.empty()) << plan.errors.front();
}

TEST(ReloadPlan, NewListenersAreBoundOncePerWorkerAndKeptOnesNotAgain) {
  auto now = running();
  const std::string address = "127.0.0.1:" + std::to_string(test::freeLoopbackPort());
  std::string text = replaced(std::string(kBase), "[upstream]",
                              "[[listener]]\naddress = \"" + address +
                                  "\"\ntls = \"none\"\nallow_plaintext_auth = true\n[upstream]");
  auto plan = planReload(now, load(text), 2);
  ASSERT_TRUE(plan.errors.empty()) << plan.errors.front();
  ASSERT_EQ(plan.sockets.size(), 2u);
  for (const auto& perWorker : plan.sockets) {
    ASSERT_EQ(perWorker.size(), 1u);  // 127.0.0.1:1110 runs already: not bound again
    EXPECT_EQ(perWorker.begin()->first, address);
    EXPECT_TRUE(perWorker.begin()->second);
  }
  EXPECT_NE(plan.changes.find("listeners added: " + address), std::string::npos) << plan.changes;
}

TEST(ReloadChanges, NamesEachChangedSettingWithOldAndNewValues) {
  auto before = load(kBase);
  std::string text = replaced(std::string(kBase), "\"flag\"", "\"expunge\"");
  text = replaced(text, "workers = 1", "workers = 1\nmax_connections = 5");
  auto after = load(text);
  ASSERT_TRUE(before.ok() && after.ok());
  std::string changes = describeChanges(*before.config, *after.config);
  EXPECT_NE(changes.find("mailbox.on_delete flag -> expunge"), std::string::npos) << changes;
  EXPECT_NE(changes.find("server.max_connections 10000 -> 5"), std::string::npos) << changes;
  EXPECT_EQ(changes.find("upstream"), std::string::npos) << changes;
}

TEST(ReloadChanges, ListenerKeysIgnoreHowAnAddressIsSpelt) {
  config::ListenerConfig a, b;
  a.host = "::";
  b.host = "::0";
  a.port = b.port = 110;
  EXPECT_EQ(listenerKey(a), listenerKey(b));
  EXPECT_EQ(listenerKey(a), "[::]:110");
}

TEST(ReloadLimits, ConnectionLimitsKeepTheirCounts) {
  ConnectionLimits limits(10, 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(limits.acquire("1.2.3.4"), ConnectionLimits::Verdict::Accepted);
  }
  limits.setLimits(10, 2);
  EXPECT_EQ(limits.acquire("1.2.3.4"), ConnectionLimits::Verdict::TooManyFromIp);
  limits.release("1.2.3.4");
  limits.release("1.2.3.4");
  EXPECT_EQ(limits.acquire("1.2.3.4"), ConnectionLimits::Verdict::Accepted);
  EXPECT_EQ(limits.total(), 2u);
  limits.setLimits(2, 0);
  EXPECT_EQ(limits.acquire("5.6.7.8"), ConnectionLimits::Verdict::TooManyTotal);
}

TEST(ReloadLimits, MorePasswordCheckSlotsStartQueuedChecksAtOnce) {
  LoginGuard::Limits limits;
  limits.maxChecks = 1;
  limits.queueLength = 4;
  LoginGuard guard(limits);
  int wakes = 0;
  guard.attach(0, [&] { ++wakes; });
  EXPECT_EQ(guard.requestCheck(0, 1), LoginGuard::Admission::Run);
  EXPECT_EQ(guard.requestCheck(0, 2), LoginGuard::Admission::Queued);
  EXPECT_EQ(guard.requestCheck(0, 3), LoginGuard::Admission::Queued);
  limits.maxChecks = 2;
  guard.setLimits(limits);
  EXPECT_EQ(guard.runningChecks(), 2u);
  EXPECT_EQ(guard.queuedChecks(), 1u);
  EXPECT_EQ(guard.takeGrants(0), std::vector<LoginGuard::Ticket>{2});
  EXPECT_EQ(wakes, 1);
}

TEST(ReloadLimits, TheThrottleKeepsItsFailuresUnderANewThreshold) {
  LoginGuard::Limits limits;
  limits.throttleAfter = 5;
  LoginGuard guard(limits);
  auto now = LoginGuard::Clock::now();
  for (int i = 0; i < 3; ++i) guard.recordFailure("9.9.9.9", "", now);
  EXPECT_EQ(guard.throttle("9.9.9.9", "", now).delay, 0ms);
  limits.throttleAfter = 2;
  guard.setLimits(limits);
  EXPECT_EQ(guard.throttle("9.9.9.9", "", now).failures, 3u);
  EXPECT_GT(guard.throttle("9.9.9.9", "", now).delay, 0ms);
}

TEST(ReloadLimits, ANewLoginDelayAppliesToTheLoginsAlreadyRecorded) {
  LoginGuard::Limits limits;
  limits.loginDelay = 60s;
  LoginGuard guard(limits);
  auto now = LoginGuard::Clock::now();
  guard.recordLogin("alice", now);
  EXPECT_EQ(guard.loginDelayRemaining("alice", now + 30s), 30s);
  limits.loginDelay = 120s;
  guard.setLimits(limits);
  // Under the old window the entry would have been forgotten at 60 s.
  EXPECT_EQ(guard.loginDelayRemaining("alice", now + 90s), 30s);
  limits.loginDelay = 0s;
  guard.setLimits(limits);
  EXPECT_EQ(guard.loginDelayRemaining("alice", now + 1s), 0ms);
}

}  // namespace
}  // namespace popbridge::proxy
