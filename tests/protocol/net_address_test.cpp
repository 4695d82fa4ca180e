#include "protocol/net_address.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

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

}  // namespace
}  // namespace popbridge::protocol
