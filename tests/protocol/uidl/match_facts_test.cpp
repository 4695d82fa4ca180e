#include "protocol/uidl/match_facts.h"

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace popbridge::protocol::uidl {
namespace {

const std::string kBasic =
    "From: Alice <a@example.org>\r\n"
    "To: bob@example.net\r\n"
    "Subject: Hello  world\r\n"
    "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    "Message-ID: <1@example.org>\r\n"
    "\r\n";
// Computed independently (Python hashlib) from the definition in match_facts.h.
constexpr std::string_view kBasicHash =
    "070a37ba5486f1774b8c034f58e594f7a042c6cd420a61b699e4aae03a64cbb4";

struct FactsCase {
  std::string name;
  std::string input;
  std::string messageId;
  std::string dateKey;
  std::string hash;  // hex; empty: not checked
  std::uint32_t lines = 0;
};

void PrintTo(const FactsCase& c, std::ostream* os) {
  *os << c.name;
}

MatchFacts parseWhole(const std::string& input) {
  std::string error;
  const auto facts = parseHeaderFacts(input, error);
  EXPECT_TRUE(facts.has_value()) << error;
  return facts.value_or(MatchFacts{});
}

MatchFacts parseByteByByte(const std::string& input) {
  HeaderFactsParser parser;
  auto status = HeaderFactsParser::Status::NeedMore;
  for (char c : input) {
    std::size_t consumed = 0;
    status = parser.feed(std::string_view(&c, 1), consumed);
    if (status != HeaderFactsParser::Status::NeedMore) break;
    EXPECT_EQ(consumed, 1u);
  }
  if (status == HeaderFactsParser::Status::NeedMore) status = parser.finish();
  EXPECT_EQ(status, HeaderFactsParser::Status::Done) << parser.error();
  return parser.facts();
}

class HeaderFacts : public ::testing::TestWithParam<FactsCase> {};

TEST_P(HeaderFacts, WholeAndByteByByte) {
  const FactsCase& c = GetParam();
  for (const MatchFacts& facts : {parseWhole(c.input), parseByteByByte(c.input)}) {
    EXPECT_TRUE(facts.hasHeader);
    EXPECT_EQ(facts.messageId, c.messageId);
    EXPECT_EQ(facts.dateKey, c.dateKey);
    EXPECT_EQ(facts.headerLines, c.lines);
    if (!c.hash.empty()) {
      EXPECT_EQ(toHex(facts.headerHash), c.hash);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, HeaderFacts,
    ::testing::Values(
        FactsCase{"Basic", kBasic, "1@example.org", "@760686745", std::string(kBasicHash), 5},
        // What a server may do when it re-serializes: other order, folding, LF, name case,
        // whitespace, other fields between. Same hash.
        FactsCase{"Reserialized",
                  "message-id:\n <1@example.org>\nReceived: from x\n\tby y\nDATE :  Mon, 7 Feb "
                  "1994\n 21:52:25 -0800\nsubject: Hello\n world\nTo:bob@example.net\nFrom: "
                  "Alice\r\n\t<a@example.org>  \n\n",
                  "1@example.org", "@760686745", std::string(kBasicHash), 11},
        FactsCase{"NoBlankLineAtEnd", kBasic.substr(0, kBasic.size() - 2), "1@example.org",
                  "@760686745", std::string(kBasicHash), 5},
        FactsCase{"NoMessageId", "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\nSubject: x\r\n\r\n", "",
                  "@1057049557", "", 2},
        FactsCase{"EmptyBlock", "\r\n", "", "", "", 0},
        FactsCase{"UnparseableDate", "Date:  next   Tuesday\r\n\r\n", "", "=next Tuesday", "", 1},
        FactsCase{"FirstOccurrenceCounts",
                  "Message-ID: <a@x>\r\nMessage-ID: <b@x>\r\nDate: 1 Jan 2000 00:00:00 "
                  "GMT\r\nDate: 2 Jan 2000 00:00:00 GMT\r\n\r\n",
                  "a@x", "@946684800", "", 4},
        FactsCase{"MessageIdWithoutBrackets", "Message-ID: abc@def \r\n\r\n", "abc@def", "", "", 1},
        FactsCase{"MessageIdFoldedInside", "Message-ID: <abc\r\n @def>\r\n\r\n", "abc@def", "", "",
                  2},
        FactsCase{"MboxFromLineSkipped",
                  "From alice@example.org Mon Feb  7 21:52:25 1994\nMessage-ID: <m@x>\n\n", "m@x",
                  "", "", 2}));

TEST(HeaderFacts, StopsAtTheBlankLine) {
  HeaderFactsParser parser;
  const std::string input = kBasic + "body line\r\n";
  std::size_t consumed = 0;
  EXPECT_EQ(parser.feed(input, consumed), HeaderFactsParser::Status::Done);
  EXPECT_EQ(consumed, kBasic.size());
  EXPECT_EQ(parser.feed("more", consumed), HeaderFactsParser::Status::Done);
  EXPECT_EQ(consumed, 0u);
}

TEST(HeaderFacts, ChangedSubjectChangesTheHash) {
  std::string other = kBasic;
  other.replace(other.find("Hello"), 5, "Hallo");
  EXPECT_NE(parseWhole(other).headerHash, parseWhole(kBasic).headerHash);
  // The Date's layout is not hashed (it is a key of its own, compared as a time).
  std::string rewritten = kBasic;
  rewritten.replace(rewritten.find("Mon, 7 Feb 1994 21:52:25 -0800"), 30,
                    "Tue, 08 Feb 1994 05:52:25 +0000");
  EXPECT_EQ(parseWhole(rewritten).headerHash, parseWhole(kBasic).headerHash);
  EXPECT_EQ(parseWhole(rewritten).dateKey, parseWhole(kBasic).dateKey);
  // Duplicating a field changes it: the count is hashed.
  EXPECT_NE(parseWhole("To: a\r\nTo: a\r\n\r\n").headerHash,
            parseWhole("To: a\r\n\r\n").headerHash);
}

TEST(HeaderFacts, LimitsAreErrors) {
  HeaderLimits limits;
  limits.maxLineLength = 32;
  std::string error;
  EXPECT_FALSE(parseHeaderFacts("Subject: " + std::string(40, 'x') + "\r\n\r\n", error, limits));
  EXPECT_EQ(error, "header line 1 is longer than 32 bytes");
  limits = HeaderLimits{};
  limits.maxTotal = 20;
  EXPECT_FALSE(parseHeaderFacts("To: a\r\nTo: b\r\nTo: c\r\nTo: d\r\n\r\n", error, limits));
  EXPECT_EQ(error, "the header is longer than 20 bytes");
}

TEST(HeaderFacts, OverlongMessageIdIsDropped) {
  HeaderLimits limits;
  limits.maxValueLength = 10;
  std::string error;
  const auto facts = parseHeaderFacts("Message-ID: <0123456789abc@x>\r\n\r\n", error, limits);
  ASSERT_TRUE(facts.has_value());
  EXPECT_EQ(facts->messageId, "");
}

struct DateCase {
  std::string text;
  std::optional<std::int64_t> seconds;
};

class Rfc5322Date : public ::testing::TestWithParam<DateCase> {};

TEST_P(Rfc5322Date, Parses) {
  EXPECT_EQ(parseRfc5322Date(GetParam().text), GetParam().seconds) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    Table, Rfc5322Date,
    ::testing::Values(DateCase{"Mon, 7 Feb 1994 21:52:25 -0800", 760686745},
                      DateCase{"7 Feb 1994 21:52:25 -0800", 760686745},
                      DateCase{"Tue, 08 Feb 1994 05:52:25 +0000", 760686745},
                      DateCase{"Mon, 7 Feb 94 21:52:25 PST", 760686745},
                      DateCase{"Mon, 7 Feb 1994 21 : 52 : 25 -0800 (PST)", 760686745},
                      DateCase{"(c) Mon , 7 feb 1994 21:52:25 -0800", 760686745},
                      DateCase{"1 Jan 2000 00:00 GMT", 946684800},
                      DateCase{"1 Jan 100 00:00:00 UT", 946684800},  // obs 3-digit year
                      DateCase{"1 Jan 2000 00:00:00 Z", 946684800},  // military: -0000
                      DateCase{"1 Jan 2000 00:00:00", std::nullopt},
                      DateCase{"32 Jan 2000 00:00:00 +0000", std::nullopt},
                      DateCase{"1 Foo 2000 00:00:00 +0000", std::nullopt},
                      DateCase{"1 Jan 2000 24:00:00 +0000", std::nullopt},
                      DateCase{"1 Jan 2000 00:00:00 +0000 extra", std::nullopt},
                      DateCase{"", std::nullopt}));

}  // namespace
}  // namespace popbridge::protocol::uidl
