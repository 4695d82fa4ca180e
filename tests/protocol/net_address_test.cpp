#include "protocol/net_address.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace popbridge::protocol {
namespace {

// Every table row carries its own test name, so that ctest lists
// "IpLiterals/Table.Classify/V6Loopback" rather than a parameter's bytes.
template <class Case>
std::string caseName(const testing::TestParamInfo<Case>& info) {
  return std::string(info.param.name);
}

struct IpCase {
  std::string_view name;
  std::string_view text;
  IpFamily family;
  bool loopback;
};

void PrintTo(const IpCase& c, std::ostream* os) {
  *os << '"' << c.text << '"';
}

class IpLiterals : public testing::TestWithParam<IpCase> {};

TEST_P(IpLiterals, Classify) {
  const IpCase& c = GetParam();
  EXPECT_EQ(ipFamily(c.text), c.family);
  EXPECT_EQ(isIpLiteral(c.text), c.family != IpFamily::None);
  EXPECT_EQ(isLoopbackIp(c.text), c.loopback);
}

using namespace std::string_view_literals;

INSTANTIATE_TEST_SUITE_P(
    Table, IpLiterals,
    testing::Values(IpCase{"V4", "192.0.2.1", IpFamily::V4, false},
                    IpCase{"V4Any", "0.0.0.0", IpFamily::V4, false},
                    IpCase{"V4Loopback", "127.0.0.1", IpFamily::V4, true},
                    IpCase{"V4LoopbackNet", "127.255.0.9", IpFamily::V4, true},
                    IpCase{"V4JustOutsideLoopback", "128.0.0.1", IpFamily::V4, false},
                    IpCase{"V4OctetTooLarge", "256.0.0.1", IpFamily::None, false},
                    IpCase{"V4ThreeOctets", "10.0.1", IpFamily::None, false},
                    IpCase{"V4WithPort", "192.0.2.1:110", IpFamily::None, false},
                    IpCase{"V6", "2001:db8::1", IpFamily::V6, false},
                    IpCase{"V6Any", "::", IpFamily::V6, false},
                    IpCase{"V6Loopback", "::1", IpFamily::V6, true},
                    IpCase{"V6LoopbackLongForm", "0:0:0:0:0:0:0:1", IpFamily::V6, true},
                    IpCase{"V6MappedLoopback", "::ffff:127.0.0.1", IpFamily::V6, true},
                    IpCase{"V6MappedOther", "::ffff:192.0.2.1", IpFamily::V6, false},
                    // Not mapped: the ::ffff prefix is what makes an IPv4 address of it.
                    IpCase{"V6CompatibleNotMapped", "::127.0.0.1", IpFamily::V6, false},
                    IpCase{"V6InBrackets", "[::1]", IpFamily::None, false},
                    IpCase{"V6WithZone", "fe80::1%eth0", IpFamily::None, false},
                    IpCase{"HostName", "localhost", IpFamily::None, false},
                    IpCase{"Empty", "", IpFamily::None, false},
                    IpCase{"NulInside", "127.0.0.1\0junk"sv, IpFamily::None, false},
                    IpCase{"VeryLong", "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb",
                           IpFamily::None, false}),
    caseName<IpCase>);

// ---------------------------------------------------------------------------------------------

struct BracketCase {
  std::string_view name;
  std::string_view host;
  std::string_view expected;
};

void PrintTo(const BracketCase& c, std::ostream* os) {
  *os << '"' << c.host << '"';
}

class WithoutBrackets : public testing::TestWithParam<BracketCase> {};

TEST_P(WithoutBrackets, RemovesOnlyAnEnclosingPair) {
  EXPECT_EQ(withoutBrackets(GetParam().host), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Table, WithoutBrackets,
    testing::Values(BracketCase{"V6", "[::1]", "::1"}, BracketCase{"Bare", "::1", "::1"},
                    BracketCase{"HostName", "imap.example.com", "imap.example.com"},
                    BracketCase{"EmptyPairKept", "[]", "[]"},
                    BracketCase{"OpenOnly", "[::1", "[::1"},
                    BracketCase{"WithPort", "[::1]:143", "[::1]:143"}),
    caseName<BracketCase>);

// ---------------------------------------------------------------------------------------------

struct HostPortCase {
  std::string_view name;
  std::string_view host;
  std::uint16_t port;
  std::string_view expected;
};

void PrintTo(const HostPortCase& c, std::ostream* os) {
  *os << '"' << c.host << "\" port " << c.port;
}

class FormatHostPort : public testing::TestWithParam<HostPortCase> {};

TEST_P(FormatHostPort, BracketsIpv6) {
  EXPECT_EQ(formatHostPort(GetParam().host, GetParam().port), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Table, FormatHostPort,
    testing::Values(HostPortCase{"V4", "192.0.2.1", 110, "192.0.2.1:110"},
                    HostPortCase{"HostName", "imap.example.com", 993, "imap.example.com:993"},
                    HostPortCase{"V6", "2001:db8::1", 995, "[2001:db8::1]:995"},
                    HostPortCase{"V6Any", "::", 110, "[::]:110"},
                    HostPortCase{"PortZero", "localhost", 0, "localhost:0"},
                    HostPortCase{"HighestPort", "localhost", 65535, "localhost:65535"}),
    caseName<HostPortCase>);

// trusted_proxies entries: what parses, what it prints as, and which peers it holds.
struct NetworkCase {
  std::string_view name;
  std::string_view text;
  std::string_view printed;  // empty: refused
  std::vector<std::string_view> inside;
  std::vector<std::string_view> outside;
  std::string_view error = "";  // part of the message when refused
};

void PrintTo(const NetworkCase& c, std::ostream* os) {
  *os << '"' << c.text << '"';
}

class IpNetworks : public testing::TestWithParam<NetworkCase> {};

TEST_P(IpNetworks, ParseAndMatch) {
  const NetworkCase& c = GetParam();
  std::string error;
  auto network = IpNetwork::parse(c.text, error);
  if (c.printed.empty()) {
    ASSERT_FALSE(network.has_value()) << network->toString();
    EXPECT_NE(error.find(c.error), std::string::npos) << error;
    return;
  }
  ASSERT_TRUE(network.has_value()) << error;
  EXPECT_EQ(network->toString(), c.printed);
  for (std::string_view ip : c.inside) EXPECT_TRUE(network->contains(ip)) << ip;
  for (std::string_view ip : c.outside) EXPECT_FALSE(network->contains(ip)) << ip;
}

INSTANTIATE_TEST_SUITE_P(
    Table, IpNetworks,
    testing::Values(
        NetworkCase{"V4Block",
                    "10.0.0.0/8",
                    "10.0.0.0/8",
                    {"10.0.0.1", "10.255.255.255", "::ffff:10.0.0.1", "::FFFF:10.1.2.3"},
                    {"11.0.0.0", "9.255.255.255", "::10.0.0.1", "10.0.0.1:110", "", "host"}},
        NetworkCase{"V4Host",
                    "127.0.0.1",
                    "127.0.0.1/32",
                    {"127.0.0.1", "::ffff:127.0.0.1"},
                    {"127.0.0.2", "::1"}},
        NetworkCase{"V4OddPrefix",
                    "192.0.2.128/25",
                    "192.0.2.128/25",
                    {"192.0.2.128", "192.0.2.255"},
                    {"192.0.2.127", "192.0.3.128"}},
        NetworkCase{"V4Everything",
                    "0.0.0.0/0",
                    "0.0.0.0/0",
                    {"1.2.3.4", "255.255.255.255", "::ffff:1.2.3.4"},
                    {"::1", "2001:db8::1"}},
        NetworkCase{
            "V6Host", "::1/128", "::1/128", {"::1", "0:0:0:0:0:0:0:1"}, {"::2", "127.0.0.1"}},
        NetworkCase{"V6HostNoPrefix", "::1", "::1/128", {"::1"}, {"::"}},
        NetworkCase{"V6Block",
                    "2001:db8::/32",
                    "2001:db8::/32",
                    {"2001:db8::1", "2001:db8:ffff::1"},
                    {"2001:db9::1", "10.0.0.1"}},
        NetworkCase{"V6Odd",
                    "2001:db8:8000::/33",
                    "2001:db8:8000::/33",
                    {"2001:db8:8000::1"},
                    {"2001:db8:7fff::1"}},
        // A mapped block is the IPv4 block it maps: it holds plain IPv4 peers too.
        NetworkCase{"V4MappedBlock",
                    "::ffff:10.0.0.0/104",
                    "10.0.0.0/8",
                    {"10.9.9.9", "::ffff:10.9.9.9"},
                    {"11.0.0.0"}},
        NetworkCase{"HostBitsSet", "10.0.0.1/8", "", {}, {}, "did you mean 10.0.0.0/8?"},
        NetworkCase{"V6HostBitsSet", "2001:db8::1/32", "", {}, {}, "did you mean 2001:db8::/32?"},
        NetworkCase{"PrefixTooLong", "10.0.0.0/33", "", {}, {}, "0 to 32"},
        NetworkCase{"V6PrefixTooLong", "::/129", "", {}, {}, "0 to 128"},
        NetworkCase{"PrefixLeadingZero", "10.0.0.0/08", "", {}, {}, "0 to 32"},
        NetworkCase{"PrefixEmpty", "10.0.0.0/", "", {}, {}, "0 to 32"},
        NetworkCase{"PrefixSign", "10.0.0.0/+8", "", {}, {}, "0 to 32"},
        NetworkCase{"PrefixSpace", "10.0.0.0/ 8", "", {}, {}, "0 to 32"},
        NetworkCase{"HostName", "lb.example.com", "", {}, {}, "expected an IP address"},
        NetworkCase{"Brackets", "[::1]", "", {}, {}, "expected an IP address"},
        NetworkCase{"Empty", "", "", {}, {}, "expected an IP address"},
        NetworkCase{"OctetTooLarge", "10.0.0.256/32", "", {}, {}, "expected an IP address"}),
    caseName<NetworkCase>);

TEST(UnmappedIp, MappedBecomesIpv4) {
  EXPECT_EQ(unmappedIp("::ffff:192.0.2.1"), "192.0.2.1");
  EXPECT_EQ(unmappedIp("::FFFF:10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(unmappedIp("::10.0.0.1"), "::10.0.0.1");
  EXPECT_EQ(unmappedIp("2001:db8::1"), "2001:db8::1");
  EXPECT_EQ(unmappedIp("192.0.2.1"), "192.0.2.1");
  EXPECT_EQ(unmappedIp("not an ip"), "not an ip");
}

}  // namespace
}  // namespace popbridge::protocol
