// The issue-15 fields of uidl_format: %{emailid}, %{gmmsgid}, %{stable}.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "protocol/pop3/uidl_format.h"

namespace popbridge::protocol {
namespace {

UidlFormat parsed(std::string_view spec) {
  std::string error;
  auto format = UidlFormat::parse(spec, error);
  EXPECT_TRUE(format.has_value()) << spec << ": " << error;
  return format ? *format : *UidlFormat::parse(UidlFormat::kDovecotDefault, error);
}

bool validUidl(const std::string& uidl) {
  if (uidl.empty() || uidl.size() > 70) return false;
  for (char c : uidl) {
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7E) return false;
  }
  return true;
}

TEST(UidlFormatFields, StableAloneGivesTheValueUnchanged) {
  const UidlFormat format = parsed("%{stable}");
  EXPECT_TRUE(format.usesStable());
  EXPECT_TRUE(format.usesMessageIds());
  EXPECT_FALSE(format.usesUidValidity());
  EXPECT_EQ(format.maxLength(), 70u);
  UidlFormat::Fields fields;
  fields.stable = "00000007583a1b2c";
  EXPECT_EQ(format.format(fields), "00000007583a1b2c");
  const std::string seventy(70, 'x');
  fields.stable = seventy;
  EXPECT_EQ(format.format(fields), seventy);
}

TEST(UidlFormatFields, EmailIdWithLiteralsAndGmMsgIdInEveryRadix) {
  UidlFormat::Fields fields;
  fields.uid = 7;
  fields.uidValidity = 9;
  fields.emailId = "M6d99ac3275bb4e";
  fields.gmMsgId = 1278455344230334865ull;
  EXPECT_EQ(parsed("e-%{emailid}").format(fields), "e-M6d99ac3275bb4e");
  EXPECT_EQ(parsed("%{gmmsgid}").format(fields), "1278455344230334865");
  EXPECT_EQ(parsed("%X{gmmsgid}").format(fields), "11bdfc5cae0c8191");
  EXPECT_EQ(parsed("%020d{gmmsgid}").format(fields), "01278455344230334865");
  EXPECT_EQ(parsed("%u.%{gmmsgid}").format(fields), "7.1278455344230334865");
  fields.gmMsgId = 0xFFFFFFFFFFFFFFFFull;
  EXPECT_EQ(parsed("%{gmmsgid}").format(fields), "18446744073709551615");
}

TEST(UidlFormatFields, TooLongOrUnprintableValuesBecomeADigest) {
  const UidlFormat format = parsed("pre%{emailid}");
  UidlFormat::Fields fields;
  const std::string longId(68, 'a');  // 3 + 68 > 70
  fields.emailId = longId;
  const auto a = format.format(fields);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->size(), 3u + UidlFormat::kMinTextBudget);
  EXPECT_EQ(a->substr(0, 4), "pre~");
  EXPECT_TRUE(validUidl(*a));
  const std::string otherId = longId.substr(0, 67) + "b";
  fields.emailId = otherId;
  EXPECT_NE(format.format(fields), a);  // distinct ids stay distinct
  fields.emailId = "has space";
  const auto spaced = format.format(fields);
  ASSERT_TRUE(spaced.has_value());
  EXPECT_TRUE(validUidl(*spaced));
  EXPECT_EQ(spaced->at(3), '~');
  fields.emailId = longId;
  EXPECT_EQ(format.format(fields), a);  // deterministic
}

TEST(UidlFormatFields, MissingValuesGiveNothing) {
  UidlFormat::Fields fields;
  fields.uid = 1;
  EXPECT_EQ(parsed("%{stable}").format(fields), std::nullopt);
  EXPECT_EQ(parsed("%{emailid}").format(fields), std::nullopt);
  EXPECT_EQ(parsed("%u-%{gmmsgid}").format(fields), std::nullopt);
  fields.stable = "";
  EXPECT_EQ(parsed("%{stable}").format(fields), std::nullopt);
  std::string out = "keep";
  EXPECT_FALSE(parsed("%{stable}").appendTo(out, fields));
  EXPECT_EQ(out, "keep");
}

TEST(UidlFormatFields, TheOldInterfaceFallsBackToTheDovecotDefault) {
  // What the map gives a message at first sight, so the fallback and the map agree.
  EXPECT_EQ(parsed("%{stable}").format(0x2a, 0x5f3a1b2c), "0000002a5f3a1b2c");
  EXPECT_EQ(parsed("x%{gmmsgid}").format(1, 2), "0000000100000002");
}

TEST(UidlFormatFields, ExistingTemplatesAreUnchangedThroughFields) {
  const UidlFormat format = parsed("%08Xu%08Xv");
  EXPECT_FALSE(format.usesMessageIds());
  UidlFormat::Fields fields;
  fields.uid = 0x2a;
  fields.uidValidity = 0x5f3a1b2c;
  EXPECT_EQ(format.format(fields), format.format(0x2a, 0x5f3a1b2c));
  EXPECT_EQ(format.format(fields), "0000002a5f3a1b2c");
}

struct FieldError {
  std::string spec;
  std::string error;
};

class UidlFormatFieldErrors : public ::testing::TestWithParam<FieldError> {};

TEST_P(UidlFormatFieldErrors, RejectsWithExactReason) {
  std::string error;
  EXPECT_FALSE(UidlFormat::parse(GetParam().spec, error).has_value());
  EXPECT_EQ(error, GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Table, UidlFormatFieldErrors,
    ::testing::Values(
        FieldError{"%{guid}",
                   "unknown field \"%{guid}\" at offset 0: expected %{stable}, %{emailid} or "
                   "%{gmmsgid}"},
        FieldError{"%u%{stable",
                   "unknown field \"%{stable\" at offset 2: expected %{stable}, %{emailid} or "
                   "%{gmmsgid}"},
        FieldError{"%08X{stable}",
                   "%{stable} at offset 0 takes no flag, width or radix: it is text, not a number"},
        FieldError{"%{stable}%{emailid}",
                   "only one of %{emailid} and %{stable} fits in a template at offset 9"},
        FieldError{"%8{gmmsgid}",
                   "width without the 0 flag at offset 0 would pad with spaces, which a UIDL may "
                   "not contain"},
        FieldError{std::string(44, 'a') + "%{stable}",
                   "the rest of the template leaves 26 of the 70 characters for %{stable}, which "
                   "needs at least 27"},
        FieldError{"%061{gmmsgid}%u",
                   "output can reach more than 70 characters (the RFC 1939 limit for a UIDL); the "
                   "template is too long from offset 13 on"}));

}  // namespace
}  // namespace popbridge::protocol
