// HttpRequestParser: each case fed whole and one byte at a time, with the same outcome.

#include "protocol/http/request_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace popbridge::protocol {
namespace {

struct Case {
  std::string name;
  std::string input;
  HttpRequestParser::Result result;
  int status = 0;            // with Error
  std::string method = {};   // with Done
  std::string path = {};     // with Done
  std::size_t consumed = 0;  // 0: the whole input
  HttpRequestLimits limits = {};
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

using R = HttpRequestParser::Result;

const std::vector<Case> kCases = {
    {"Get", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", R::Done, 0, "GET", "/metrics"},
    {"Head", "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", R::Done, 0, "HEAD", "/healthz"},
    {"Http10WithoutHost", "GET /readyz HTTP/1.0\r\n\r\n", R::Done, 0, "GET", "/readyz"},
    {"QueryIsNotPath", "GET /metrics?a=b HTTP/1.1\r\nHost: x\r\n\r\n", R::Done, 0, "GET",
     "/metrics"},
    {"BareLf", "GET / HTTP/1.1\nHost: x\n\n", R::Done, 0, "GET", "/"},
    {"LeadingEmptyLines", "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", R::Done, 0, "GET", "/"},
    {"StopsAfterHead", "GET / HTTP/1.0\r\n\r\nGARBAGE", R::Done, 0, "GET", "/", 18},
    {"ManyHeaders",
     "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: Prometheus/2.42\r\nAccept: */*\r\n\r\n", R::Done, 0,
     "GET", "/"},
    {"Incomplete", "GET /metrics HTTP/1.1\r\nHost: x\r\n", R::NeedMore},
    {"Post", "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", R::Error, 405, {}, {}, 24},
    {"Delete", "DELETE / HTTP/1.1\r\n", R::Error, 405},
    {"LowercaseMethod", "get / HTTP/1.1\r\n", R::Error, 405},
    {"Http2", "GET / HTTP/2.0\r\n", R::Error, 505},
    {"Http12", "GET / HTTP/1.2\r\n", R::Error, 505},
    {"BadVersion", "GET / HTTX/1.1\r\n", R::Error, 400},
    {"NoVersion", "GET /\r\n", R::Error, 400},
    {"AbsoluteForm", "GET http://x/metrics HTTP/1.1\r\n", R::Error, 400},
    {"DoubleSpace", "GET  / HTTP/1.1\r\n", R::Error, 400},
    {"BadMethodChar", "G(T / HTTP/1.1\r\n", R::Error, 400},
    {"ControlInTarget", std::string("GET /\x01 HTTP/1.1\r\n"), R::Error, 400},
    {"BareCr", "GET / HTTP/1.1\rX\r\n", R::Error, 400},
    {"NoHost", "GET / HTTP/1.1\r\n\r\n", R::Error, 400},
    {"TwoHosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", R::Error, 400},
    {"ObsFold", "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", R::Error, 400, {}, {}, 34},
    {"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost : x\r\n", R::Error, 400},
    {"NoColon", "GET / HTTP/1.1\r\nHost\r\n", R::Error, 400},
    {"ControlInValue", std::string("GET / HTTP/1.1\r\nX: a\x7f\r\n"), R::Error, 400},
    {"Body", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", R::Error, 400},
    {"ZeroLengthBodyIsFine", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", R::Done, 0,
     "GET", "/"},
    {"Chunked", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", R::Error, 400},
    {"HeadTooLong",
     "GET /" + std::string(100, 'a') + " HTTP/1.1\r\n",
     R::Error,
     431,
     {},
     {},
     64,
     {64, 8}},
    {"HeadExactlyAtLimit",
     "GET / HTTP/1.0\r\nX: " + std::string(25, 'a') + "\r\n\r\n",
     R::Done,
     0,
     "GET",
     "/",
     0,
     {48, 8}},
    {"TooManyHeaders",
     "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n",
     R::Error,
     431,
     {},
     {},
     0,
     {8192, 2}},
};

class HttpRequestParserTable : public ::testing::TestWithParam<Case> {};

struct Outcome {
  R result;
  std::size_t consumed;
};

Outcome feedAll(HttpRequestParser& parser, const std::string& input, bool byteByByte) {
  std::size_t offset = 0;
  R result = R::NeedMore;
  while (offset < input.size()) {
    const std::size_t size = byteByByte ? 1 : input.size();
    std::size_t consumed = 0;
    result = parser.feed(std::string_view(input).substr(offset, size), consumed);
    offset += consumed;
    if (result != R::NeedMore) break;
  }
  return {result, offset};
}

TEST_P(HttpRequestParserTable, WholeAndByteByByte) {
  const Case& c = GetParam();
  for (bool byteByByte : {false, true}) {
    SCOPED_TRACE(byteByByte ? "byte by byte" : "whole");
    HttpRequestParser parser(c.limits);
    const Outcome outcome = feedAll(parser, c.input, byteByByte);
    ASSERT_EQ(outcome.result, c.result);
    EXPECT_EQ(outcome.consumed, c.consumed == 0 ? c.input.size() : c.consumed);
    if (c.result == R::Done) {
      EXPECT_EQ(parser.method(), c.method);
      EXPECT_EQ(parser.path(), c.path);
      EXPECT_EQ(parser.errorStatus(), 0);
    }
    if (c.result == R::Error) {
      EXPECT_EQ(parser.errorStatus(), c.status);
      EXPECT_FALSE(parser.error().empty());
    }
    if (c.result != R::NeedMore) {
      // Final: nothing more is consumed.
      std::size_t consumed = 1;
      EXPECT_EQ(parser.feed("GET / HTTP/1.0\r\n\r\n", consumed), c.result);
      EXPECT_EQ(consumed, 0u);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, HttpRequestParserTable, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param.name; });

TEST(HttpRequestParser, HeadersAreCaseInsensitiveAndTrimmed) {
  HttpRequestParser parser;
  std::size_t consumed = 0;
  ASSERT_EQ(parser.feed("GET /x HTTP/1.1\r\nhOsT: \t example \t\r\n\r\n", consumed), R::Done);
  EXPECT_EQ(parser.header("Host"), "example");
  EXPECT_EQ(parser.header("Accept"), std::nullopt);
  EXPECT_EQ(parser.target(), "/x");
  EXPECT_EQ(parser.minorVersion(), 1);
}

TEST(HttpRequestParser, ErrorNeverQuotesInput) {
  HttpRequestParser parser;
  std::size_t consumed = 0;
  ASSERT_EQ(parser.feed("SECRETMETHOD /password HTTP/1.1\r\n", consumed), R::Error);
  EXPECT_EQ(parser.error().find("SECRET"), std::string::npos);
  EXPECT_EQ(parser.error().find("password"), std::string::npos);
}

}  // namespace
}  // namespace popbridge::protocol
