#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "proxy/login_guard.h"
#include "proxy/redis_client.h"

namespace popbridge::proxy {

// The failed-login throttle across replicas ([state] redis). LoginGuard stays the one that
// decides, synchronously, from its own tables; this keeps those tables a cached view of the
// cluster's counts:
//  - every failure this process records is also counted in Redis (INCR, expiring forgetAfter
//    after the last one, as the local entry does), and the cluster's count that INCR answers is
//    merged back;
//  - before a login's throttle check, the cluster's counts of its IP and its user name are read
//    (one MGET) and merged, so a guesser that moves to another replica meets the same delay;
//  - a successful login forgives its IP and user in Redis too.
// When Redis cannot answer, the local view decides alone: the throttle never blocks logins.
class SharedLoginCounters {
 public:
  SharedLoginCounters(RedisClient& redis, std::string keyPrefix)
      : redis_(redis), prefix_(std::move(keyPrefix)) {}

  // `done` runs on the loop, never inside the call, once the counts are merged or Redis failed.
  void refresh(LoginGuard& guard, const std::string& ip, std::string_view user,
               std::function<void()> done);
  void failure(LoginGuard& guard, const std::string& ip, std::string_view user);
  void success(const std::string& ip, std::string_view user);

  std::string ipKey(const std::string& ip) const { return prefix_ + "fail:ip:" + ip; }
  std::string userKey(std::string_view user) const {
    return prefix_ + "fail:user:" + LoginGuard::userKey(user);
  }

 private:
  RedisClient& redis_;
  std::string prefix_;
};

}  // namespace popbridge::proxy
