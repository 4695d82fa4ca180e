// Abuse-control keys: the per-user throttle, LOGIN-DELAY, max_sessions_per_account and the
// exclusive maildrop ([mailbox] and per [[account]]).

#include <string>
#include <vector>

#include "tests/config/config_fixture.h"

namespace popbridge::config::config_test {
namespace {

using namespace std::chrono_literals;

TEST_F(ConfigTest, AbuseControlDefaults) {
  const LoadResult result = load(kMinimal);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  const Config& c = *result.config;
  EXPECT_EQ(c.server.loginThrottleUserAfter, 10u);
  EXPECT_EQ(c.server.loginDelay, 0s);
  EXPECT_EQ(c.server.maxSessionsPerAccount, 10u);
  EXPECT_TRUE(c.mailbox.exclusive);
  EXPECT_TRUE(result.warnings.empty()) << testing::PrintToString(result.warnings);
}

TEST_F(ConfigTest, ReadsAbuseControlKeysAndPerAccountExclusive) {
  const LoadResult result = load(
      "[server]\nlogin_throttle_user_after = 0\nlogin_delay = \"15m\"\n"
      "max_sessions_per_account = 0\n"
      "[mailbox]\nexclusive = false\n" +
      account("shared") + account("locked") + "exclusive = true\n" + kMinimal);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  const Config& c = *result.config;
  EXPECT_EQ(c.server.loginThrottleUserAfter, 0u);
  EXPECT_EQ(c.server.loginDelay, 15min);
  EXPECT_EQ(c.server.maxSessionsPerAccount, 0u);
  EXPECT_FALSE(c.mailbox.exclusive);
  ASSERT_EQ(c.accounts.size(), 2u);
  EXPECT_FALSE(c.accounts[0].mailbox.exclusive) << "inherited from [mailbox]";
  EXPECT_TRUE(c.accounts[1].mailbox.exclusive) << "its own";
  const std::string summary = summarize(c);
  EXPECT_NE(summary.find(" login_throttle_user_after=0 (off) login_delay=15m "
                         "max_sessions_per_account=0 (unlimited)"),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find("max_messages=0 (all) exclusive=false"), std::string::npos) << summary;
}

struct AbuseErrorCase {
  std::string name;
  std::string toml;
  std::vector<std::string> errors;
};

void PrintTo(const AbuseErrorCase& c, std::ostream* os) {
  *os << c.name;
}

class AbuseControlErrors : public ConfigTest,
                           public ::testing::WithParamInterface<AbuseErrorCase> {};

TEST_P(AbuseControlErrors, ReportsExactlyTheseErrors) {
  const LoadResult result = load(GetParam().toml);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(errorsOf(result), GetParam().errors);
}

INSTANTIATE_TEST_SUITE_P(
    Table, AbuseControlErrors,
    ::testing::Values(
        AbuseErrorCase{"LoginDelayInMilliseconds",
                       "[server]\nlogin_delay = \"1500ms\"\n" + kMinimal,
                       {"t.toml:2:15: server.login_delay: must be whole seconds (RFC 2449 "
                        "announces it in seconds), got 1s500ms"}},
        AbuseErrorCase{"LoginDelayOverADay",
                       "[server]\nlogin_delay = \"25h\"\n" + kMinimal,
                       {"t.toml:2:15: server.login_delay: expected a duration between 0s and "
                        "24h, got \"25h\""}},
        AbuseErrorCase{"UserThrottleOutOfRange",
                       "[server]\nlogin_throttle_user_after = 1001\n" + kMinimal,
                       {"t.toml:2:29: server.login_throttle_user_after: expected an integer "
                        "between 0 and 1000, got 1001"}},
        AbuseErrorCase{"NegativeSessionCap",
                       "[server]\nmax_sessions_per_account = -1\n" + kMinimal,
                       {"t.toml:2:28: server.max_sessions_per_account: expected an integer "
                        "between 0 and 1000000, got -1"}},
        AbuseErrorCase{"ExclusiveNotABool",
                       "[mailbox]\nexclusive = \"yes\"\n" + kMinimal,
                       {"t.toml:2:13: mailbox.exclusive: expected true or false, got \"yes\""}}),
    [](const auto& info) { return info.param.name; });

TEST_F(ConfigTest, AThrottleCapNotBelowLoginTimeoutIsWarnedAbout) {
  const LoadResult result =
      load("[server]\nlogin_timeout = \"20s\"\nlogin_throttle_max_delay = \"20s\"\n" + kMinimal);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_EQ(result.warnings,
            (std::vector<std::string>{
                "t.toml:3:28: server.login_throttle_max_delay: login_throttle_max_delay (20s) is "
                "not below login_timeout (20s): a throttled login would be timed out before it "
                "is checked, which locks out a throttled IP or user instead of slowing it "
                "down"}));
  // Without any throttle there is nothing to lock out.
  const LoadResult off = load(
      "[server]\nlogin_timeout = \"20s\"\nlogin_throttle_after = 0\n"
      "login_throttle_user_after = 0\n" +
      kMinimal);
  ASSERT_TRUE(off.ok());
  EXPECT_TRUE(off.warnings.empty()) << testing::PrintToString(off.warnings);
}

}  // namespace
}  // namespace popbridge::config::config_test
