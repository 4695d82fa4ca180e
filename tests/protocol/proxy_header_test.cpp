#include "protocol/proxy_header.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace popbridge::protocol {
namespace {

using namespace std::string_literals;

const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);

std::string be16(std::size_t value) {
  return {static_cast<char>((value >> 8) & 0xFF), static_cast<char>(value & 0xFF)};
}

// A v2 header: signature, version/command byte, family/transport byte, length, then `body`.
std::string v2(std::uint8_t versionCommand, std::uint8_t familyTransport, const std::string& body,
               std::optional<std::size_t> length = std::nullopt) {
  return kSignature + static_cast<char>(versionCommand) + static_cast<char>(familyTransport) +
         be16(length.value_or(body.size())) + body;
}

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out += static_cast<char>(v);
  return out;
}

std::string tlv(std::uint8_t type, const std::string& value) {
  return static_cast<char>(type) + be16(value.size()) + value;
}

// 192.0.2.10:51000 -> 198.51.100.1:110
const std::string kInetBlock = bytes({192, 0, 2, 10, 198, 51, 100, 1, 0xC7, 0x38, 0, 110});
// 2001:db8::7:51000 -> 2001:db8::1:995
const std::string kInet6Block =
    bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    7,    0x20, 0x01,
           0x0d, 0xb8, 0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xC7, 0x38, 0x03, 0xE3});

constexpr std::string_view kAfter = "USER alice\r\n";  // what the session must still get

struct HeaderCase {
  std::string_view name;
  std::string header;  // fed followed by kAfter
  ProxyHeaderParser::Status status;
  std::string_view kind = "";  // Done: the kind; Error: part of the message
  std::string sourceIp = "";   // Done with addresses
  std::uint16_t sourcePort = 0;
  std::string destinationIp = "";
  std::uint16_t destinationPort = 0;
  // Error: the verdict must come once at most this many bytes were fed (0: the whole header).
  std::size_t errorWithin = 0;
};

void PrintTo(const HeaderCase& c, std::ostream* os) {
  *os << c.name;
}

using S = ProxyHeaderParser::Status;

std::vector<HeaderCase> cases() {
  const std::string addr = std::string(kInetBlock);
  return {
      // --- v1, valid
      {"V1Tcp4", "PROXY TCP4 192.0.2.10 198.51.100.1 51000 110\r\n", S::Done, "TCP4", "192.0.2.10",
       51000, "198.51.100.1", 110},
      {"V1Tcp6", "PROXY TCP6 2001:DB8::7 2001:db8::1 51000 995\r\n", S::Done, "TCP6", "2001:db8::7",
       51000, "2001:db8::1", 995},
      {"V1Tcp6Mapped", "PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n", S::Done, "TCP6", "::ffff:10.0.0.1",
       1, "::1", 2},
      {"V1PortBounds", "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", S::Done, "TCP4", "0.0.0.0",
       0, "255.255.255.255", 65535},
      {"V1Unknown", "PROXY UNKNOWN\r\n", S::Done, "UNKNOWN"},
      {"V1UnknownWithAddresses", "PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 65535\r\n", S::Done,
       "UNKNOWN"},
      {"V1Longest",
       "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
       "65535 65535\r\n",
       S::Done, "TCP6", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535},
      // --- v1, malformed
      {"V1PortTooLarge", "PROXY TCP4 192.0.2.10 198.51.100.1 65536 110\r\n", S::Error,
       "bad source port"},
      {"V1DestinationPortTooLarge", "PROXY TCP4 192.0.2.10 198.51.100.1 1 99999\r\n", S::Error,
       "bad destination port"},
      {"V1PortLeadingZero", "PROXY TCP4 192.0.2.10 198.51.100.1 0110 110\r\n", S::Error,
       "bad source port"},
      {"V1PortSixDigits", "PROXY TCP4 192.0.2.10 198.51.100.1 100000 110\r\n", S::Error,
       "bad source port"},
      {"V1OctetLeadingZero", "PROXY TCP4 192.0.2.010 198.51.100.1 1 110\r\n", S::Error,
       "bad IPv4 source"},
      {"V1OctetTooLarge", "PROXY TCP4 192.0.2.1 198.51.100.256 1 110\r\n", S::Error,
       "bad IPv4 destination"},
      {"V1Tcp4WithIpv6", "PROXY TCP4 ::1 198.51.100.1 1 110\r\n", S::Error, "bad IPv4 source"},
      {"V1Tcp6WithIpv4", "PROXY TCP6 192.0.2.1 ::1 1 110\r\n", S::Error, "bad IPv6 source"},
      {"V1DoubleSpace", "PROXY TCP4 192.0.2.10  198.51.100.1 51000 110\r\n", S::Error,
       "extra space"},
      {"V1TrailingSpace", "PROXY TCP4 192.0.2.10 198.51.100.1 51000 110 \r\n", S::Error,
       "extra space"},
      {"V1DoubleSpaceAfterProxy", "PROXY  TCP4 192.0.2.10 198.51.100.1 1 2\r\n", S::Error,
       "unknown protocol", "", 0, "", 0, 7},
      {"V1MissingPort", "PROXY TCP4 192.0.2.10 198.51.100.1 51000\r\n", S::Error,
       "expected 5 fields"},
      {"V1ExtraField", "PROXY TCP4 192.0.2.10 198.51.100.1 1 2 3\r\n", S::Error,
       "expected 5 fields"},
      {"V1LowercaseProtocol", "PROXY tcp4 192.0.2.10 198.51.100.1 1 2\r\n", S::Error,
       "unknown protocol", "", 0, "", 0, 7},
      {"V1UnknownProtocol", "PROXY UDP4 192.0.2.10 198.51.100.1 1 2\r\n", S::Error,
       "unknown protocol", "", 0, "", 0, 8},
      {"V1UnknownGlued", "PROXY UNKNOWNX\r\n", S::Error, "unknown protocol"},
      {"V1BareLf", "PROXY TCP4 192.0.2.10 198.51.100.1 1 2\n", S::Error, "LF without CR"},
      {"V1CrWithoutLf", "PROXY UNKNOWN\rX\r\n", S::Error, "CR not followed by LF", "", 0, "", 0,
       15},
      {"V1NoCrlfWithin107", "PROXY UNKNOWN " + std::string(100, 'x') + "\r\n", S::Error,
       "no CRLF within 107", "", 0, "", 0, 107},
      {"V1JunkInAddresses", "PROXY TCP4 192.0.2.10 198.51.100.1 1 2x\r\n", S::Error,
       "unexpected character", "", 0, "", 0, 39},
      {"V1ZoneId", "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", S::Error, "unexpected character", "", 0,
       "", 0, 19},
      {"V1LowercaseProxy", "proxy TCP4 192.0.2.10 198.51.100.1 1 2\r\n", S::Error,
       "not a PROXY protocol header", "", 0, "", 0, 1},
      // A client that does not know it sits behind a balancer: refused at its first byte.
      {"Pop3CommandInstead", "USER alice\r\n", S::Error, "not a PROXY protocol header", "", 0, "",
       0, 1},
      {"TlsHelloInstead", bytes({0x16, 0x03, 0x01, 0x02, 0x00}), S::Error,
       "not a PROXY protocol header", "", 0, "", 0, 1},
      {"ProxyWithoutSpace", "PROXYTCP4\r\n", S::Error, "not a PROXY protocol header", "", 0, "", 0,
       6},
      // --- v2, valid
      {"V2Inet", v2(0x21, 0x11, kInetBlock), S::Done, "TCP4", "192.0.2.10", 51000, "198.51.100.1",
       110},
      {"V2Inet6", v2(0x21, 0x21, kInet6Block), S::Done, "TCP6", "2001:db8::7", 51000, "2001:db8::1",
       995},
      {"V2InetWithTlvs",
       v2(0x21, 0x11, kInetBlock + tlv(0x01, "pop3") + tlv(0x04, "") + tlv(0x05, "unique-id")),
       S::Done, "TCP4", "192.0.2.10", 51000, "198.51.100.1", 110},
      {"V2InetLargestTlv",
       v2(0x21, 0x11, kInetBlock + tlv(0xEE, std::string(kMaxProxyV2Length - 12 - 3, 'x'))),
       S::Done, "TCP4", "192.0.2.10", 51000, "198.51.100.1", 110},
      {"V2Local", v2(0x20, 0x00, ""), S::Done, "LOCAL"},
      {"V2LocalIgnoresAddresses", v2(0x20, 0x11, kInetBlock), S::Done, "LOCAL"},
      {"V2ProxyUnspec", v2(0x21, 0x00, ""), S::Done, "UNSPEC"},
      {"V2Unix", v2(0x21, 0x31, std::string(216, '\0')), S::Done, "UNIX"},
      // --- v2, malformed
      {"V2BadSignature", kSignature.substr(0, 11) + "X" + bytes({0x21, 0x11, 0, 12}) + kInetBlock,
       S::Error, "not a PROXY protocol header", "", 0, "", 0, 12},
      {"V2Version1", v2(0x11, 0x11, kInetBlock), S::Error, "unsupported version 1", "", 0, "", 0,
       13},
      {"V2Version3", v2(0x31, 0x11, kInetBlock), S::Error, "unsupported version 3", "", 0, "", 0,
       13},
      {"V2BadCommand", v2(0x22, 0x11, kInetBlock), S::Error, "unknown command 2", "", 0, "", 0, 13},
      {"V2BadFamily", v2(0x21, 0x41, kInetBlock), S::Error, "unknown address family", "", 0, "", 0,
       14},
      {"V2BadTransport", v2(0x21, 0x13, kInetBlock), S::Error, "unknown address family", "", 0, "",
       0, 14},
      {"V2Datagram", v2(0x21, 0x12, kInetBlock), S::Error, "other than STREAM"},
      {"V2InetUnspecTransport", v2(0x21, 0x10, kInetBlock), S::Error, "other than STREAM"},
      {"V2InetTruncated", v2(0x21, 0x11, kInetBlock.substr(0, 11)), S::Error,
       "address block truncated (11 of 12"},
      {"V2Inet6Truncated", v2(0x21, 0x21, kInetBlock), S::Error,
       "address block truncated (12 of 36"},
      {"V2UnixTruncated", v2(0x21, 0x31, std::string(215, '\0')), S::Error,
       "address block truncated"},
      {"V2LengthOverCap", v2(0x21, 0x11, kInetBlock, kMaxProxyV2Length + 1), S::Error,
       "exceeds 2048", "", 0, "", 0, 16},
      {"V2LengthMax", v2(0x21, 0x11, kInetBlock, 0xFFFF), S::Error, "header length 65535", "", 0,
       "", 0, 16},
      {"V2TlvPastEnd", v2(0x21, 0x11, kInetBlock + "\x01"s + be16(5) + "abc"), S::Error,
       "runs past the header"},
      {"V2TlvHeaderCut", v2(0x21, 0x11, kInetBlock + "\x01\x00"s), S::Error,
       "truncated TLV header"},
  };
}

class ProxyHeaderTable : public testing::TestWithParam<HeaderCase> {};

void expectVerdict(const HeaderCase& c, const ProxyHeaderParser& parser, S status,
                   std::size_t consumed, const std::string& how) {
  ASSERT_EQ(status, c.status) << how << " error: " << parser.error();
  if (status == S::Error) {
    EXPECT_NE(parser.error().find(c.kind), std::string::npos) << how << ": " << parser.error();
    EXPECT_EQ(consumed, 0u) << how;
    return;
  }
  EXPECT_EQ(consumed, c.header.size()) << how << ": the header and not one byte more";
  const ProxyHeader& header = parser.header();
  EXPECT_EQ(header.length, c.header.size()) << how;
  EXPECT_EQ(header.version, c.header.starts_with("PROXY") ? 1 : 2) << how;
  EXPECT_EQ(header.kind, c.kind) << how;
  ASSERT_EQ(header.addresses.has_value(), !c.sourceIp.empty()) << how;
  if (header.addresses) {
    EXPECT_EQ(header.addresses->sourceIp, c.sourceIp) << how;
    EXPECT_EQ(header.addresses->sourcePort, c.sourcePort) << how;
    EXPECT_EQ(header.addresses->destinationIp, c.destinationIp) << how;
    EXPECT_EQ(header.addresses->destinationPort, c.destinationPort) << how;
  }
}

TEST_P(ProxyHeaderTable, Whole) {
  const HeaderCase& c = GetParam();
  ProxyHeaderParser parser;
  std::size_t consumed = 99;
  const std::string input = c.header + std::string(kAfter);
  const S status = parser.feed(input, consumed);
  expectVerdict(c, parser, status, consumed, "whole");
  // The verdict stays, and nothing more is taken.
  EXPECT_EQ(parser.feed(kAfter, consumed), status);
  EXPECT_EQ(consumed, 0u);
}

// One byte at a time: NeedMore takes each byte until the verdict, which takes nothing past
// the header; an error comes no later than the byte that shows it.
TEST_P(ProxyHeaderTable, ByteByByte) {
  const HeaderCase& c = GetParam();
  ProxyHeaderParser parser;
  const std::string input = c.header + std::string(kAfter);
  std::size_t total = 0;
  S status = S::NeedMore;
  std::size_t fed = 0;
  for (char byte : input) {
    std::size_t consumed = 99;
    status = parser.feed(std::string_view(&byte, 1), consumed);
    ++fed;
    if (status == S::NeedMore) {
      ASSERT_EQ(consumed, 1u);
      ++total;
      continue;
    }
    if (status == S::Done) total += consumed;
    break;
  }
  expectVerdict(c, parser, status, status == S::Done ? total : 0, "byte by byte");
  if (status == S::Done) {
    EXPECT_EQ(fed, c.header.size());
  }
  if (status == S::Error && c.errorWithin != 0) {
    EXPECT_LE(fed, c.errorWithin);
  }
}

TEST_P(ProxyHeaderTable, SplitAtEveryOffset) {
  const HeaderCase& c = GetParam();
  const std::string input = c.header + std::string(kAfter);
  for (std::size_t split = 0; split <= input.size(); ++split) {
    ProxyHeaderParser parser;
    std::size_t first = 0;
    S status = parser.feed(std::string_view(input).substr(0, split), first);
    std::size_t total = first;
    if (status == S::NeedMore) {
      ASSERT_EQ(first, split);
      std::size_t second = 0;
      status = parser.feed(std::string_view(input).substr(split), second);
      total += second;
    }
    expectVerdict(c, parser, status, status == S::Done ? total : 0,
                  "split at " + std::to_string(split));
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, ProxyHeaderTable, testing::ValuesIn(cases()),
                         [](const testing::TestParamInfo<HeaderCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(ProxyHeaderParser, NeedsMoreUntilTheHeaderEnds) {
  ProxyHeaderParser parser;
  std::size_t consumed = 0;
  EXPECT_EQ(parser.feed("", consumed), S::NeedMore);
  EXPECT_EQ(parser.feed("PROXY TCP4 1.2.3.4", consumed), S::NeedMore);
  EXPECT_EQ(consumed, 18u);
  EXPECT_EQ(parser.status(), S::NeedMore);
  const std::string prefix = v2(0x21, 0x11, kInetBlock).substr(0, 27);
  ProxyHeaderParser second;
  EXPECT_EQ(second.feed(prefix, consumed), S::NeedMore);
  EXPECT_EQ(consumed, prefix.size());
}

TEST(ProxyHeaderParser, TlsAfterTheHeaderIsLeftAlone) {
  const std::string hello = bytes({0x16, 0x03, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'});
  const std::string header = v2(0x21, 0x11, kInetBlock);
  ProxyHeaderParser parser;
  std::size_t consumed = 0;
  ASSERT_EQ(parser.feed(header + hello, consumed), S::Done);
  EXPECT_EQ(std::string(header + hello).substr(consumed), hello);
}

}  // namespace
}  // namespace popbridge::protocol
