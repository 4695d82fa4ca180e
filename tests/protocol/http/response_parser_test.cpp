#include "protocol/http/response_parser.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

namespace popbridge::protocol {
namespace {

using Result = HttpResponseParser::Result;

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

struct Options {
  HttpResponseLimits limits{};
  bool connect = false;
  bool eof = false;  // the peer closes after the input
};

// Feeds input in pieces, checking the contract on every call, and renders the outcome as one
// line: "DONE status reason|body|rest=n" (n: bytes left to the caller), "ERROR message" or
// "NEEDMORE". `pieces` are the sizes of consecutive pieces, the last repeated.
std::string run(std::string_view input, const std::vector<std::size_t>& pieces, const Options& o) {
  HttpResponseParser parser(o.limits, o.connect);
  std::size_t offset = 0;
  std::size_t index = 0;
  std::size_t consumed = 0;
  Result result = Result::NeedMore;
  while (offset < input.size()) {
    const std::size_t size = pieces[std::min(index++, pieces.size() - 1)];
    const std::string_view piece = input.substr(offset, size);
    consumed = 12345;
    result = parser.feed(piece, consumed);
    EXPECT_LE(consumed, piece.size());
    offset += consumed;
    if (result != Result::NeedMore) break;
    EXPECT_EQ(consumed, piece.size());
  }
  if (result == Result::NeedMore && o.eof) {
    result = parser.eof();
  }
  if (result == Result::NeedMore) return "NEEDMORE";
  // Done and Error are final: nothing more is consumed, and the answer stays.
  std::size_t again = 12345;
  EXPECT_EQ(parser.feed("HTTP/1.1 200 OK\r\n\r\n", again), result);
  EXPECT_EQ(again, 0u);
  EXPECT_EQ(parser.eof(), result);
  if (result == Result::Error) {
    EXPECT_TRUE(parser.body().empty());
    return "ERROR " + parser.error();
  }
  EXPECT_TRUE(parser.error().empty());
  EXPECT_LE(parser.body().size(), o.limits.maxBodyBytes);
  return "DONE " + std::to_string(parser.status()) + " " + parser.reason() + "|" +
         escape(parser.body()) + "|rest=" + std::to_string(input.size() - offset);
}

struct Case {
  const char* name;
  std::string input;
  std::string expected;
  Options options{};
};

HttpResponseLimits smallLimits(std::size_t headerBytes, std::size_t bodyBytes,
                               std::size_t headers = 100) {
  return {headerBytes, bodyBytes, headers};
}

const std::string kOk = "HTTP/1.1 200 OK\r\n";

const std::vector<Case>& cases() {
  static const std::vector<Case> kCases{
      // --- Content-Length
      {"content length",
       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n"
       "{\"access_token\":\"x\",\"a\":1}\n",
       "DONE 200 OK|{\"access_token\":\"x\",\"a\":1}\\n|rest=0"},
      {"content length leaves what follows", kOk + "Content-Length: 3\r\n\r\nabcHTTP/1.1",
       "DONE 200 OK|abc|rest=8"},
      {"content length zero", kOk + "Content-Length: 0\r\n\r\nx", "DONE 200 OK||rest=1"},
      {"content length repeated and as a list",
       kOk + "content-length: 4\r\nContent-Length: 4, 4\r\n\r\nbody", "DONE 200 OK|body|rest=0"},
      {"content length with leading zeros and whitespace",
       kOk + "Content-Length:\t 0004 \t\r\n\r\nbody", "DONE 200 OK|body|rest=0"},
      {"error response with body",
       "HTTP/1.1 400 Bad Request\r\nContent-Length: 25\r\n\r\n{\"error\":\"invalid_grant\"}",
       "DONE 400 Bad Request|{\"error\":\"invalid_grant\"}|rest=0"},
      {"body exactly at the limit",
       kOk + "Content-Length: 8\r\n\r\n12345678",
       "DONE 200 OK|12345678|rest=0",
       {smallLimits(1024, 8)}},
      // --- chunked
      {"chunked",
       kOk + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\nnext",
       "DONE 200 OK|hello, world|rest=4"},
      {"chunked with extensions and trailers",
       kOk + "Transfer-Encoding: chunked\r\n\r\n"
             "5;name=value\r\nhello\r\n"
             "6 ; a=\"q;uo\\\"ted\" ;b\r\n world\r\n"
             "0;last\r\nExpires: never\r\nX-Checksum: abc\r\n\r\n",
       "DONE 200 OK|hello world|rest=0"},
      {"chunked hex in both cases with leading zeros",
       kOk + "Transfer-Encoding: chunked\r\n\r\n000A\r\n0123456789\r\n1a\r\n"
             "abcdefghijklmnopqrstuvwxyz\r\n000\r\n\r\n",
       "DONE 200 OK|0123456789abcdefghijklmnopqrstuvwxyz|rest=0"},
      {"chunked with bare LF", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n",
       "DONE 200 OK|abc|rest=0"},
      {"chunked wins over content length",
       kOk + "Content-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
       "DONE 200 OK|ab|rest=0"},
      {"chunked case-insensitive with empty list elements",
       kOk + "Transfer-Encoding: ,\r\ntransfer-encoding: CHUNKED , \r\n\r\n1\r\nx\r\n0\r\n\r\n",
       "DONE 200 OK|x|rest=0"},
      {"chunked body exactly at the limit",
       kOk + "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n",
       "DONE 200 OK|abcdefgh|rest=0",
       {smallLimits(1024, 8)}},
      // --- close-delimited
      {"close delimited",
       kOk + "Content-Type: text/plain\r\n\r\nall of\r\nit",
       "DONE 200 OK|all of\\r\\nit|rest=0",
       {.eof = true}},
      {"close delimited waits for the close", kOk + "\r\nsome", "NEEDMORE"},
      {"close delimited HTTP/1.0",
       "HTTP/1.0 200 OK\r\n\r\nold",
       "DONE 200 OK|old|rest=0",
       {.eof = true}},
      {"close delimited empty", kOk + "\r\n", "DONE 200 OK||rest=0", {.eof = true}},
      // --- no body
      {"204 ignores content length", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nabc",
       "DONE 204 No Content||rest=3"},
      {"304", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
       "DONE 304 Not Modified||rest=0"},
      {"CONNECT 200 leaves the tunnel's bytes",
       "HTTP/1.1 200 Connection established\r\nContent-Length: 10\r\n\r\n\x16\x03\x01\x02\x05",
       "DONE 200 Connection established||rest=5",
       {.connect = true}},
      {"CONNECT 407 has a body",
       "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"p\"\r\n"
       "Content-Length: 6\r\n\r\ndenied",
       "DONE 407 Proxy Authentication Required|denied|rest=0",
       {.connect = true}},
      {"CONNECT 200 from an HTTP/1.0 proxy",
       "HTTP/1.0 200 OK\n\n",
       "DONE 200 OK||rest=0",
       {.connect = true}},
      // --- interim responses and status lines
      {"100 Continue is skipped",
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
       "DONE 200 OK|ok|rest=0"},
      {"103 Early Hints and 100 are skipped",
       "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\nContent-Length: 9\r\n\r\n"
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n1",
       "DONE 201 Created|1|rest=0"},
      {"status without reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "DONE 200 ||rest=0"},
      {"status with empty reason", "HTTP/1.1 500 \r\nContent-Length: 0\r\n\r\n",
       "DONE 500 ||rest=0"},
      {"reason with tabs and obs-text",
       "HTTP/1.1 200 Gut\tso \xC3\xBC\r\nContent-Length: 0\r\n\r\n",
       "DONE 200 Gut\tso \xC3\xBC||rest=0"},
      {"HTTP/1.2 reads as 1.1", "HTTP/1.2 200 OK\r\nContent-Length: 1\r\n\r\nx",
       "DONE 200 OK|x|rest=0"},
      {"empty header value and obs-text value",
       kOk + "X-Empty:\r\nX-Text: caf\xC3\xA9\r\nContent-Length: 0\r\n\r\n", "DONE 200 OK||rest=0"},
      {"head exactly at the limit",
       "HTTP/1.1 200 OK\r\nA: 1\r\n\r\n",
       "DONE 200 OK||rest=0",
       {smallLimits(25, 8), false, true}},
      {"header count exactly at the limit",
       kOk + "A: 1\r\nB: 2\r\n\r\n",
       "DONE 200 OK||rest=0",
       {smallLimits(1024, 8, 2), false, true}},
      // --- status line errors
      {"HTTP/2 status line", "HTTP/2 200\r\n\r\n",
       "ERROR unsupported HTTP version in status line 'HTTP/2 200'"},
      {"HTTP/1.10", "HTTP/1.10 200 OK\r\n\r\n",
       "ERROR unsupported HTTP version in status line 'HTTP/1.10 200 OK'"},
      {"HTTP/0.9", "HTTP/0.9 200 OK\r\n\r\n",
       "ERROR unsupported HTTP version in status line 'HTTP/0.9 200 OK'"},
      {"not HTTP", "ICY 200 OK\r\n\r\n", "ERROR invalid status line 'ICY 200 OK'"},
      {"lower-case http", "http/1.1 200 OK\r\n\r\n", "ERROR invalid status line 'http/1.1 200 OK'"},
      {"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", "ERROR invalid status line 'HTTP/1.1 20 OK'"},
      {"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n",
       "ERROR invalid status line 'HTTP/1.1 2000 OK'"},
      {"double space", "HTTP/1.1  200 OK\r\n\r\n", "ERROR invalid status line 'HTTP/1.1  200 OK'"},
      {"version only", "HTTP/1.1\r\n\r\n", "ERROR invalid status line 'HTTP/1.1'"},
      {"status 600", "HTTP/1.1 600 X\r\n\r\n", "ERROR invalid status code '600'"},
      {"status 099", "HTTP/1.1 099 X\r\n\r\n", "ERROR invalid status code '099'"},
      {"101 Switching Protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
       "ERROR unexpected 101 Switching Protocols (no upgrade was asked for)"},
      {"control in reason", "HTTP/1.1 200 O\x01K\r\n\r\n",
       "ERROR control byte in the reason phrase 'O\\x01K'"},
      {"bare CR in status line", "HTTP/1.1 200 O\rK\r\n\r\n",
       "ERROR bare CR in the response status line"},
      {"long junk status line is quoted briefly", std::string(200, 'A') + "\r\n",
       "ERROR invalid status line 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'..."},
      {"empty line before the status line", "\r\nHTTP/1.1 200 OK\r\n\r\n",
       "ERROR invalid status line ''"},
      // --- header errors
      {"obs-fold", kOk + "X-A: one\r\n two\r\n\r\n",
       "ERROR obsolete line folding in the response headers"},
      {"whitespace before the first header", kOk + " X-A: one\r\n\r\n",
       "ERROR obsolete line folding in the response headers"},
      {"whitespace before the colon", kOk + "Content-Length : 5\r\n\r\nhello",
       "ERROR whitespace before the colon in header 'Content-Length'"},
      {"header without colon", kOk + "Content-Length 5\r\n\r\n",
       "ERROR header line without a colon 'Content-Length 5'"},
      {"empty header name", kOk + ": x\r\n\r\n", "ERROR empty header name in ': x'"},
      {"invalid header name", kOk + "Bad(Name): x\r\n\r\n",
       "ERROR invalid header name 'Bad(Name)'"},
      {"NUL in header value", kOk + std::string("X-A: a\0b\r\n\r\n", 12),
       "ERROR control byte in the value of header 'X-A'"},
      {"bare CR in header", kOk + "X-A: a\rContent-Length: 0\r\n\r\n",
       "ERROR bare CR in the response headers"},
      // --- framing errors
      {"gzip transfer coding", kOk + "Transfer-Encoding: gzip\r\n\r\n",
       "ERROR unsupported Transfer-Encoding 'gzip'"},
      {"gzip then chunked", kOk + "Transfer-Encoding: gzip, chunked\r\n\r\n",
       "ERROR unsupported Transfer-Encoding 'gzip'"},
      {"chunked twice", kOk + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
       "ERROR invalid Transfer-Encoding"},
      {"empty transfer encoding", kOk + "Transfer-Encoding: \r\n\r\n",
       "ERROR invalid Transfer-Encoding"},
      {"transfer encoding in HTTP/1.0",
       "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       "ERROR Transfer-Encoding in an HTTP/1.0 response"},
      {"content length with sign", kOk + "Content-Length: +5\r\n\r\nhello",
       "ERROR invalid Content-Length '+5'"},
      {"negative content length", kOk + "Content-Length: -1\r\n\r\n",
       "ERROR invalid Content-Length '-1'"},
      {"content length with junk", kOk + "Content-Length: 5a\r\n\r\nhello",
       "ERROR invalid Content-Length '5a'"},
      {"content length with inner space", kOk + "Content-Length: 1 2\r\n\r\n",
       "ERROR invalid Content-Length '1 2'"},
      {"empty content length", kOk + "Content-Length:\r\n\r\n", "ERROR empty Content-Length"},
      {"content length overflow", kOk + "Content-Length: 99999999999999999999999\r\n\r\n",
       "ERROR invalid Content-Length '99999999999999999999999'"},
      {"conflicting content lengths", kOk + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
       "ERROR conflicting Content-Length values"},
      {"conflicting content length list", kOk + "Content-Length: 5, 6\r\n\r\n",
       "ERROR conflicting Content-Length values"},
      // --- chunk errors
      {"chunk size missing", kOk + "Transfer-Encoding: chunked\r\n\r\n\r\n",
       "ERROR expected a chunk size, found '\\x0D'"},
      {"chunk size not hex", kOk + "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
       "ERROR expected a chunk size, found 'z'"},
      {"chunk size with junk", kOk + "Transfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n",
       "ERROR unexpected 'x' after the chunk size"},
      {"chunk size with sign", kOk + "Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n",
       "ERROR expected a chunk size, found '+'"},
      {"chunk size overflow",
       kOk + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n",
       "ERROR response body exceeds 262144 bytes"},
      {"chunk beyond the body limit",
       kOk + "Transfer-Encoding: chunked\r\n\r\n9\r\n",
       "ERROR response body exceeds 8 bytes",
       {smallLimits(1024, 8)}},
      {"chunks together beyond the body limit",
       kOk + "Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n4\r\nfghi\r\n0\r\n\r\n",
       "ERROR response body exceeds 8 bytes",
       {smallLimits(1024, 8)}},
      {"no CRLF after chunk data", kOk + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n",
       "ERROR expected CRLF after chunk data, found 'd'"},
      {"bare CR after chunk data", kOk + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\rx",
       "ERROR expected CRLF after chunk data, found CR and 'x'"},
      {"bare CR in chunk size line", kOk + "Transfer-Encoding: chunked\r\n\r\n3\rx\n",
       "ERROR bare CR in a chunk size line"},
      {"control byte in chunk extension",
       kOk + "Transfer-Encoding: chunked\r\n\r\n3;a=\x01\r\nabc\r\n",
       "ERROR control byte in a chunk extension"},
      {"chunk size line too long",
       kOk + "Transfer-Encoding: chunked\r\n\r\n3;" + std::string(100, 'x') + "\r\n",
       "ERROR chunk size line exceeds 64 bytes",
       {smallLimits(64, 1024)}},
      {"leading zeros count as chunk size line",
       kOk + "Transfer-Encoding: chunked\r\n\r\n" + std::string(65, '0') + "3\r\n",
       "ERROR chunk size line exceeds 64 bytes",
       {smallLimits(64, 1024)}},
      {"trailers too long",
       kOk + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: " + std::string(100, 'x') + "\r\n\r\n",
       "ERROR response trailers exceed 64 bytes",
       {smallLimits(64, 1024)}},
      {"too many trailers",
       kOk + "Transfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
       "ERROR response has more than 2 trailer fields",
       {smallLimits(1024, 1024, 2)}},
      {"obs-fold in trailers", kOk + "Transfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\n 2\r\n\r\n",
       "ERROR obsolete line folding in the response trailers"},
      {"bare CR in trailers", kOk + "Transfer-Encoding: chunked\r\n\r\n0\r\nA: 1\rB\r\n\r\n",
       "ERROR bare CR in the response trailers"},
      {"control byte in trailers", kOk + "Transfer-Encoding: chunked\r\n\r\n0\r\nA: \x7f\r\n\r\n",
       "ERROR control byte in the response trailers"},
      // --- limits
      {"head one byte over the limit",
       "HTTP/1.1 200 OK\r\nAB: 1\r\n\r\n",
       "ERROR response headers exceed 25 bytes",
       {smallLimits(25, 8), false, true}},
      {"endless status line", "HTTP/1.1 200 " + std::string(20000, 'x'),
       "ERROR response headers exceed 16384 bytes"},
      {"endless headers", kOk + std::string(20000, 'x'),
       "ERROR response headers exceed 16384 bytes"},
      {"interim responses count toward the head limit",
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
       "ERROR response headers exceed 80 bytes",
       {smallLimits(80, 8)}},
      {"too many headers",
       kOk + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n",
       "ERROR response has more than 2 header fields",
       {smallLimits(1024, 8, 2)}},
      {"content length beyond the body limit", kOk + "Content-Length: 262145\r\n\r\n",
       "ERROR response body exceeds 262144 bytes"},
      {"close-delimited body beyond the limit",
       kOk + "\r\n123456789",
       "ERROR response body exceeds 8 bytes",
       {smallLimits(1024, 8)}},
      {"close-delimited body at the limit",
       kOk + "\r\n12345678",
       "DONE 200 OK|12345678|rest=0",
       {smallLimits(1024, 8), false, true}},
      // --- the peer closes early
      {"closed before anything",
       "",
       "ERROR connection closed before the response was complete",
       {.eof = true}},
      {"closed in the headers",
       kOk + "Content-Le",
       "ERROR connection closed before the response was complete",
       {.eof = true}},
      {"closed in a content-length body",
       kOk + "Content-Length: 5\r\n\r\nabc",
       "ERROR connection closed before the response was complete",
       {.eof = true}},
      {"closed in a chunked body",
       kOk + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
       "ERROR connection closed before the response was complete",
       {.eof = true}},
      {"closed in the trailers",
       kOk + "Transfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\n",
       "ERROR connection closed before the response was complete",
       {.eof = true}},
      {"closed after a 100 Continue",
       "HTTP/1.1 100 Continue\r\n\r\n",
       "ERROR connection closed before the response was complete",
       {.eof = true}},
  };
  return kCases;
}

class HttpResponseParserTable : public ::testing::TestWithParam<std::size_t> {};

TEST_P(HttpResponseParserTable, WholeInput) {
  const Case& c = cases()[GetParam()];
  EXPECT_EQ(run(c.input, {std::max<std::size_t>(c.input.size(), 1)}, c.options), c.expected)
      << c.name;
}

TEST_P(HttpResponseParserTable, OneByteAtATime) {
  const Case& c = cases()[GetParam()];
  EXPECT_EQ(run(c.input, {1}, c.options), c.expected) << c.name;
}

TEST_P(HttpResponseParserTable, SplitAtEveryOffset) {
  const Case& c = cases()[GetParam()];
  if (c.input.size() > 400) GTEST_SKIP() << "long inputs are covered whole and byte by byte";
  for (std::size_t split = 0; split <= c.input.size(); ++split) {
    EXPECT_EQ(run(c.input, {split, c.input.size()}, c.options), c.expected)
        << c.name << " split at " << split;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, HttpResponseParserTable,
                         ::testing::Range<std::size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           std::string name;
                           for (char ch : std::string(cases()[info.param].name)) {
                             name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           }
                           return std::to_string(info.param) + "_" + name;
                         });

TEST(HttpResponseParser, HeadersAreFoundCaseInsensitivelyFirstOccurrenceTrimmed) {
  HttpResponseParser parser;
  const std::string input =
      "HTTP/1.1 200 OK\r\ncontent-type:  application/json \t\r\nX-Dup: one\r\nx-dup: two\r\n"
      "X-Empty:\r\nContent-Length: 0\r\n\r\n";
  std::size_t consumed = 0;
  ASSERT_EQ(parser.feed(input, consumed), HttpResponseParser::Result::Done);
  EXPECT_EQ(consumed, input.size());
  EXPECT_EQ(parser.header("Content-Type"), "application/json");
  EXPECT_EQ(parser.header("X-DUP"), "one");
  EXPECT_EQ(parser.header("x-empty"), "");
  EXPECT_EQ(parser.header("X-Missing"), std::nullopt);
}

TEST(HttpResponseParser, InterimHeadersAreNotVisible) {
  HttpResponseParser parser;
  const std::string input =
      "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  std::size_t consumed = 0;
  ASSERT_EQ(parser.feed(input, consumed), HttpResponseParser::Result::Done);
  EXPECT_EQ(parser.status(), 200);
  EXPECT_EQ(parser.header("Link"), std::nullopt);
}

TEST(HttpResponseParser, CloseDelimitedBodyGrowsUntilEof) {
  HttpResponseParser parser;
  std::size_t consumed = 0;
  EXPECT_EQ(parser.feed("HTTP/1.1 200 OK\r\n\r\nab", consumed),
            HttpResponseParser::Result::NeedMore);
  EXPECT_EQ(parser.feed("", consumed), HttpResponseParser::Result::NeedMore);
  EXPECT_EQ(consumed, 0u);
  EXPECT_EQ(parser.feed("cd", consumed), HttpResponseParser::Result::NeedMore);
  EXPECT_EQ(parser.body(), "abcd");
  EXPECT_EQ(parser.eof(), HttpResponseParser::Result::Done);
  EXPECT_EQ(parser.body(), "abcd");
}

TEST(HttpResponseParser, ErrorsQuoteAtMostFortyBytesOfInput) {
  HttpResponseParser parser;
  std::size_t consumed = 0;
  const std::string input = "HTTP/1.1 200 OK\r\n" + std::string(5000, 'N') + ": v\r\n\r\n";
  HttpResponseLimits limits;
  limits.maxHeaders = 0;
  HttpResponseParser strict(limits);
  ASSERT_EQ(parser.feed("HTTP/1.1 200 OK\r\n" + std::string(5000, '\x01') + "\r\n\r\n", consumed),
            HttpResponseParser::Result::Error);
  EXPECT_LE(parser.error().size(), 40u * 4 + 60);
  ASSERT_EQ(strict.feed(input, consumed), HttpResponseParser::Result::Error);
  EXPECT_EQ(strict.error(), "response has more than 0 header fields");
}

}  // namespace
}  // namespace popbridge::protocol
