#include "proxy/shared_counters.h"

#include <charconv>
#include <chrono>
#include <vector>

namespace popbridge::proxy {
namespace {

// KEYS: the counters; ARGV[1]: the window in ms. Each count grows by one and lives a window
// past its last failure. Returns the counts.
constexpr const char* kFailureScript = R"lua(
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('INCR', key)
  redis.call('PEXPIRE', key, ARGV[1])
end
return out
)lua";

unsigned countOf(const RedisValue& value) {
  if (value.type == RedisValue::Type::Integer) {
    return value.integer > 0 ? static_cast<unsigned>(std::min<long long>(value.integer, 1u << 30))
                             : 0;
  }
  unsigned count = 0;
  if (value.type == RedisValue::Type::String) {
    std::from_chars(value.text.data(), value.text.data() + value.text.size(), count);
  }
  return count;
}

}  // namespace

void SharedLoginCounters::refresh(LoginGuard& guard, const std::string& ip, std::string_view user,
                                  std::function<void()> done) {
  const bool withUser = !LoginGuard::userKey(user).empty();
  std::vector<std::string> args{"MGET", ipKey(ip)};
  if (withUser) args.push_back(userKey(user));
  redis_.command(std::move(args), [&guard, ip, user = std::string(user), withUser,
                                   done = std::move(done)](RedisReply reply) {
    if (reply.answered && reply.value.type == RedisValue::Type::Array &&
        reply.value.elements.size() == (withUser ? 2u : 1u)) {
      const auto now = std::chrono::steady_clock::now();
      guard.mergeShared(LoginGuard::Subject::Ip, ip, countOf(reply.value.elements[0]), now);
      if (withUser) {
        guard.mergeShared(LoginGuard::Subject::User, user, countOf(reply.value.elements[1]), now);
      }
    }
    done();
  });
}

void SharedLoginCounters::failure(LoginGuard& guard, const std::string& ip, std::string_view user) {
  const bool withUser = !LoginGuard::userKey(user).empty();
  std::vector<std::string> args{"EVAL", kFailureScript, withUser ? "2" : "1", ipKey(ip)};
  if (withUser) args.push_back(userKey(user));
  args.push_back(std::to_string(guard.forgetAfter().count()));
  redis_.command(
      std::move(args), [&guard, ip, user = std::string(user), withUser](RedisReply reply) {
        if (!reply.answered || reply.value.type != RedisValue::Type::Array ||
            reply.value.elements.size() != (withUser ? 2u : 1u)) {
          return;
        }
        const auto now = std::chrono::steady_clock::now();
        guard.mergeShared(LoginGuard::Subject::Ip, ip, countOf(reply.value.elements[0]), now);
        if (withUser) {
          guard.mergeShared(LoginGuard::Subject::User, user, countOf(reply.value.elements[1]), now);
        }
      });
}

void SharedLoginCounters::success(const std::string& ip, std::string_view user) {
  std::vector<std::string> args{"DEL", ipKey(ip)};
  if (!LoginGuard::userKey(user).empty()) args.push_back(userKey(user));
  redis_.command(std::move(args), {});
}

}  // namespace popbridge::proxy
