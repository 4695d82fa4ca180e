// proxy_protocol, trusted_proxies and proxy_protocol_timeout on [[listener]].

#include <ostream>
#include <string>
#include <vector>

#include "tests/config/config_fixture.h"

namespace popbridge::config::config_test {
namespace {

using namespace std::chrono_literals;

TEST_F(ConfigTest, ProxyProtocolIsOffByDefault) {
  const LoadResult result = load(kMinimal);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  const ListenerConfig& listener = result.config->listeners.at(0);
  EXPECT_FALSE(listener.proxyProtocol);
  EXPECT_TRUE(listener.trustedProxies.empty());
  EXPECT_EQ(listener.proxyProtocolTimeout, 5s);
}

TEST_F(ConfigTest, ProxyProtocolWithTrustedProxies) {
  const LoadResult result = load(
      kListenerOnly +
      "proxy_protocol = true\n"
      "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\", \"::1/128\", \"::ffff:192.0.2.0/120\"]\n"
      "proxy_protocol_timeout = \"2500ms\"\n" +
      kUpstreamOnly);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_TRUE(result.warnings.empty()) << testing::PrintToString(result.warnings);
  const ListenerConfig& listener = result.config->listeners.at(0);
  EXPECT_TRUE(listener.proxyProtocol);
  EXPECT_EQ(listener.proxyProtocolTimeout, 2500ms);
  std::vector<std::string> printed;
  for (const auto& network : listener.trustedProxies) printed.push_back(network.toString());
  EXPECT_EQ(printed,
            (std::vector<std::string>{"10.0.0.0/8", "127.0.0.1/32", "::1/128", "192.0.2.0/24"}));
  EXPECT_TRUE(listener.trustedProxies[0].contains("::ffff:10.1.2.3"));
  EXPECT_NE(summarize(*result.config)
                .find("proxy_protocol=yes trusted_proxies=10.0.0.0/8,127.0.0.1/32,::1/128,"
                      "192.0.2.0/24 proxy_protocol_timeout=2s500ms"),
            std::string::npos)
      << summarize(*result.config);
}

TEST_F(ConfigTest, TrustedProxiesWithoutProxyProtocolWarns) {
  const LoadResult result = load(kListenerOnly + "trusted_proxies = [\"10.0.0.0/8\"]\n" +
                                 "proxy_protocol_timeout = \"1s\"\n" + kUpstreamOnly);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_EQ(result.warnings,
            (std::vector<std::string>{
                "t.toml:5:19: listener[0].trusted_proxies: ignored because proxy_protocol is not "
                "true"}));
  // An empty list with proxy_protocol off (the example's spelling of the default) is quiet.
  const LoadResult quiet =
      load(kListenerOnly + "proxy_protocol = false\ntrusted_proxies = []\n" + kUpstreamOnly);
  ASSERT_TRUE(quiet.ok()) << testing::PrintToString(errorsOf(quiet));
  EXPECT_TRUE(quiet.warnings.empty()) << testing::PrintToString(quiet.warnings);
}

struct ProxyErrorCase {
  std::string name;
  std::string lines;  // after the listener's four lines (line 5 on)
  std::vector<std::string> errors;
};

void PrintTo(const ProxyErrorCase& c, std::ostream* os) {
  *os << c.name;
}

class ProxyProtocolErrors : public ConfigTest,
                            public ::testing::WithParamInterface<ProxyErrorCase> {};

TEST_P(ProxyProtocolErrors, ReportsExactlyTheseErrors) {
  const ProxyErrorCase& c = GetParam();
  const LoadResult result = load(kListenerOnly + c.lines + kUpstreamOnly);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(errorsOf(result), c.errors);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ProxyProtocolErrors,
    ::testing::Values(
        ProxyErrorCase{"MissingTrustedProxies",
                       "proxy_protocol = true\n",
                       {"t.toml:1:1: listener[0].trusted_proxies: required when proxy_protocol = "
                        "true: the addresses of the load balancers allowed to send PROXY "
                        "headers, e.g. [\"10.0.0.0/8\"]"}},
        ProxyErrorCase{"EmptyTrustedProxies",
                       "proxy_protocol = true\ntrusted_proxies = []\n",
                       {"t.toml:6:19: listener[0].trusted_proxies: must list the load balancers "
                        "allowed to send PROXY headers when proxy_protocol = true"}},
        ProxyErrorCase{"InvalidEntryNamed",
                       "proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.1/33\", "
                       "\"lb.example.com\"]\n",
                       {"t.toml:6:34: listener[0].trusted_proxies[1]: \"10.0.0.1/33\": the "
                        "prefix length after '/' must be 0 to 32",
                        "t.toml:6:49: listener[0].trusted_proxies[2]: \"lb.example.com\": "
                        "expected an IP address or an address block such as 10.0.0.0/8 or "
                        "2001:db8::/32"}},
        ProxyErrorCase{"HostBitsSet",
                       "proxy_protocol = true\ntrusted_proxies = [\"192.0.2.1/24\"]\n",
                       {"t.toml:6:20: listener[0].trusted_proxies[0]: \"192.0.2.1/24\": has bits "
                        "set after the prefix length (did you mean 192.0.2.0/24?)"}},
        ProxyErrorCase{"NotAnArray",
                       "proxy_protocol = true\ntrusted_proxies = \"10.0.0.0/8\"\n",
                       {"t.toml:6:19: listener[0].trusted_proxies: expected an array of addresses "
                        "or address blocks, e.g. [\"10.0.0.0/8\", \"::1\"], got \"10.0.0.0/8\""}},
        ProxyErrorCase{"NotAString",
                       "proxy_protocol = true\ntrusted_proxies = [\"::1\", 10]\n",
                       {"t.toml:6:27: listener[0].trusted_proxies[1]: expected a string such as "
                        "\"10.0.0.0/8\", got 10"}},
        ProxyErrorCase{"NotABool",
                       "proxy_protocol = \"yes\"\n",
                       {"t.toml:5:18: listener[0].proxy_protocol: expected true or false, got "
                        "\"yes\""}},
        ProxyErrorCase{"TimeoutOutOfRange",
                       "proxy_protocol = true\ntrusted_proxies = [\"::1\"]\n"
                       "proxy_protocol_timeout = \"5m\"\n",
                       {"t.toml:7:26: listener[0].proxy_protocol_timeout: expected a duration "
                        "between 100ms and 1m, got \"5m\""}}),
    [](const ::testing::TestParamInfo<ProxyErrorCase>& info) { return info.param.name; });

}  // namespace
}  // namespace popbridge::config::config_test
