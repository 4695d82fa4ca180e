// [state]: the embedded store's path, the Redis URL and its secrets, timeouts, and errors that
// never echo a password.

#include <string>
#include <vector>

#include "tests/config/config_fixture.h"

namespace popbridge::config::config_test {
namespace {

using namespace std::chrono_literals;

TEST_F(ConfigTest, StateIsOffByDefault) {
  const LoadResult result = load(kMinimal);
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  const StateConfig& state = result.config->state;
  EXPECT_TRUE(state.path.empty());
  EXPECT_FALSE(state.redisEnabled());
  EXPECT_EQ(state.redisTimeout, 2s);
  EXPECT_EQ(state.leaseTtl, 30s);
  EXPECT_EQ(state.keyPrefix, "popbridge:");
  EXPECT_EQ(summarize(*result.config).find("state:"), std::string::npos);
}

TEST_F(ConfigTest, StateEmbeddedPath) {
  const LoadResult result = load(kMinimal + "[state]\npath = \"/var/lib/popbridge/state.db\"\n");
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_EQ(result.config->state.path, "/var/lib/popbridge/state.db");
  EXPECT_TRUE(result.warnings.empty()) << testing::PrintToString(result.warnings);
  EXPECT_NE(summarize(*result.config).find("state: /var/lib/popbridge/state.db (embedded, SQLite)"),
            std::string::npos);
}

struct RedisUrlCase {
  std::string url;
  std::string host;
  std::uint16_t port;
  bool tls;
  unsigned database;
  std::string user;
  std::string password;
};

TEST_F(ConfigTest, StateRedisUrls) {
  const std::vector<RedisUrlCase> cases = {
      {"redis://127.0.0.1", "127.0.0.1", 6379, false, 0, "", ""},
      {"redis://localhost:7000/3", "localhost", 7000, false, 3, "", ""},
      {"rediss://redis.internal:6380/0", "redis.internal", 6380, true, 0, "", ""},
      {"rediss://redis.internal", "redis.internal", 6379, true, 0, "", ""},
      {"redis://:pw%40x@127.0.0.1:6379", "127.0.0.1", 6379, false, 0, "", "pw@x"},
      {"redis://app:pw@[::1]:6390/2", "::1", 6390, false, 2, "app", "pw"},
      {"redis://[::1]", "::1", 6379, false, 0, "", ""},
  };
  for (const RedisUrlCase& c : cases) {
    const LoadResult result = load(kMinimal + "[state]\nredis = \"" + c.url + "\"\n");
    ASSERT_TRUE(result.ok()) << c.url << testing::PrintToString(errorsOf(result));
    const StateConfig& state = result.config->state;
    EXPECT_TRUE(state.redisEnabled()) << c.url;
    EXPECT_EQ(state.redisHost, c.host) << c.url;
    EXPECT_EQ(state.redisPort, c.port) << c.url;
    EXPECT_EQ(state.redisTls, c.tls) << c.url;
    EXPECT_EQ(state.redisDatabase, c.database) << c.url;
    EXPECT_EQ(state.redisUser, c.user) << c.url;
    EXPECT_EQ(state.redisPassword, c.password) << c.url;
    // Neither the summary nor the display form carries the password.
    if (!c.password.empty()) {
      EXPECT_EQ(summarize(*result.config).find(c.password), std::string::npos);
      EXPECT_EQ(state.redisDisplay().find(c.password), std::string::npos);
    }
  }
}

TEST_F(ConfigTest, StateRedisReadsEveryKey) {
  const LoadResult result = load(kMinimal +
                                 "[state]\nredis = \"rediss://localhost:6380/1\"\n"
                                 "redis_user = \"popbridge\"\n"
                                 "redis_password_file = \"@DIR@/secret\"\n"
                                 "redis_ca_file = \"@DIR@/ca.pem\"\nredis_timeout = \"500ms\"\n"
                                 "lease_ttl = \"10s\"\nkey_prefix = \"pb1:\"\n");
  ASSERT_TRUE(result.ok()) << testing::PrintToString(errorsOf(result));
  EXPECT_TRUE(result.warnings.empty()) << testing::PrintToString(result.warnings);
  const StateConfig& state = result.config->state;
  EXPECT_EQ(state.redisUser, "popbridge");
  EXPECT_EQ(state.redisPassword, "s3cret pass");
  EXPECT_EQ(state.redisCaFile, dir_.path() + "/ca.pem");
  EXPECT_EQ(state.redisTimeout, 500ms);
  EXPECT_EQ(state.leaseTtl, 10s);
  EXPECT_EQ(state.keyPrefix, "pb1:");
  const std::string summary = summarize(*result.config);
  EXPECT_NE(summary.find("state: rediss://localhost:6380/1 auth=yes timeout=500ms lease_ttl=10s "
                         "key_prefix=\"pb1:\"\n"),
            std::string::npos)
      << summary;
  EXPECT_EQ(summary.find("s3cret"), std::string::npos);
}

TEST_F(ConfigTest, StateWarnings) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[state]\nredis_ca_file = \"@DIR@/ca.pem\"\n",
       "t.toml:9:17: state.redis_ca_file: has no effect without redis"},
      {"[state]\nredis = \"redis://127.0.0.1\"\nredis_ca_file = \"@DIR@/ca.pem\"\n",
       "t.toml:10:17: state.redis_ca_file: has no effect with redis:// (rediss:// uses TLS)"},
      {"[state]\nredis = \"redis://:pw@10.0.0.5\"\n",
       "t.toml:9:9: state.redis: sends the Redis password in plaintext to a host that is not "
       "loopback; use rediss://"},
      {"[state]\nredis = \"redis://127.0.0.1\"\npath = \"/tmp/x.db\"\n",
       "t.toml:10:8: state.path: not used with redis: the replicas keep their state in Redis"},
  };
  for (const auto& [toml, warning] : cases) {
    const LoadResult result = load(kMinimal + toml);
    ASSERT_TRUE(result.ok()) << toml << testing::PrintToString(errorsOf(result));
    EXPECT_EQ(result.warnings, std::vector<std::string>{warning}) << toml;
  }
}

TEST_F(ConfigTest, StateErrorsAreLocatedAndHideThePassword) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[state]\nredis = \"http://127.0.0.1\"\n",
       "t.toml:9:9: state.redis: expected redis://[user:password@]host[:port][/db] or "
       "rediss://..."},
      {"[state]\nredis = \"redis://:hunter2@127.0.0.1/x\"\n",
       "t.toml:9:9: state.redis: the path must be a database number (/0, /1, ...)"},
      {"[state]\nredis = \"redis://:hunter2@127.0.0.1:0\"\n",
       "t.toml:9:9: state.redis: not a valid URL: invalid URL port '0' (expected 1-65535)"},
      {"[state]\nredis = \"redis://:pw@127.0.0.1\"\nredis_password_file = \"@DIR@/secret\"\n",
       "t.toml:10:23: state.redis_password_file: the redis URL holds a password already; use one"},
      {"[state]\nredis = \"redis://127.0.0.1\"\nredis_password_file = \"@DIR@/empty-secret\"\n",
       "t.toml:10:23: state.redis_password_file: \"@DIR@/empty-secret\" is empty"},
      {"[state]\nredis = \"redis://127.0.0.1\"\nredis_timeout = \"10s\"\nlease_ttl = \"15s\"\n",
       "t.toml:11:13: state.lease_ttl: must be at least twice redis_timeout (10s), or a slow "
       "renewal loses the lease"},
      {"[state]\nlease_ttl = \"500ms\"\n",
       "t.toml:9:13: state.lease_ttl: expected a duration between 1s and 1h, got \"500ms\""},
      {"[state]\nredis_pasword_file = \"x\"\n",
       "t.toml:9:1: state.redis_pasword_file: unknown key (did you mean redis_password_file?)"},
      {"state = 1\n", "t.toml:1:9: state: expected a table ([state]), got 1"},
  };
  for (const auto& [toml, error] : cases) {
    const std::string text = toml.starts_with("state =") ? toml + kMinimal : kMinimal + toml;
    const LoadResult result = load(text);
    EXPECT_FALSE(result.ok()) << toml;
    const std::vector<std::string> errors = errorsOf(result);
    EXPECT_EQ(errors, std::vector<std::string>{withDir(error)}) << toml;
    for (const std::string& e : errors) EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace popbridge::config::config_test
