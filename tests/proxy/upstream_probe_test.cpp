// probeReachability(), as the admin listener's /readyz calls it: on a loop of the caller's, one
// report per call, failures classed, and a probe destroyed mid-flight never calls back.

#include "proxy/upstream_probe.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "tests/support/scripted_imap.h"
#include "tests/support/test_clients.h"

namespace popbridge::proxy {
namespace {

using test::freeLoopbackPort;
using test::ScriptedImapPeer;

config::Config makeConfig(const std::string& host, std::uint16_t port,
                          const std::string& extra = "") {
  const std::string toml =
      "[[listener]]\naddress = \"127.0.0.1:1100\"\ntls = \"none\"\n"
      "[upstream]\nhost = \"" +
      host + "\"\nport = " + std::to_string(port) +
      "\ntls = \"none\"\nconnect_timeout = \"5s\"\ncommand_timeout = \"5s\"\n" + extra;
  auto result = config::loadConfigString(toml, "probe.toml", {});
  if (!result.ok()) {
    ADD_FAILURE() << (result.errors.empty() ? "no config" : result.errors[0].toString());
    return {};
  }
  return *result.config;
}

class UpstreamProbeTest : public ::testing::Test {
 protected:
  UpstreamProbeTest() { uv_loop_init(&loop_); }
  ~UpstreamProbeTest() override {
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle outlived the probe";
  }

  // Runs one reachability probe to its report.
  std::optional<ProbeReport> reach(const config::Config& config) {
    std::optional<ProbeReport> report;
    int calls = 0;
    auto probe = probeReachability(&loop_, config, nullptr, [&](ProbeReport result) {
      ++calls;
      report = std::move(result);
    });
    EXPECT_TRUE(probe->running());
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(calls, 1);
    EXPECT_FALSE(probe->running());
    return report;
  }

  uv_loop_t loop_{};
};

std::string stepsOf(const ProbeReport& report) {
  std::string text;
  for (const auto& step : report.steps) {
    text += std::string(toString(step.step)) + (step.ok ? " OK " : " FAIL ") + step.detail + "\n";
  }
  return text;
}

TEST_F(UpstreamProbeTest, ReachableUpstreamPassesWithoutLoggingIn) {
  ScriptedImapPeer::Script script;
  script.password = "never-sent";
  ScriptedImapPeer peer(script);
  const config::Config config = makeConfig("127.0.0.1", peer.port());
  auto report = reach(config);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok()) << report->summary() << "\n" << stepsOf(*report);
  ASSERT_EQ(report->steps.size(), 4u) << stepsOf(*report);
  EXPECT_EQ(report->steps[0].step, ProbeStep::Resolve);
  EXPECT_EQ(report->steps[1].step, ProbeStep::Connect);
  EXPECT_EQ(report->steps[2].step, ProbeStep::Greeting);
  EXPECT_EQ(report->steps[3].step, ProbeStep::Capability);
  EXPECT_NE(report->steps[3].detail.find("AUTH=PLAIN"), std::string::npos);
  EXPECT_EQ(report->summary().rfind("OK: 127.0.0.1:", 0), 0u) << report->summary();
  // No login: the peer saw LOGOUT at most, never LOGIN or AUTHENTICATE.
  EXPECT_TRUE(peer.commandsStartingWith("LOGIN").empty()) << peer.transcript();
  EXPECT_TRUE(peer.commandsStartingWith("AUTHENTICATE").empty()) << peer.transcript();
}

TEST_F(UpstreamProbeTest, FailuresAreClassedByStep) {
  auto refused = reach(makeConfig("127.0.0.1", freeLoopbackPort()));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->failure, ProbeFailure::Connect) << refused->summary();
  EXPECT_FALSE(refused->ok());
  EXPECT_NE(refused->summary().find("FAIL at connect"), std::string::npos) << refused->summary();

  auto unknown = reach(makeConfig("imap.no-such-host.invalid", 993));
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->failure, ProbeFailure::Dns) << unknown->summary();

  ScriptedImapPeer::Script script;
  script.password = "never-sent";
  ScriptedImapPeer::Reaction bye =
      ScriptedImapPeer::Reaction::of(ScriptedImapPeer::Reaction::Kind::Reply);
  bye.text = "* BYE shutting down";
  script.reactions[ScriptedImapPeer::Step::Greeting] = bye;
  ScriptedImapPeer peer(script);
  auto rejected = reach(makeConfig("127.0.0.1", peer.port()));
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->failure, ProbeFailure::Protocol) << rejected->summary();
  EXPECT_NE(rejected->summary().find("shutting down"), std::string::npos) << rejected->summary();
}

TEST_F(UpstreamProbeTest, DestroyedMidFlightNeverCallsBack) {
  ScriptedImapPeer::Script script;
  script.password = "never-sent";
  script.reactions[ScriptedImapPeer::Step::Greeting] =
      ScriptedImapPeer::Reaction::of(ScriptedImapPeer::Reaction::Kind::Stall);
  ScriptedImapPeer peer(script);
  const config::Config config = makeConfig("127.0.0.1", peer.port());
  int calls = 0;
  auto probe = probeReachability(&loop_, config, nullptr, [&](ProbeReport) { ++calls; });
  // Until the peer has the connection, then give up on the probe while it waits for a greeting.
  while (peer.accepted() == 0) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    ::usleep(1000);
  }
  probe.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(peer.waitForClosed(1, 5000)) << "the socket is closed with the probe";
}

TEST_F(UpstreamProbeTest, StartAgainCancelsTheFirstAndReportsOnce) {
  ScriptedImapPeer::Script script;
  script.password = "never-sent";
  ScriptedImapPeer peer(script);
  const config::Config config = makeConfig("127.0.0.1", peer.port());
  UpstreamProbe probe(&loop_, config, nullptr);
  int first = 0;
  int second = 0;
  probe.start(std::nullopt, [&](ProbeReport) { ++first; });
  probe.start(std::nullopt, [&](ProbeReport report) {
    ++second;
    EXPECT_TRUE(report.ok()) << report.summary();
  });
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(first, 0);
  EXPECT_EQ(second, 1);
}

}  // namespace
}  // namespace popbridge::proxy
