#include "protocol/pop3/dot_stuffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace popbridge::protocol {
namespace {

using Chunks = std::vector<std::string_view>;

Chunks whole(std::string_view in) {
  return {in};
}

Chunks byteByByte(std::string_view in) {
  Chunks chunks;
  for (std::size_t i = 0; i < in.size(); ++i) chunks.push_back(in.substr(i, 1));
  return chunks;
}

Chunks randomSplits(std::string_view in, std::mt19937& rng, std::size_t maxChunk) {
  Chunks chunks;
  while (!in.empty()) {
    const std::size_t n = std::uniform_int_distribution<std::size_t>(0, maxChunk)(rng);
    // Empty chunks are legal input too.
    chunks.push_back(in.substr(0, n));
    in.remove_prefix(chunks.back().size());
  }
  return chunks;
}

std::string stuff(const Chunks& chunks) {
  DotStuffer stuffer;
  std::string out;
  for (std::string_view chunk : chunks) stuffer.feed(chunk, out);
  stuffer.finish(out);
  return out;
}

// Bare LF becomes CRLF, a lone CR stays, and an unterminated last line is
// completed the way DotStuffer::finish() completes it.
std::string crlfNormalise(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) out.push_back('\r');
    out.push_back(in[i]);
  }
  if (!out.empty() && out.back() != '\n') out.append(out.back() == '\r' ? "\n" : "\r\n");
  return out;
}

// A client's view of a multi-line reply: lines end at CRLF, ".CRLF" ends the
// reply, and one leading dot is removed from any other line.
std::string unstuff(std::string_view reply) {
  std::string body;
  for (;;) {
    const std::size_t end = reply.find("\r\n");
    if (end == std::string_view::npos) throw std::runtime_error("reply without terminator");
    std::string_view line = reply.substr(0, end);
    reply.remove_prefix(end + 2);
    if (line == ".") {
      if (!reply.empty()) throw std::runtime_error("bytes after the terminator");
      return body;
    }
    if (!line.empty() && line.front() == '.') {
      if (line.size() < 2 || line[1] != '.') throw std::runtime_error("unstuffed leading dot");
      line.remove_prefix(1);
    }
    body.append(line);
    body.append("\r\n");
  }
}

struct StuffCase {
  std::string name;
  std::string input;
  std::string want;
};

// Readable ctest names instead of the bytes of the parameter.
void PrintTo(const StuffCase& c, std::ostream* os) {
  *os << c.name;
}

const std::vector<StuffCase>& stuffCases() {
  static const std::vector<StuffCase> table = {
      {"empty_message", "", ".\r\n"},
      {"one_line", "a\r\n", "a\r\n.\r\n"},
      {"no_final_line_end", "a", "a\r\n.\r\n"},
      {"no_final_line_end_multi", "a\r\nb", "a\r\nb\r\n.\r\n"},
      {"dot_line", ".\r\n", "..\r\n.\r\n"},
      {"double_dot_line", "..\r\n", "...\r\n.\r\n"},
      {"dot_lines", "a\r\n.\r\n.b\r\n..c\r\nd.\r\n", "a\r\n..\r\n..b\r\n...c\r\nd.\r\n.\r\n"},
      {"leading_dot_first_line", ".From x\r\nbody\r\n", "..From x\r\nbody\r\n.\r\n"},
      {"dot_without_line_end", "a\r\n.", "a\r\n..\r\n.\r\n"},
      {"bare_lf", "a\nb\n", "a\r\nb\r\n.\r\n"},
      {"bare_lf_dot", "a\n.\n", "a\r\n..\r\n.\r\n"},
      {"only_lf", "\n", "\r\n.\r\n"},
      {"blank_lines_lf", "\n\n", "\r\n\r\n.\r\n"},
      {"blank_lines_crlf", "\r\n\r\n", "\r\n\r\n.\r\n"},
      {"mixed_line_ends", "h\r\n\nb\n\r\n", "h\r\n\r\nb\r\n\r\n.\r\n"},
      {"lone_cr_inside", "a\rb\r\n", "a\rb\r\n.\r\n"},
      {"lone_cr_then_dot", "a\r.b\r\n", "a\r.b\r\n.\r\n"},
      {"lone_cr_at_end", "a\r", "a\r\n.\r\n"},
      {"only_cr", "\r", "\r\n.\r\n"},
      {"cr_cr_lf", "\r\r\n", "\r\r\n.\r\n"},
      {"crlf_dot_split_prone", "x\r\n.\r\n.\r\n", "x\r\n..\r\n..\r\n.\r\n"},
      {"nul_passes", std::string("a\0b\r\n", 5), std::string("a\0b\r\n.\r\n", 8)},
  };
  return table;
}

class DotStufferTable : public testing::TestWithParam<StuffCase> {};

TEST_P(DotStufferTable, Whole) {
  const StuffCase& c = GetParam();
  EXPECT_EQ(stuff(whole(c.input)), c.want);
}

TEST_P(DotStufferTable, ByteByByte) {
  const StuffCase& c = GetParam();
  EXPECT_EQ(stuff(byteByByte(c.input)), c.want);
}

TEST_P(DotStufferTable, EverySplitPoint) {
  const StuffCase& c = GetParam();
  const std::string_view in = c.input;
  for (std::size_t i = 0; i <= in.size(); ++i) {
    EXPECT_EQ(stuff({in.substr(0, i), in.substr(i)}), c.want) << "split at " << i;
  }
}

TEST_P(DotStufferTable, RandomSplits) {
  const StuffCase& c = GetParam();
  std::mt19937 rng(2024);
  for (int round = 0; round < 20; ++round) {
    EXPECT_EQ(stuff(randomSplits(c.input, rng, 4)), c.want) << "round " << round;
  }
}

TEST_P(DotStufferTable, RoundTrip) {
  const StuffCase& c = GetParam();
  EXPECT_EQ(unstuff(stuff(whole(c.input))), crlfNormalise(c.input));
}

INSTANTIATE_TEST_SUITE_P(Cases, DotStufferTable, testing::ValuesIn(stuffCases()),
                         [](const testing::TestParamInfo<StuffCase>& info) {
                           return info.param.name;
                         });

TEST(DotStuffer, RandomMessagesRoundTripAndSplitIndependence) {
  std::mt19937 rng(7);
  const std::string alphabet = "..\r\n\nab";
  for (int i = 0; i < 3000; ++i) {
    std::string message(std::uniform_int_distribution<std::size_t>(0, 60)(rng), 'x');
    for (char& ch : message) {
      ch = alphabet[std::uniform_int_distribution<std::size_t>(0, alphabet.size() - 1)(rng)];
    }
    const std::string expected = stuff(whole(message));
    ASSERT_EQ(unstuff(expected), crlfNormalise(message)) << testing::PrintToString(message);
    ASSERT_EQ(stuff(randomSplits(message, rng, 5)), expected) << testing::PrintToString(message);
  }
}

TEST(DotStuffer, AppendsToOutputAndIsReusableAfterFinish) {
  DotStuffer stuffer;
  std::string out = "+OK 3 octets\r\n";
  stuffer.feed("a\r", out);
  stuffer.finish(out);
  EXPECT_EQ(out, "+OK 3 octets\r\na\r\n.\r\n");
  out.clear();
  stuffer.feed(".x\n", out);
  stuffer.finish(out);
  EXPECT_EQ(out, "..x\r\n.\r\n");
}

TEST(DotStuffer, ResetForgetsAnAbandonedMessage) {
  DotStuffer stuffer;
  std::string out;
  stuffer.feed("half a line\r", out);
  stuffer.reset();
  out.clear();
  stuffer.feed("\n.", out);
  stuffer.finish(out);
  EXPECT_EQ(out, "\r\n..\r\n.\r\n");
}

TEST(DotStuffer, LargeCrlfMessageKeepsItsSize) {
  // For a conforming (CRLF) message without leading dots the stuffed body is
  // byte-identical, so RETR sends exactly the advertised size.
  std::string message;
  while (message.size() < (8u << 20)) message.append("Lorem ipsum dolor sit amet, 0123456789\r\n");
  std::string out;
  DotStuffer stuffer;
  for (std::size_t pos = 0; pos < message.size(); pos += 65536) {
    stuffer.feed(std::string_view(message).substr(pos, 65536), out);
  }
  stuffer.finish(out);
  ASSERT_EQ(out.size(), message.size() + 3);
  EXPECT_EQ(out.compare(0, message.size(), message), 0);
}

// TopLimiter

std::string applyTop(std::uint64_t lines, const Chunks& chunks, bool* done = nullptr) {
  TopLimiter limiter(lines);
  std::string forwarded;
  bool stopped = false;
  for (std::string_view chunk : chunks) {
    const std::size_t n = limiter.take(chunk);
    EXPECT_LE(n, chunk.size());
    if (stopped) {
      EXPECT_EQ(n, 0u) << "bytes forwarded after done";
    }
    forwarded.append(chunk.substr(0, n));
    if (limiter.done()) stopped = true;
    // Short of done, every byte is forwarded.
    if (!limiter.done()) {
      EXPECT_EQ(n, chunk.size());
    }
  }
  if (done != nullptr) *done = limiter.done();
  return forwarded;
}

struct TopCase {
  std::string name;
  std::string message;
  std::uint64_t lines;
  std::string want;
  bool done;
};

void PrintTo(const TopCase& c, std::ostream* os) {
  *os << c.name;
}

const std::string kMessage = "From: a@b\r\nSubject: hi\r\n\r\nL1\r\nL2\r\nL3\r\n";
const std::string kHeader = "From: a@b\r\nSubject: hi\r\n\r\n";

const std::vector<TopCase>& topCases() {
  static const std::vector<TopCase> table = {
      {"k0_header_and_blank_line", kMessage, 0, kHeader, true},
      {"k1", kMessage, 1, kHeader + "L1\r\n", true},
      {"k2", kMessage, 2, kHeader + "L1\r\nL2\r\n", true},
      {"k_equals_body", kMessage, 3, kMessage, true},
      {"k_larger_than_body", kMessage, 10, kMessage, false},
      {"k_fetchmail", kMessage, 99999999, kMessage, false},
      {"k_max", kMessage, UINT64_MAX, kMessage, false},
      {"lf_only", "H: 1\n\nB1\nB2\n", 1, "H: 1\n\nB1\n", true},
      {"lf_only_k0", "H: 1\n\nB1\n", 0, "H: 1\n\n", true},
      {"crlf_then_lf", "H: 1\r\n\nB1\n", 0, "H: 1\r\n\n", true},
      {"lf_then_crlf", "H: 1\n\r\nB1\n", 0, "H: 1\n\r\n", true},
      {"no_blank_line_is_all_header", "H: 1\r\nH: 2\r\n", 0, "H: 1\r\nH: 2\r\n", false},
      {"no_blank_line_no_line_end", "H: 1\r\nH: 2", 5, "H: 1\r\nH: 2", false},
      {"empty_header", "\r\nB1\r\nB2\r\n", 0, "\r\n", true},
      {"empty_header_k1", "\r\nB1\r\nB2\r\n", 1, "\r\nB1\r\n", true},
      {"cr_line_is_not_blank", "H: 1\r\n\r\r\nB\r\n\r\nC\r\n", 0, "H: 1\r\n\r\r\nB\r\n\r\n", true},
      {"folded_header", "A: 1\r\n  cont\r\n\r\nB\r\n", 0, "A: 1\r\n  cont\r\n\r\n", true},
      {"last_body_line_without_lf", "H\r\n\r\nB1\r\nB2", 2, "H\r\n\r\nB1\r\nB2", false},
      {"last_body_line_cut", "H\r\n\r\nB1\r\nB2", 1, "H\r\n\r\nB1\r\n", true},
      {"blank_body_lines_count", "H\r\n\r\n\r\n\r\nX\r\n", 2, "H\r\n\r\n\r\n\r\n", true},
      {"empty_message", "", 0, "", false},
  };
  return table;
}

class TopLimiterTable : public testing::TestWithParam<TopCase> {};

TEST_P(TopLimiterTable, Whole) {
  const TopCase& c = GetParam();
  bool done = false;
  EXPECT_EQ(applyTop(c.lines, whole(c.message), &done), c.want);
  EXPECT_EQ(done, c.done);
}

TEST_P(TopLimiterTable, ByteByByte) {
  const TopCase& c = GetParam();
  bool done = false;
  EXPECT_EQ(applyTop(c.lines, byteByByte(c.message), &done), c.want);
  EXPECT_EQ(done, c.done);
}

TEST_P(TopLimiterTable, RandomSplits) {
  const TopCase& c = GetParam();
  std::mt19937 rng(99);
  for (int round = 0; round < 20; ++round) {
    bool done = false;
    EXPECT_EQ(applyTop(c.lines, randomSplits(c.message, rng, 5), &done), c.want);
    EXPECT_EQ(done, c.done);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, TopLimiterTable, testing::ValuesIn(topCases()),
                         [](const testing::TestParamInfo<TopCase>& info) {
                           return info.param.name;
                         });

TEST(TopLimiter, ReturnsZeroOnceDone) {
  TopLimiter limiter(0);
  EXPECT_EQ(limiter.take("H\r\n\r\nbody"), 5u);
  EXPECT_TRUE(limiter.done());
  EXPECT_EQ(limiter.take("more\r\n"), 0u);
  EXPECT_EQ(limiter.take(""), 0u);
}

TEST(TopLimiter, FeedsDotStuffer) {
  // The TOP path: limit, then stuff what is forwarded.
  const std::string message = "Subject: x\n\n.hidden\nsecond\nthird\n";
  TopLimiter limiter(2);
  DotStuffer stuffer;
  std::string out;
  for (std::size_t i = 0; i < message.size(); i += 3) {
    const std::string_view chunk = std::string_view(message).substr(i, 3);
    stuffer.feed(chunk.substr(0, limiter.take(chunk)), out);
  }
  stuffer.finish(out);
  EXPECT_EQ(out, "Subject: x\r\n\r\n..hidden\r\nsecond\r\n.\r\n");
}

}  // namespace
}  // namespace popbridge::protocol
