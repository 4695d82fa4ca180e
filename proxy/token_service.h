#pragma once

#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "config/config.h"
#include "proxy/loop_mailbox.h"

namespace popbridge::proxy {

// What a login gets for an [oauth2.NAME] identity.
struct TokenResult {
  enum class Status {
    Ok,
    Auth,           // the grant is gone (invalid_grant, revoked): -ERR [AUTH], admin logs in again
    Temporary,      // endpoint down, 5xx, timeout, command failed: -ERR [SYS/TEMP]
    Configuration,  // invalid_client, a wrong URL, no such identity: -ERR [SYS/PERM]
  };
  Status status = Status::Temporary;
  std::string accessToken;       // Status::Ok only; a secret
  std::uint64_t generation = 0;  // which token this is, to force a refresh of exactly it
  std::string reason;            // for the log; never holds a secret
};

// Access tokens for every [oauth2.NAME] identity, shared by all worker loops.
//
// It runs its own thread and event loop, so a token endpoint that is slow or down never holds
// up a worker: a login asks with get() and its worker loop gets the answer through its
// LoopMailbox. Per identity the token is kept in memory and refreshed before it expires; a
// login that comes while a refresh is in flight waits for that same refresh (single flight),
// and one that comes when the token is still valid but due gets it at once while the refresh
// runs in the background. Failures back off (1 s doubling to 60 s), during which logins fail
// fast with the last error instead of hammering the endpoint.
class TokenService {
 public:
  explicit TokenService(const config::Config& config);
  ~TokenService();  // stop()
  TokenService(const TokenService&) = delete;
  TokenService& operator=(const TokenService&) = delete;

  // Creates the identities' TLS contexts and starts the thread; false with `error` when a CA
  // file cannot be loaded.
  bool start(std::string& error);
  // Cancels what is in flight and joins the thread. Replies not delivered yet are dropped.
  void stop();

  // Any thread. `reply` runs on `mailbox`'s loop, never inside get(). `rejected`: the
  // generation of a token the upstream refused, which is then refreshed even though it has not
  // expired (unless a newer one exists already); 0 for none.
  void get(const std::string& identity, std::uint64_t rejected,
           std::shared_ptr<LoopMailbox> mailbox, std::function<void(TokenResult)> reply);

  // Requests made to the token endpoint or runs of the token command, per identity.
  std::uint64_t fetchCount(const std::string& identity) const;

 private:
  struct Identity;
  struct Waiter {
    std::shared_ptr<LoopMailbox> mailbox;
    std::function<void(TokenResult)> reply;
  };
  class CommandRun;

  void run();
  void handle(const std::string& name, std::uint64_t rejected, Waiter waiter);
  void startFetch(Identity& identity);
  void fetchFromEndpoint(Identity& identity);
  void fetchFromCommand(Identity& identity);
  void fetched(Identity& identity, TokenResult result, std::chrono::seconds lifetime,
               std::string rotatedRefreshToken);
  void reply(Waiter& waiter, TokenResult result);

  const config::Config& config_;
  std::map<std::string, std::unique_ptr<Identity>, std::less<>> identities_;
  uv_loop_t loop_{};
  bool loopInitialised_ = false;
  std::shared_ptr<LoopMailbox> inbox_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

}  // namespace popbridge::proxy
