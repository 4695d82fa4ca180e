#include "protocol/text.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace popbridge::protocol {
namespace {

// Every table row carries its own test name, so that ctest lists
// "EqualsIgnoreCase/Table.Matches/TurkishDotlessI" rather than a parameter's bytes.
template <class Case>
std::string caseName(const testing::TestParamInfo<Case>& info) {
  return std::string(info.param.name);
}

// ---------------------------------------------------------------------------------------------

struct CompareCase {
  std::string_view name;
  std::string_view a;
  std::string_view b;
  bool equal;
};

void PrintTo(const CompareCase& c, std::ostream* os) {
  *os << '"' << c.a << "\" vs \"" << c.b << '"';
}

class EqualsIgnoreCase : public testing::TestWithParam<CompareCase> {};

TEST_P(EqualsIgnoreCase, Matches) {
  const CompareCase& c = GetParam();
  EXPECT_EQ(equalsIgnoreCase(c.a, c.b), c.equal);
  EXPECT_EQ(equalsIgnoreCase(c.b, c.a), c.equal) << "not symmetric";
}

INSTANTIATE_TEST_SUITE_P(
    Table, EqualsIgnoreCase,
    testing::Values(CompareCase{"Identical", "STARTTLS", "STARTTLS", true},
                    CompareCase{"MixedCase", "StartTls", "STARTTLS", true},
                    CompareCase{"BothEmpty", "", "", true}, CompareCase{"OneEmpty", "", "A", false},
                    CompareCase{"PrefixOnly", "AUTH", "AUTH=PLAIN", false},
                    CompareCase{"DigitsAndPunctuation", "auth=plain-1", "AUTH=PLAIN-1", true},
                    // '@' and '`' sit next to 'A' and 'a': an off-by-one would fold them.
                    CompareCase{"NeighboursOfLetters", "@`", "`@", false},
                    CompareCase{"TurkishDotlessI", "\xC4\xB1", "I", false},
                    CompareCase{"HighBytesCompareExactly", "\xC3\xA9", "\xC3\x89", false}),
    caseName<CompareCase>);

// ---------------------------------------------------------------------------------------------

struct LowerCase {
  std::string_view name;
  std::string_view input;
  std::string_view expected;
};

void PrintTo(const LowerCase& c, std::ostream* os) {
  *os << '"' << c.input << '"';
}

class ToLowerAscii : public testing::TestWithParam<LowerCase> {};

TEST_P(ToLowerAscii, FoldsOnlyAsciiLetters) {
  const LowerCase& c = GetParam();
  EXPECT_EQ(toLowerAscii(c.input), c.expected);
  std::string folded;
  for (char ch : c.input) folded += toLowerAscii(ch);
  EXPECT_EQ(folded, c.expected) << "the char overload disagrees with the string one";
}

INSTANTIATE_TEST_SUITE_P(Table, ToLowerAscii,
                         testing::Values(LowerCase{"Empty", "", ""},
                                         LowerCase{"Upper", "INBOX", "inbox"},
                                         LowerCase{"AlreadyLower", "inbox", "inbox"},
                                         LowerCase{"Boundaries", "@AZ[`az{", "@az[`az{"},
                                         LowerCase{"DigitsUnchanged", "UID42", "uid42"},
                                         LowerCase{"HighBytesUnchanged", "\xC3\x89", "\xC3\x89"}),
                         caseName<LowerCase>);

// ---------------------------------------------------------------------------------------------

struct DecimalCase {
  std::string_view name;
  std::string_view text;
  std::uint64_t max;
  std::optional<std::uint64_t> expected;
};

void PrintTo(const DecimalCase& c, std::ostream* os) {
  *os << '"' << c.text << "\" max=" << c.max;
}

class ParseDecimal : public testing::TestWithParam<DecimalCase> {};

TEST_P(ParseDecimal, IsStrict) {
  const DecimalCase& c = GetParam();
  EXPECT_EQ(parseDecimal(c.text, c.max), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseDecimal,
    testing::Values(DecimalCase{"Zero", "0", UINT64_MAX, 0},
                    DecimalCase{"Plain", "1234", UINT64_MAX, 1234},
                    DecimalCase{"LeadingZeros", "0080", UINT64_MAX, 80},
                    DecimalCase{"Empty", "", UINT64_MAX, std::nullopt},
                    DecimalCase{"PlusSign", "+1", UINT64_MAX, std::nullopt},
                    DecimalCase{"MinusSign", "-1", UINT64_MAX, std::nullopt},
                    DecimalCase{"LeadingSpace", " 1", UINT64_MAX, std::nullopt},
                    DecimalCase{"TrailingSpace", "1 ", UINT64_MAX, std::nullopt},
                    DecimalCase{"Hex", "0x10", UINT64_MAX, std::nullopt},
                    DecimalCase{"AtMax", "65535", 65535, 65535},
                    DecimalCase{"AboveMax", "65536", 65535, std::nullopt},
                    DecimalCase{"Uint64Max", "18446744073709551615", UINT64_MAX, UINT64_MAX},
                    DecimalCase{"Uint64Overflow", "18446744073709551616", UINT64_MAX, std::nullopt},
                    DecimalCase{"ManyDigitsOverflow", "99999999999999999999999", UINT64_MAX,
                                std::nullopt}),
    caseName<DecimalCase>);

struct Uint32Case {
  std::string_view name;
  std::string_view text;
  std::optional<std::uint32_t> expected;
};

void PrintTo(const Uint32Case& c, std::ostream* os) {
  *os << '"' << c.text << '"';
}

class ParseUint32 : public testing::TestWithParam<Uint32Case> {};

TEST_P(ParseUint32, StopsAt32Bits) {
  EXPECT_EQ(parseUint32(GetParam().text), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(Table, ParseUint32,
                         testing::Values(Uint32Case{"Zero", "0", 0u},
                                         Uint32Case{"Max", "4294967295", 4294967295u},
                                         Uint32Case{"OneAboveMax", "4294967296", std::nullopt},
                                         Uint32Case{"Letters", "12a", std::nullopt},
                                         Uint32Case{"Empty", "", std::nullopt}),
                         caseName<Uint32Case>);

// ---------------------------------------------------------------------------------------------

struct CharClassCase {
  std::string_view name;
  char c;
  bool digit;
  bool control;
};

void PrintTo(const CharClassCase& c, std::ostream* os) {
  *os << "byte 0x" << std::hex << static_cast<int>(static_cast<unsigned char>(c.c));
}

class CharClasses : public testing::TestWithParam<CharClassCase> {};

TEST_P(CharClasses, Classify) {
  const CharClassCase& c = GetParam();
  EXPECT_EQ(isAsciiDigit(c.c), c.digit);
  EXPECT_EQ(isAsciiControl(c.c), c.control);
}

INSTANTIATE_TEST_SUITE_P(Table, CharClasses,
                         testing::Values(CharClassCase{"Zero", '0', true, false},
                                         CharClassCase{"Nine", '9', true, false},
                                         CharClassCase{"Slash", '/', false, false},
                                         CharClassCase{"Colon", ':', false, false},
                                         CharClassCase{"Nul", '\0', false, true},
                                         CharClassCase{"Newline", '\n', false, true},
                                         CharClassCase{"Escape", '\x1B', false, true},
                                         CharClassCase{"UnitSeparator", '\x1F', false, true},
                                         CharClassCase{"Space", ' ', false, false},
                                         CharClassCase{"Tilde", '~', false, false},
                                         CharClassCase{"Delete", '\x7F', false, true},
                                         CharClassCase{"HighByte", '\x80', false, false}),
                         caseName<CharClassCase>);

struct DigitsCase {
  std::string_view name;
  std::string_view text;
  bool allDigits;
};

void PrintTo(const DigitsCase& c, std::ostream* os) {
  *os << '"' << c.text << '"';
}

class IsAllDigits : public testing::TestWithParam<DigitsCase> {};

TEST_P(IsAllDigits, NeedsAtLeastOneDigitAndNothingElse) {
  EXPECT_EQ(isAllDigits(GetParam().text), GetParam().allDigits);
}

INSTANTIATE_TEST_SUITE_P(
    Table, IsAllDigits,
    testing::Values(DigitsCase{"Empty", "", false}, DigitsCase{"One", "7", true},
                    DigitsCase{"BeyondAnyInteger", "123456789012345678901234", true},
                    DigitsCase{"WithUnit", "30s", false}, DigitsCase{"Negative", "-5", false}),
    caseName<DigitsCase>);

// ---------------------------------------------------------------------------------------------

TEST(SecureWipe, LeavesTheStringEmpty) {
  std::string secret = "hunter2";
  secureWipe(secret);
  EXPECT_TRUE(secret.empty());
}

}  // namespace
}  // namespace popbridge::protocol
