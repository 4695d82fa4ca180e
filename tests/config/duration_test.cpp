#include "config/duration.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>

namespace popbridge::config {
namespace {

using namespace std::chrono_literals;

struct GoodCase {
  std::string text;
  Duration expected;
  std::string canonical;  // what formatDuration() prints for it
};

// Shown by gtest in test listings and failures instead of the parameter's bytes.
void PrintTo(const GoodCase& c, std::ostream* os) {
  *os << '"' << c.text << '"';
}

class DurationParses : public ::testing::TestWithParam<GoodCase> {};

TEST_P(DurationParses, ToTheRightValueAndBack) {
  const GoodCase& c = GetParam();
  std::string error;
  const auto value = parseDuration(c.text, error);
  ASSERT_TRUE(value.has_value()) << c.text << ": " << error;
  EXPECT_EQ(*value, c.expected);
  EXPECT_EQ(formatDuration(*value), c.canonical);
  EXPECT_EQ(parseDuration(formatDuration(*value), error), value);
}

INSTANTIATE_TEST_SUITE_P(
    Table, DurationParses,
    ::testing::Values(GoodCase{"30s", 30s, "30s"}, GoodCase{"10m", 10min, "10m"},
                      GoodCase{"1h", 1h, "1h"}, GoodCase{"500ms", 500ms, "500ms"},
                      GoodCase{"0s", 0ms, "0s"}, GoodCase{"0ms", 0ms, "0s"},
                      GoodCase{"1h30m", 90min, "1h30m"}, GoodCase{"1m30s", 90s, "1m30s"},
                      GoodCase{"1s500ms", 1500ms, "1s500ms"}, GoodCase{"2h0m5s", 2h + 5s, "2h5s"},
                      GoodCase{"90s", 90s, "1m30s"}, GoodCase{"60s", 60s, "1m"},
                      GoodCase{"120m", 2h, "2h"}, GoodCase{"007s", 7s, "7s"}));

struct BadCase {
  std::string text;
  std::string error;
};

void PrintTo(const BadCase& c, std::ostream* os) {
  *os << '"' << c.text << '"';
}

class DurationRejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(DurationRejects, WithExactMessage) {
  const BadCase& c = GetParam();
  std::string error;
  EXPECT_FALSE(parseDuration(c.text, error).has_value()) << c.text;
  EXPECT_EQ(error, c.error);
}

const std::string kExpected =
    "expected a duration like \"500ms\", \"30s\", \"10m\", \"1h\" or \"1h30m\", got ";

INSTANTIATE_TEST_SUITE_P(
    Table, DurationRejects,
    ::testing::Values(
        BadCase{"", kExpected + "\"\""},
        BadCase{"30", kExpected + "\"30\" (add a unit, e.g. \"30s\")"},
        BadCase{"10 m", kExpected + "\"10 m\""}, BadCase{"10min", kExpected + "\"10min\""},
        BadCase{"1.5s", kExpected + "\"1.5s\""}, BadCase{"-5s", kExpected + "\"-5s\""},
        BadCase{"+5s", kExpected + "\"+5s\""}, BadCase{"s", kExpected + "\"s\""},
        BadCase{"5S", kExpected + "\"5S\""}, BadCase{"1d", kExpected + "\"1d\""},
        // Units go from the largest down, each once.
        BadCase{"30m1h", kExpected + "\"30m1h\""}, BadCase{"1m1m", kExpected + "\"1m1m\""},
        BadCase{" 5s", kExpected + "\" 5s\""}, BadCase{"5s ", kExpected + "\"5s \""},
        BadCase{"99999999999999999999h", kExpected + "\"99999999999999999999h\" (too large)"},
        BadCase{"1000001h", kExpected + "\"1000001h\" (too large)"}));

TEST(Duration, LargestValueStaysExact) {
  std::string error;
  EXPECT_EQ(parseDuration("1000000h", error), Duration(1'000'000LL * 3'600'000LL));
}

}  // namespace
}  // namespace popbridge::config
