#include "protocol/pop3/uidl_format.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace popbridge::protocol {
namespace {

// A gtest name for a table row: specs repeat across rows and are mostly punctuation, so the
// row number keeps names unique and the spec, reduced to [A-Za-z0-9_], keeps them readable.
std::string rowName(std::size_t index, std::string_view spec) {
  std::string name = std::to_string(index) + "_";
  for (char c : spec) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return name;
}

struct FormatCase {
  std::string spec;
  std::uint32_t uid;
  std::uint32_t uidValidity;
  std::string expected;
};

// Readable ctest names instead of the bytes of the parameter.
void PrintTo(const FormatCase& c, std::ostream* os) {
  *os << "spec=" << c.spec << " uid=" << c.uid << " uidvalidity=" << c.uidValidity;
}

class UidlFormatOutput : public ::testing::TestWithParam<FormatCase> {};

TEST_P(UidlFormatOutput, FormatsLikeDovecot) {
  const FormatCase& c = GetParam();
  std::string error;
  const auto format = UidlFormat::parse(c.spec, error);
  ASSERT_TRUE(format.has_value()) << error;
  EXPECT_EQ(format->format(c.uid, c.uidValidity), c.expected);

  std::string appended = "prefix ";
  format->appendTo(appended, c.uid, c.uidValidity);
  EXPECT_EQ(appended, "prefix " + c.expected);
  EXPECT_LE(c.expected.size(), format->maxLength());
}

INSTANTIATE_TEST_SUITE_P(Table, UidlFormatOutput,
                         ::testing::Values(
                             // Dovecot's default pop3_uidl_format.
                             FormatCase{"%08Xu%08Xv", 1, 0x5F3A1B2C, "000000015f3a1b2c"},
                             FormatCase{"%08Xu%08Xv", 0xABCDEF, 0x12, "00abcdef00000012"},
                             FormatCase{"%08Xu%08Xv", 0, 0, "0000000000000000"},
                             FormatCase{"%08Xu%08Xv", 0xFFFFFFFF, 0xFFFFFFFF, "ffffffffffffffff"},
                             FormatCase{"%08xu%08xv", 0xABCDEF, 0x5F3A1B2C, "00abcdef5f3a1b2c"},
                             FormatCase{"%Xu", 0xABCDEF, 7, "abcdef"}, FormatCase{"%xu", 0, 7, "0"},
                             // No conversion letter means decimal, as does d.
                             FormatCase{"%u", 42, 7, "42"}, FormatCase{"%du", 42, 7, "42"},
                             FormatCase{"%u.%v", 42, 1700000000, "42.1700000000"},
                             FormatCase{"%u", 0xFFFFFFFF, 0, "4294967295"},
                             FormatCase{"%010u", 42, 0, "0000000042"},
                             FormatCase{"%04du-%v", 7, 9, "0007-9"},
                             // A width smaller than the number never truncates.
                             FormatCase{"%02Xu", 0x12345, 0, "12345"},
                             FormatCase{"%1u", 123, 0, "123"}, FormatCase{"%0u", 5, 0, "5"},
                             // Literals and %%.
                             FormatCase{"uid-%u", 5, 0, "uid-5"}, FormatCase{"%%%u%%", 5, 0, "%5%"},
                             FormatCase{"<%u@%v>", 5, 6, "<5@6>"}, FormatCase{"%v%u", 1, 2, "21"},
                             FormatCase{"%u%u", 12, 0, "1212"},
                             // The longest allowed: 70 characters.
                             FormatCase{"%070u", 1, 0, std::string(69, '0') + "1"}),
                         [](const ::testing::TestParamInfo<FormatCase>& info) {
                           return rowName(info.index, info.param.spec);
                         });

struct ErrorCase {
  std::string spec;
  std::string error;
};

void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << "spec=" << c.spec;
}

class UidlFormatErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(UidlFormatErrors, RejectsWithExactReason) {
  const ErrorCase& c = GetParam();
  std::string error;
  EXPECT_FALSE(UidlFormat::parse(c.spec, error).has_value());
  EXPECT_EQ(error, c.error);
}

INSTANTIATE_TEST_SUITE_P(
    Table, UidlFormatErrors,
    ::testing::Values(
        ErrorCase{"", "must not be empty; Dovecot's default is \"%08Xu%08Xv\""},
        ErrorCase{"%08Xv",
                  "must contain %u (or %{stable}, %{emailid}, %{gmmsgid}): without a per-message "
                  "id the UIDLs are not unique"},
        ErrorCase{"static",
                  "must contain %u (or %{stable}, %{emailid}, %{gmmsgid}): without a per-message "
                  "id the UIDLs are not unique"},
        ErrorCase{"%%u",
                  "must contain %u (or %{stable}, %{emailid}, %{gmmsgid}): without a per-message "
                  "id the UIDLs are not unique"},
        ErrorCase{"%u%m",
                  "unknown directive \"%m\" at offset 2: expected %u (UID), %v (UIDVALIDITY) or "
                  "%%, optionally with 0, a width and X, x or d, as in %08Xu"},
        ErrorCase{"%08Xg",
                  "unknown directive \"%08Xg\" at offset 0: expected %u (UID), %v (UIDVALIDITY) "
                  "or %%, optionally with 0, a width and X, x or d, as in %08Xu"},
        ErrorCase{"%u%08X",
                  "incomplete directive \"%08X\" at offset 2: expected %u (UID), %v "
                  "(UIDVALIDITY) or %%"},
        ErrorCase{"%u%",
                  "incomplete directive \"%\" at offset 2: expected %u (UID), %v "
                  "(UIDVALIDITY) or %%"},
        ErrorCase{"%u %v",
                  "character 0x20 at offset 2 is not allowed: a UIDL may only contain "
                  "printable ASCII 0x21-0x7E"},
        ErrorCase{"%u\x7F",
                  "character 0x7F at offset 2 is not allowed: a UIDL may only contain "
                  "printable ASCII 0x21-0x7E"},
        ErrorCase{"\xC3\xA9%u",
                  "character 0xC3 at offset 0 is not allowed: a UIDL may only "
                  "contain printable ASCII 0x21-0x7E"},
        ErrorCase{"%8Xu",
                  "width without the 0 flag at offset 0 would pad with spaces, which a "
                  "UIDL may not contain; write \"%08Xu\""},
        ErrorCase{"%071u", "width at offset 2 is larger than 70, the RFC 1939 limit for a UIDL"},
        ErrorCase{"%040u%040v",
                  "output can reach more than 70 characters (the RFC 1939 limit for a UIDL); the "
                  "template is too long from offset 5 on"},
        // Seven decimal fields of up to 10 digits are 70; an eighth is too many.
        ErrorCase{"%u%u%u%u%u%u%u%u",
                  "output can reach more than 70 characters (the RFC 1939 limit for a UIDL); the "
                  "template is too long from offset 14 on"},
        ErrorCase{std::string(61, 'a') + "%u",
                  "output can reach more than 70 characters (the RFC 1939 limit for a UIDL); the "
                  "template is too long from offset 61 on"}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) {
      return rowName(info.index, info.param.spec);
    });

TEST(UidlFormat, SeventyCharactersAtTheExtremesAreAccepted) {
  std::string error;
  // 60 literal characters plus up to 10 decimal digits: exactly 70 for 0xFFFFFFFF.
  const auto format = UidlFormat::parse(std::string(60, 'a') + "%u", error);
  ASSERT_TRUE(format.has_value()) << error;
  EXPECT_EQ(format->maxLength(), 70u);
  EXPECT_EQ(format->format(0xFFFFFFFF, 0).size(), 70u);
  EXPECT_EQ(format->format(0, 0).size(), 61u);
}

TEST(UidlFormat, EveryOutputIsPrintableAsciiAtTheExtremes) {
  const std::vector<std::string> specs = {"%08Xu%08Xv", "%u", "%xu-%v", "%%%u%%", "%070u"};
  const std::vector<std::uint32_t> values = {0, 1, 9, 10, 0xF, 0x10, 0x7FFFFFFF, 0xFFFFFFFF};
  for (const std::string& spec : specs) {
    std::string error;
    const auto format = UidlFormat::parse(spec, error);
    ASSERT_TRUE(format.has_value()) << spec << ": " << error;
    for (std::uint32_t uid : values) {
      for (std::uint32_t validity : values) {
        const std::string out = format->format(uid, validity);
        EXPECT_GE(out.size(), 1u);
        EXPECT_LE(out.size(), format->maxLength());
        EXPECT_LE(out.size(), UidlFormat::kMaxLength);
        for (char c : out) {
          EXPECT_GE(static_cast<unsigned char>(c), 0x21) << spec;
          EXPECT_LE(static_cast<unsigned char>(c), 0x7E) << spec;
        }
      }
    }
  }
}

TEST(UidlFormat, DistinctUidsGiveDistinctUidls) {
  std::string error;
  const auto format = UidlFormat::parse(UidlFormat::kDovecotDefault, error);
  ASSERT_TRUE(format.has_value());
  std::string previous;
  for (std::uint32_t uid = 1; uid < 5000; ++uid) {
    const std::string current = format->format(uid, 77);
    EXPECT_NE(current, previous);
    EXPECT_LT(previous, current);  // fixed width hex sorts like the UIDs
    previous = current;
  }
}

TEST(UidlFormat, ReportsWhetherUidValidityIsUsed) {
  std::string error;
  EXPECT_TRUE(UidlFormat::parse("%08Xu%08Xv", error)->usesUidValidity());
  EXPECT_FALSE(UidlFormat::parse("%08Xu", error)->usesUidValidity());
  EXPECT_EQ(UidlFormat::parse("%08Xu", error)->spec(), "%08Xu");
}

TEST(UidlFormat, AppendsManyWithoutSurprises) {
  std::string error;
  const auto format = UidlFormat::parse("%08Xu%08Xv", error);
  ASSERT_TRUE(format.has_value());
  std::string listing;
  for (std::uint32_t uid = 1; uid <= 100000; ++uid) {
    format->appendTo(listing, uid, 0x5F3A1B2C);
    listing += "\r\n";
  }
  EXPECT_EQ(listing.size(), 100000u * 18u);
  EXPECT_EQ(listing.substr(0, 18), "000000015f3a1b2c\r\n");
  EXPECT_EQ(listing.substr(listing.size() - 18), "000186a05f3a1b2c\r\n");
}

}  // namespace
}  // namespace popbridge::protocol
