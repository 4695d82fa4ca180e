// [metrics]: the admin HTTP listener's keys, their defaults, ranges and located errors.

#include <string>
#include <vector>

#include "tests/config/config_fixture.h"

namespace popbridge::config::config_test {
namespace {

using namespace std::chrono_literals;

TEST_F(ConfigTest, MetricsAreOffByDefault) {
  const LoadResult result = load(kMinimal);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_TRUE(result.config->metrics.address.empty());
  EXPECT_EQ(result.config->metrics.readyzCache, 5s);
  EXPECT_EQ(result.config->metrics.healthzStale, 5s);
  EXPECT_EQ(result.config->metrics.maxConnections, 16u);
}

TEST_F(ConfigTest, MetricsReadsEveryKey) {
  const LoadResult result = load(kMinimal +
                                 "[metrics]\naddress = \"127.0.0.1:9110\"\nreadyz_cache = \"0s\"\n"
                                 "healthz_stale = \"30s\"\nmax_connections = 4\n");
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  const MetricsConfig& metrics = result.config->metrics;
  EXPECT_EQ(metrics.host, "127.0.0.1");
  EXPECT_EQ(metrics.port, 9110);
  EXPECT_EQ(metrics.readyzCache, 0s);
  EXPECT_EQ(metrics.healthzStale, 30s);
  EXPECT_EQ(metrics.maxConnections, 4u);
  EXPECT_TRUE(result.warnings.empty()) << testing::PrintToString(result.warnings);
}

TEST_F(ConfigTest, MetricsAreInTheSummaryWhenOn) {
  const LoadResult off = load(kMinimal);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(summarize(*off.config).find("metrics:"), std::string::npos);
  const LoadResult on = load(kMinimal + "[metrics]\naddress = \"127.0.0.1:9110\"\n");
  ASSERT_TRUE(on.ok());
  EXPECT_NE(summarize(*on.config)
                .find("metrics: http://127.0.0.1:9110/metrics /healthz /readyz readyz_cache=5s "
                      "healthz_stale=5s max_connections=16\n"),
            std::string::npos)
      << summarize(*on.config);
}

TEST_F(ConfigTest, MetricsEmptyAddressIsOff) {
  const LoadResult result = load(kMinimal + "[metrics]\naddress = \"\"\n");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.config->metrics.port, 0);
}

TEST_F(ConfigTest, MetricsOnAllInterfacesWarns) {
  const LoadResult result = load(kMinimal + "[metrics]\naddress = \"[::]:9110\"\n");
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.config->metrics.host, "::");
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_EQ(result.warnings[0],
            "t.toml:9:11: metrics.address: metrics listener [::]:9110 is reachable from other "
            "hosts; /metrics has no authentication, so firewall it or bind to 127.0.0.1");
}

struct MetricsError {
  std::string toml;
  std::string error;
};

TEST_F(ConfigTest, MetricsErrorsAreLocated) {
  const std::vector<MetricsError> cases = {
      {"[metrics]\naddress = \"localhost:9110\"\n",
       "t.toml:9:11: metrics.address: \"localhost\" is not an IPv4 address (a listener binds to a "
       "literal IP, e.g. \"0.0.0.0:110\")"},
      {"[metrics]\naddress = \"127.0.0.1:0\"\n",
       "t.toml:9:11: metrics.address: expected a port between 1 and 65535 after the address, got "
       "\"0\""},
      {"[metrics]\naddress = 9110\n", "t.toml:9:11: metrics.address: expected a string, got 9110"},
      {"[metrics]\nreadyz_cache = \"11m\"\n",
       "t.toml:9:16: metrics.readyz_cache: expected a duration between 0s and 10m, got \"11m\""},
      {"[metrics]\nhealthz_stale = \"1s\"\n",
       "t.toml:9:17: metrics.healthz_stale: expected a duration between 2s and 10m, got \"1s\""},
      {"[metrics]\nmax_connections = 0\n",
       "t.toml:9:19: metrics.max_connections: expected an integer between 1 and 1024, got 0"},
      {"[metrics]\nadress = \"127.0.0.1:9110\"\n",
       "t.toml:9:1: metrics.adress: unknown key (did you mean address?)"},
      {"metrics = 1\n", "t.toml:1:11: metrics: expected a table ([metrics]), got 1"},
  };
  for (const MetricsError& c : cases) {
    // The [metrics] table goes after the minimal config (7 lines), or before it when it is a key
    // of the root table.
    const std::string text =
        c.toml.starts_with("metrics =") ? c.toml + kMinimal : kMinimal + c.toml;
    const LoadResult result = load(text);
    EXPECT_FALSE(result.ok()) << c.toml;
    EXPECT_EQ(errorsOf(result), std::vector<std::string>{c.error}) << c.toml;
  }
}

}  // namespace
}  // namespace popbridge::config::config_test
