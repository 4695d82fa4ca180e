// POPBRIDGE_TEST_FAST_PATHS=off: which [upstream] lines the fixture adds to popbridge's config.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <string_view>

#include "tests/support/popbridge_process.h"

namespace popbridge::test {
namespace {

constexpr std::array<std::string_view, 5> kAllKnown{"host", "port", "pool_idle", "snapshot_cache",
                                                    "read_ahead"};
constexpr std::array<std::string_view, 2> kNoneKnown{"host", "port"};
constexpr std::array<std::string_view, 2> kPoolOnly{"host", "pool_idle"};

struct Case {
  const char* name;
  std::string upstream;  // the test's own [upstream] lines
  std::span<const std::string_view> known;
  std::string expected;
};

TEST(FastPathsOffLines, AddsTheKeysPopbridgeKnowsAndTheTestLeftAlone) {
  const std::string all = "pool_idle = \"0s\"\nsnapshot_cache = false\nread_ahead = false\n";
  const Case cases[] = {
      {"every key known, none set", "", kAllKnown, all},
      {"other keys of the test stay", "command_timeout = \"5s\"\n", kAllKnown, all},
      {"a build without the keys gets none", "", kNoneKnown, ""},
      {"only the keys the build knows", "", kPoolOnly, "pool_idle = \"0s\"\n"},
      {"a test of the pool keeps its pool_idle", "pool_idle = \"30s\"\n", kAllKnown,
       "snapshot_cache = false\nread_ahead = false\n"},
      {"spacing around the key does not matter", "auth = \"plain\"\n  pool_idle=\"1s\"\n",
       kAllKnown, "snapshot_cache = false\nread_ahead = false\n"},
      {"a longer key with the same start is another key", "pool_idle_extra = 1\n", kAllKnown, all},
      {"a value that names the key is no assignment", "auth = \"read_ahead\"\n", kAllKnown, all},
      {"all three set by the test", "read_ahead = true\nsnapshot_cache = true\npool_idle = \"9s\"",
       kAllKnown, ""},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(fastPathsOffLines(c.upstream, c.known), c.expected) << c.name;
  }
}

}  // namespace
}  // namespace popbridge::test
